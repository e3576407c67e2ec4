#!/usr/bin/env python3
"""Stream a 16 kHz mono 16-bit WAV file into /ws/stt in real time and print the transcripts.

Needs the `websockets` package (pip install websockets); everything else is the standard library.

    python3 stt_websocket.py speech.wav
"""
import asyncio
import json
import os
import sys
import wave

import websockets

BASE = os.environ.get("GEMMA_API_URL", "ws://localhost:6666")


async def main(path):
    with wave.open(path, "rb") as f:
        rate, pcm = f.getframerate(), f.readframes(f.getnframes())
    subprotocols = ["gemma-3-api"] + (["api_key." + os.environ["API_KEY"]] if os.environ.get("API_KEY") else [])
    async with websockets.connect(f"{BASE}/ws/stt?sample_rate={rate}", subprotocols=subprotocols) as ws:

        async def send():
            frame = rate // 50 * 2  # 20 ms
            for i in range(0, len(pcm), frame):
                await ws.send(pcm[i : i + frame])
                await asyncio.sleep(0.02)
            await ws.send(json.dumps({"type": "commit"}))

        sender = asyncio.create_task(send())
        try:
            while True:
                event = json.loads(await asyncio.wait_for(ws.recv(), timeout=5 if sender.done() else None))
                if event["type"] == "transcript.partial":
                    print("…", event["text"], file=sys.stderr)
                elif event["type"] == "transcript.final":
                    print(json.dumps({"turn": event["turn_id"], "start_ms": event["start_ms"], "text": event["text"]}), flush=True)
        except asyncio.TimeoutError:
            pass


if __name__ == "__main__":
    if len(sys.argv) < 2:
        sys.exit("usage: stt_websocket.py <16 kHz mono wav>")
    asyncio.run(main(sys.argv[1]))
