#!/usr/bin/env python3
"""Stream a WAV file to a streamer server over WebSocket and print the events.

    apt install python3-websockets        # or: pip install websockets
    ./stream_websocket.py ../speech.wav [ws://localhost:8080]

Each final result prints as one line on stdout:

    final ch<channel> <start>-<end> <the model's output as JSON>

e.g. `final ch0 0.482-3.006 {"count": 40384}`; every other event prints as `<type> <JSON>` on
stderr. At the end it checks the server's SHA-256 of the audio it took against the audio sent.
Reads 8/16/24/32-bit integer PCM WAV files (the standard `wave` module); the server resamples.
"""
import asyncio
import hashlib
import json
import sys
import wave

import websockets

CHUNK_SECONDS = 0.1


def print_event(event):
    if event.get("type") == "segment" and event.get("is_final") is True:
        output = {k: v for k, v in event.items() if k not in ("type", "channel", "start_time", "end_time", "is_final")}
        print(f"final ch{event['channel']} {event['start_time']:.3f}-{event['end_time']:.3f} {json.dumps(output)}", flush=True)
    else:
        print(f"{event.get('type')} {json.dumps(event)}", file=sys.stderr, flush=True)


async def main(path, base):
    with wave.open(path, "rb") as wav:
        # The start message declares the format; the frames that follow are the WAV's PCM as it is.
        fmt = {"channels": wav.getnchannels(), "sample_rate": wav.getframerate(),
               "bit_depth": wav.getsampwidth() * 8, "is_float": False}
        frames_per_chunk = max(1, int(wav.getframerate() * CHUNK_SECONDS))
        chunks = []
        while True:
            data = wav.readframes(frames_per_chunk)
            if not data:
                break
            chunks.append(data)
    sent = hashlib.sha256()
    async with websockets.connect(f"{base.rstrip('/')}/api/v1/segmented", max_size=None) as socket:
        await socket.send(json.dumps({"request": "start", "format": fmt}))

        async def send_audio():
            for chunk in chunks:
                await socket.send(chunk)  # binary frame
                sent.update(chunk)
            await socket.send(json.dumps({"request": "stop"}))

        sender = asyncio.create_task(send_audio())
        # Events arrive while the audio is still being sent; `end` is the stream's last.
        async for message in socket:
            event = json.loads(message)
            print_event(event)
            if event.get("type") == "error" and event.get("channel") is None and event.get("code") != "truncated_audio":
                sender.cancel()
                return 1
            if event.get("type") == "end":
                break
        await sender
    if event.get("sha256") == sent.hexdigest():
        print(f"sha256 matches: all {event['bytes_received']} bytes arrived", file=sys.stderr)
        return 0
    print(f"sha256 MISMATCH: sent {sent.hexdigest()}, the server took {event.get('sha256')}", file=sys.stderr)
    return 4


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} <file.wav> [ws://localhost:8080]")
    sys.exit(asyncio.run(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "ws://localhost:8080")))
