#!/usr/bin/env python3
"""Time to the first content delta and to the end of a streamed chat completion with tools, on the wire.

Usage: stream_first_content.py PORT RUNS [--no-tools]
Sends RUNS + 15 identical streamed requests (the first 15 warm the server's JIT up and are not printed) with one tool
and max_tokens 280 at temperature 0, reading the raw HTTP response from a socket so that no client library buffers
the chunks; prints, per measured request, when the first "content" delta arrived, when the stream ended, and how many
content deltas it held. Used for docs/benchmarks.md ("Twenty-third session").
"""
import json
import socket
import sys
import time

port, runs = int(sys.argv[1]), int(sys.argv[2])
body = {"messages": [{"role": "user", "content": "Tell me a story about a cat."}],
        "tools": [{"type": "function", "function": {"name": "get_weather",
                                                    "parameters": {"type": "object", "properties": {"city": {"type": "string"}}}}}],
        "max_tokens": 280, "temperature": 0, "stream": True}
if "--no-tools" in sys.argv:
    body.pop("tools")
payload = json.dumps(body).encode()
request = (b"POST /v1/chat/completions HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Type: application/json\r\n"
           b"Content-Length: %d\r\nConnection: close\r\n\r\n" % len(payload)) + payload
marker = b'"content":"'
for r in range(runs + 15):
    s = socket.create_connection(("127.0.0.1", port))
    start = time.perf_counter()
    s.sendall(request)
    received, first = b"", None
    while True:
        data = s.recv(65536)
        if not data:
            break
        received += data
        if first is None and marker in received:
            first = time.perf_counter() - start
    end = time.perf_counter() - start
    s.close()
    if r >= 15:
        print("first content %7.1f ms  end %7.1f ms  content deltas %d" % ((first or end) * 1000, end * 1000, received.count(marker)))
