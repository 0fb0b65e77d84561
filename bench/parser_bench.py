"""Parser micro-benchmark: sseload's SSEParser and event logs against sseclient-py and httpx-sse.

    python bench/parser_bench.py

Same input for all: N events of the reference target's shape (id + one JSON data line), fed
in reads of 4 KiB (what a busy socket returns), then one event per read (what a stream at
20 ms gaps gives the harness). Prints ns per event, best of 5. The event logs do what the
harness does per event: parse, and record the read's time, the size and the send time
(sseload.protocol.sse.PyEventLog in Python, sseload._sse.EventLog compiled).
"""

from __future__ import annotations

import time

from sseload.protocol.sse import PyEventLog, SSEParser

N = 200_000
EVENT = b'id: %d\ndata: {"t_send_ns":1795509578906536068,"seq":%d,"pad":"' + b"x" * 64 + b'"}\n\n'
STREAM = b"".join(EVENT % (i, i) for i in range(N))
KEY = b'"t_send_ns":'
SHAPES = {
    "4 KiB reads": [STREAM[i:i + 4096] for i in range(0, len(STREAM), 4096)],
    "one event per read": [EVENT % (i, i) for i in range(N)],
}
READS: list[bytes] = []


def bench_sseload() -> int:
    p = SSEParser()
    n = 0
    for chunk in READS:
        n += len(p.feed(chunk))
    return n


def _bench_log(cls) -> int:
    log = cls(truth_key=KEY, sentinel=b"[DONE]")
    for t, chunk in enumerate(READS):
        log.feed(chunk, t)
    return len(log)


def bench_py_event_log() -> int:
    return _bench_log(PyEventLog)


def bench_c_event_log() -> int:
    from sseload._sse import EventLog

    return _bench_log(EventLog)


def bench_httpx_sse() -> int:
    from httpx_sse._decoders import SSEDecoder

    decoder = SSEDecoder()
    n = 0
    buf = ""
    for chunk in READS:  # httpx-sse decodes text and splits lines first (httpx's line decoder)
        buf += chunk.decode("utf-8")
        lines = buf.split("\n")
        buf = lines.pop()
        for line in lines:
            if decoder.decode(line) is not None:
                n += 1
    return n


def bench_sseclient() -> int:
    import sseclient

    client = sseclient.SSEClient(iter(READS))
    return sum(1 for _ in client.events())


def measure(fn) -> tuple[float, int]:
    best = float("inf")
    count = 0
    for _ in range(5):
        t = time.perf_counter_ns()
        count = fn()
        best = min(best, time.perf_counter_ns() - t)
    return best / count, count


def main() -> None:
    global READS
    benches = (("SSEParser", bench_sseload), ("PyEventLog", bench_py_event_log),
               ("EventLog (C)", bench_c_event_log), ("httpx-sse", bench_httpx_sse),
               ("sseclient-py", bench_sseclient))
    for shape, reads in SHAPES.items():
        READS = reads
        print(f"\n{N} events of {len(EVENT % (0, 0))} bytes, {shape}; best of 5")
        print(f"{'parser':<14}{'ns/event':>10}{'events':>10}{'vs SSEParser':>14}")
        base = None
        for name, fn in benches:
            try:
                per, count = measure(fn)
            except ImportError as err:
                print(f"{name:<14}  not available ({err.name}); pip install -e '.[bench]'")
                continue
            base = base or per
            print(f"{name:<14}{per:>10.0f}{count:>10}{per / base:>13.1f}x")


if __name__ == "__main__":
    main()
