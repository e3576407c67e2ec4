#!/usr/bin/env python3
"""One dialogue turn over HTTP: text in, the reply text and speech (WAV) out, with the latencies.

Standard library only.

    python3 dialogue_turn.py "What is the capital of France?" [--session demo] [--out reply.wav]
"""
import base64
import json
import os
import sys
import urllib.error
import urllib.request

BASE = os.environ.get("GEMMA_API_URL", "http://localhost:6666")


def main():
    if len(sys.argv) < 2:
        print('usage: dialogue_turn.py "<text>" [--session ID] [--out reply.wav]', file=sys.stderr)
        return 2
    args = sys.argv[1:]
    session = args[args.index("--session") + 1] if "--session" in args else None
    out = args[args.index("--out") + 1] if "--out" in args else "reply.wav"
    body = {"text": args[0], "format": "wav"}
    if session:
        body["session_id"] = session
    headers = {"Content-Type": "application/json"}
    if os.environ.get("API_KEY"):
        headers["Authorization"] = "Bearer " + os.environ["API_KEY"]
    request = urllib.request.Request(f"{BASE}/v1/dialogue", data=json.dumps(body).encode(), headers=headers, method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600) as response:
            turn = json.load(response)
    except urllib.error.HTTPError as error:
        envelope = json.load(error)
        print(f"HTTP {error.code}: {envelope['error']['message']} (request {envelope['request_id']})", file=sys.stderr)
        return 1
    if turn.get("audio_base64"):
        with open(out, "wb") as f:
            f.write(base64.b64decode(turn["audio_base64"]))
    print(json.dumps({"session_id": turn["session_id"], "reply": turn["reply_text"], "audio": out if turn.get("audio_base64") else None, "timings": turn["timings"]}))
    return 0


if __name__ == "__main__":
    sys.exit(main())
