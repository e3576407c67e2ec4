#!/usr/bin/env python3
"""Transcribe every audio file of a folder through POST /v1/audio/transcriptions, a few at a time.

Standard library only.

    python3 batch_transcribe.py ./recordings [--concurrency 4]
    GEMMA_API_URL=http://localhost:6666 API_KEY=... python3 batch_transcribe.py ./recordings
"""
import concurrent.futures
import json
import os
import sys
import time
import urllib.error
import urllib.request
import uuid

BASE = os.environ.get("GEMMA_API_URL", "http://localhost:6666")
AUDIO = (".wav", ".mp3", ".flac", ".ogg", ".opus", ".webm", ".m4a", ".aac")


def multipart(fields, file_field, filename, data):
    boundary = uuid.uuid4().hex
    parts = []
    for name, value in fields.items():
        parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n{value}\r\n'.encode())
    parts.append(f'--{boundary}\r\nContent-Disposition: form-data; name="{file_field}"; filename="{filename}"\r\nContent-Type: application/octet-stream\r\n\r\n'.encode())
    parts.append(data)
    parts.append(f"\r\n--{boundary}--\r\n".encode())
    return b"".join(parts), f"multipart/form-data; boundary={boundary}"


def transcribe(folder, name):
    with open(os.path.join(folder, name), "rb") as f:
        body, content_type = multipart({"model": "whisper-1"}, "file", name, f.read())
    headers = {"Content-Type": content_type}
    if os.environ.get("API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["API_KEY"]
    request = urllib.request.Request(f"{BASE}/v1/audio/transcriptions", data=body, headers=headers, method="POST")
    started = time.monotonic()
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            result = {"file": name, "status": response.status, "text": json.load(response)["text"]}
    except urllib.error.HTTPError as error:
        result = {"file": name, "status": error.code, "error": json.load(error)["error"]["message"]}
    result["ms"] = round((time.monotonic() - started) * 1000)
    return result


def main():
    if len(sys.argv) < 2:
        print("usage: batch_transcribe.py <folder> [--concurrency N]", file=sys.stderr)
        return 2
    folder = sys.argv[1]
    concurrency = int(sys.argv[sys.argv.index("--concurrency") + 1]) if "--concurrency" in sys.argv else 4
    files = sorted(f for f in os.listdir(folder) if f.lower().endswith(AUDIO))
    failed = 0
    with concurrent.futures.ThreadPoolExecutor(max_workers=concurrency) as pool:
        for done, result in enumerate(pool.map(lambda f: transcribe(folder, f), files), start=1):
            failed += result["status"] != 200
            print(json.dumps(result), flush=True)
            print(f"\r{done}/{len(files)} done, {failed} failed", end="", file=sys.stderr)
    print(file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())
