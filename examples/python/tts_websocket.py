#!/usr/bin/env python3
"""Stream text into /ws/tts word by word (as an LLM would) and save the speech as a WAV file.

Needs the `websockets` package (pip install websockets); everything else is the standard library.

    python3 tts_websocket.py "Hello there. This is the second sentence." [out.wav]
"""
import asyncio
import json
import os
import sys
import wave

import websockets

BASE = os.environ.get("GEMMA_API_URL", "ws://localhost:6666")
RATE = 24000


async def main(text, out):
    subprotocols = ["gemma-3-api"] + (["api_key." + os.environ["API_KEY"]] if os.environ.get("API_KEY") else [])
    async with websockets.connect(f"{BASE}/ws/tts?format=pcm&sample_rate={RATE}", subprotocols=subprotocols) as ws:
        pcm = bytearray()
        for word in text.split(" "):
            await ws.send(json.dumps({"type": "text", "text": word + " "}))
        await ws.send(json.dumps({"type": "flush"}))
        async for message in ws:
            if isinstance(message, bytes):
                pcm.extend(message)
                continue
            event = json.loads(message)
            if event["type"] == "error":
                raise SystemExit(event["error"]["message"])
            if event["type"] == "end":
                with wave.open(out, "wb") as f:
                    f.setnchannels(1)
                    f.setsampwidth(2)
                    f.setframerate(RATE)
                    f.writeframes(bytes(pcm))
                print(json.dumps({"file": out, "duration_seconds": event["duration_seconds"], "engine": event["engine"]}))
                return


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit('usage: tts_websocket.py "<text>" [out.wav]')
    asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) > 2 else "speech.wav"))
