"""The floor: a bare uvloop client that only times events, for `streams_bench.py --clients raw`.

Issue 7 calibrated its goal against "a raw uvloop client": the least a Python process can spend
per event on this workload. This is that client, written for the bench and nothing else: one
asyncio Protocol per connection, the same request the naive users send, keep-alive, and per read
one clock reading and a scan for the target's `"t_send_ns":` values; no HTTP parser, no SSE
parser, no records, no Locust. Each read's time is taken when data_received runs (as the naive
users do), so at high load its lateness includes its own event loop's delay. A stream ends at
the chunked body's last chunk; the next request goes out on the same connection.

    python bench/raw_client.py --url http://127.0.0.1:8000 --users 2000 --seconds 20 --ramp 4 --out raw.npz
    python bench/raw_client.py --url https://127.0.0.1:8443 --ca-file ca.pem ...   # over TLS (uvloop's)
"""

from __future__ import annotations

import argparse
import asyncio
import time
from array import array

import numpy as np
from workload import BODY, PATH

KEY = b'"t_send_ns":'
END = b"\r\n0\r\n\r\n"  # the chunked body's last chunk, after the previous chunk's CRLF


class Stream(asyncio.Protocol):
    def __init__(self, request: bytes, out: tuple[array, array, array], done: asyncio.Event) -> None:
        self.request, self.out, self.done = request, out, done
        self.transport = None
        self.first = True
        self.tail = b""
        self.streams = 0

    def connection_made(self, transport) -> None:
        self.transport = transport
        transport.write(self.request)

    def data_received(self, data: bytes) -> None:
        now = time.time_ns()
        recv, late, first = self.out
        seen = self.tail + data
        at = seen.find(KEY)
        while at >= 0:
            start = at + len(KEY)
            end = start
            while end < len(seen) and 48 <= seen[end] <= 57:
                end += 1
            if end == len(seen):  # the number may go on in the next read
                break
            recv.append(now)
            late.append(now - int(seen[start:end]))
            first.append(1 if self.first else 0)
            self.first = False
            at = seen.find(KEY, end)
        # keep what a key or a number split across reads needs (a finished key's number is short)
        self.tail = seen[at:] if at >= 0 else seen[-(len(KEY) - 1):]
        if seen.endswith(END):
            self.streams += 1
            self.first, self.tail = True, b""
            if not self.done.is_set():
                self.transport.write(self.request)

    def connection_lost(self, exc) -> None:
        self.transport = None


async def main_async(args) -> None:
    tls = args.url.startswith("https://")
    host, port = args.url.removeprefix("https://" if tls else "http://").rstrip("/").rsplit(":", 1)
    context = None
    if tls:
        import ssl

        context = ssl.create_default_context(cafile=args.ca_file)
    request = (f"POST {PATH} HTTP/1.1\r\nHost: {host}:{port}\r\nContent-Type: application/json\r\n"
               f"Accept: text/event-stream\r\nContent-Length: {len(BODY)}\r\n\r\n").encode() + BODY
    out = (array("q"), array("q"), array("b"))
    done = asyncio.Event()
    loop = asyncio.get_running_loop()
    streams = []
    for _ in range(args.users):  # spread the starts over the ramp, as Locust's spawn rate does
        _, proto = await loop.create_connection(lambda: Stream(request, out, done), host, int(port), ssl=context)
        streams.append(proto)
        await asyncio.sleep(args.ramp / args.users)
    await asyncio.sleep(args.seconds - args.ramp)
    done.set()
    for proto in streams:
        if proto.transport is not None:
            proto.transport.close()
    recv, late, first = out
    np.savez(args.out, recv_ns=np.frombuffer(recv, np.int64), late_ns=np.frombuffer(late, np.int64),
             first=np.frombuffer(first, np.int8), streams=np.array([sum(p.streams for p in streams)]))


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--url", required=True)
    ap.add_argument("--users", type=int, required=True)
    ap.add_argument("--seconds", type=float, required=True, help="whole run, ramp included")
    ap.add_argument("--ramp", type=float, default=4.0)
    ap.add_argument("--out", required=True)
    ap.add_argument("--ca-file", help="https: the CA that signed the target's certificate")
    args = ap.parse_args()
    import uvloop

    uvloop.run(main_async(args))


if __name__ == "__main__":
    main()
