#!/usr/bin/env python3
"""Upload a WAV file to a streamer server over HTTP/1.1 and read the results as Server-Sent Events.

    ./upload_sse.py ../speech.wav [http://localhost:8080]

Standard library only (http.client). The request is one POST to /api/v1/segmented whose body is
the raw PCM, sent with `Transfer-Encoding: chunked` (HTTP/1.1 has no streamed body otherwise;
the server also takes HTTP/2, which http.client does not speak), the format in the query. The
server answers at once with `text/event-stream`, before the body ends: a thread sends the body
while the main thread reads the events, so results arrive during the upload. The end of the
body is the stop; the response ends after `end`.

Each final result prints as one line on stdout, as stream_websocket.py prints it:

    final ch<channel> <start>-<end> <the model's output as JSON>

every other event as `<type> <JSON>` on stderr.
"""
import hashlib
import http.client
import json
import sys
import threading
import urllib.parse
import wave

CHUNK_SECONDS = 0.1


def print_event(event):
    if event.get("type") == "segment" and event.get("is_final") is True:
        output = {k: v for k, v in event.items() if k not in ("type", "channel", "start_time", "end_time", "is_final")}
        print(f"final ch{event['channel']} {event['start_time']:.3f}-{event['end_time']:.3f} {json.dumps(output)}", flush=True)
    else:
        print(f"{event.get('type')} {json.dumps(event)}", file=sys.stderr, flush=True)


def sse_events(response):
    """The `data:` of each Server-Sent Event, parsed (it is the same JSON as on the WebSocket)."""
    data = []
    while True:
        line = response.readline()
        if not line:
            return
        line = line.decode("utf-8").rstrip("\r\n")
        if line == "":
            if data:
                yield json.loads("\n".join(data))
            data = []
        elif line.startswith("data:"):
            data.append(line[5:].lstrip(" "))
        # `event:`, `id:` and `: keep-alive` comments need nothing here.


def main(path, base):
    url = urllib.parse.urlsplit(base)
    with wave.open(path, "rb") as wav:
        query = urllib.parse.urlencode({"sample_rate": wav.getframerate(), "channels": wav.getnchannels(),
                                        "bit_depth": wav.getsampwidth() * 8, "is_float": "false"})
        frames_per_chunk = max(1, int(wav.getframerate() * CHUNK_SECONDS))
        chunks = []
        while True:
            data = wav.readframes(frames_per_chunk)
            if not data:
                break
            chunks.append(data)
    sent = hashlib.sha256()
    for chunk in chunks:
        sent.update(chunk)

    Connection = http.client.HTTPSConnection if url.scheme == "https" else http.client.HTTPConnection
    conn = Connection(url.hostname, url.port)
    conn.putrequest("POST", f"{url.path.rstrip('/')}/api/v1/segmented?{query}")
    conn.putheader("Content-Type", "application/octet-stream")
    conn.putheader("Transfer-Encoding", "chunked")
    conn.putheader("Accept", "text/event-stream")
    conn.endheaders()

    def send_body():
        try:
            for chunk in chunks:
                conn.send(b"%x\r\n%s\r\n" % (len(chunk), chunk))
            conn.send(b"0\r\n\r\n")  # the end of the body: the stop
        except OSError:
            pass  # the server ended the stream early: the events say why

    sender = threading.Thread(target=send_body, daemon=True)
    sender.start()
    response = conn.getresponse()
    if response.status != 200:
        print(f"refused: HTTP {response.status} {response.read().decode()}", file=sys.stderr)
        return 1
    end = None
    for event in sse_events(response):
        print_event(event)
        if event.get("type") == "end":
            end = event
    sender.join()
    conn.close()
    if end is None:
        print("the response ended without an end event", file=sys.stderr)
        return 1
    if end.get("sha256") == sent.hexdigest():
        print(f"sha256 matches: all {end['bytes_received']} bytes arrived", file=sys.stderr)
        return 0
    print(f"sha256 MISMATCH: sent {sent.hexdigest()}, the server took {end.get('sha256')}", file=sys.stderr)
    return 4


if __name__ == "__main__":
    if len(sys.argv) not in (2, 3):
        sys.exit(f"usage: {sys.argv[0]} <file.wav> [http://localhost:8080]")
    sys.exit(main(sys.argv[1], sys.argv[2] if len(sys.argv) == 3 else "http://localhost:8080"))
