"""The reference target: a real-time streaming service as seen through the API gateway.

One asyncio process (uvloop when available) with a raw protocol and httptools' request
parser: the cheapest server Python offers, so that it holds thousands of streams on one core
and is not the bottleneck of a benchmark. Events follow an absolute schedule (no drift) and
carry the server's send time (``t_send_ns``, time.time_ns) so the harness's own error can be
measured against it.
"""

from __future__ import annotations

import asyncio
import contextlib
import gc
import heapq
import itertools
import json
import random
import socket
import time
from array import array
from urllib.parse import urlsplit

import httptools

from sseload.protocol.gateway import ERRORS, REASONS, error_body, new_request_id
from sseload.target.config import TargetConfig
from sseload.target.gateway_auth import GatewayAuth
from sseload.target.stream import LlmAsk, Stream

STATS_PATH = "/_sseload/stats"
FAULT_HEADER = "x-sseload-fault"  # a request may ask for one fault by name (tests, demos)


class TargetState:
    """What outlives a connection: the gateway's authentication state, faults' draws, counters."""

    def __init__(self, cfg: TargetConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)  # delays and split points: drawn in the order events go out
        # faults have their own draws, in request order: with a seed, the n-th request gets the
        # same fault whatever the timing of the events in between
        self.fault_rng = random.Random(cfg.seed)
        self.auth = GatewayAuth(cfg)
        self.pad = b"x" * cfg.payload_bytes
        self.streams_started = 0
        self.streams_active = 0
        self.events_sent = 0
        self.requests = 0
        self.lateness_us = array("q")
        self.cpu0 = time.process_time()
        self.wall0 = time.monotonic()

    def pick_fault(self, headers: dict[str, str]) -> str | None:
        forced = headers.get(FAULT_HEADER)
        if forced:
            return forced
        if not self.cfg.faults:
            return None
        roll = self.fault_rng.random()
        for name, rate in self.cfg.faults.items():
            roll -= rate
            if roll < 0:
                return name
        return None

    def stats(self) -> dict:
        lateness = sorted(self.lateness_us)

        def pct(p: float) -> float | None:
            if not lateness:
                return None
            return lateness[min(len(lateness) - 1, int(p / 100.0 * len(lateness)))] / 1000.0

        wall = time.monotonic() - self.wall0
        cpu = time.process_time() - self.cpu0
        return {
            "requests": self.requests,
            "streams_started": self.streams_started,
            "streams_active": self.streams_active,
            "events_sent": self.events_sent,
            "cpu_s": cpu,
            "wall_s": wall,
            "cpu_percent": 100.0 * cpu / wall if wall > 0 else 0.0,
            "lateness_ms": {"p50": pct(50), "p99": pct(99), "p999": pct(99.9), "max": pct(100)},
        }

    def reset_stats(self) -> None:
        self.lateness_us = array("q")
        self.events_sent = self.streams_started = self.requests = 0
        self.cpu0 = time.process_time()
        self.wall0 = time.monotonic()


class Pacer:
    """Every stream's next event in one heap, served by one loop timer.

    A timer per event (``loop.call_at``) cost the target a timer handle, two libuv heap
    operations and a callback dispatch per event: about a tenth of its CPU at 40,000 events/s.
    Here the heap holds (due, order, stream, token) and one timer wakes for the earliest entry;
    each wake-up sends every event that is due, so events due in the same millisecond share
    it. Each event still carries its own ``t_send_ns``, taken as it is written. A stream that
    ends early is not searched for: its entries no longer match its token and are skipped.
    """

    __slots__ = ("heap", "loop", "order", "timer", "timer_due")

    def __init__(self, loop: asyncio.AbstractEventLoop) -> None:
        self.loop = loop
        self.heap: list[tuple] = []
        self.order = itertools.count()
        self.timer: asyncio.TimerHandle | None = None
        self.timer_due = float("inf")

    def at(self, due: float, stream: Stream, token: int) -> None:
        """Call ``stream.tick()`` at loop time ``due`` unless ``stream.token`` has moved on."""
        heapq.heappush(self.heap, (due, next(self.order), stream, token))
        if due < self.timer_due:
            if self.timer is not None:
                self.timer.cancel()
            self.timer_due = due
            self.timer = self.loop.call_at(due, self._run)

    def _run(self) -> None:
        self.timer = None
        self.timer_due = float("-inf")  # while sending, at() only pushes; one timer is armed below
        heap, pop = self.heap, heapq.heappop
        # loop.time() moves in whole milliseconds and call_at rounds to them: what is due
        # within half of one is due now (as a timer of its own would have fired now, too)
        horizon = self.loop.time() + 0.0005
        while heap and heap[0][0] <= horizon:
            _, _, stream, token = pop(heap)
            if stream.token == token:  # finish() moves it on too
                stream.tick()
        if heap:
            self.timer_due = due = heap[0][0]
            self.timer = self.loop.call_at(due, self._run)
        else:
            self.timer_due = float("inf")


class Connection(asyncio.Protocol):
    __slots__ = (
        "state", "loop", "pacer", "transport", "parser", "url", "headers", "body", "body_len",
        "too_large", "stream", "_name",
    )

    def __init__(self, state: TargetState, loop: asyncio.AbstractEventLoop, pacer: Pacer) -> None:
        self.state = state
        self.loop = loop
        self.pacer = pacer
        self.transport: asyncio.Transport | None = None
        self.parser = httptools.HttpRequestParser(self)
        self.stream: Stream | None = None

    # asyncio protocol
    def connection_made(self, transport) -> None:  # type: ignore[override]
        self.transport = transport
        sock = transport.get_extra_info("socket")
        if sock is not None:
            with contextlib.suppress(OSError):
                sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)

    def data_received(self, data: bytes) -> None:
        try:
            self.parser.feed_data(data)
        except httptools.HttpParserUpgrade:
            pass
        except httptools.HttpParserError:
            self.respond(400, b'{"error_msg":"malformed HTTP request"}', close=True)

    def connection_lost(self, exc) -> None:
        if self.stream is not None:
            self.stream.finish_quietly()  # the client went away
        self.transport = None

    # httptools callbacks
    def on_message_begin(self) -> None:
        self.url = b""
        self.headers: dict[str, str] = {}
        self.body: list[bytes] = []
        self.body_len = 0
        self.too_large = False

    def on_url(self, url: bytes) -> None:
        self.url += url

    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_body(self, body: bytes) -> None:
        self.body_len += len(body)
        if self.body_len > self.state.cfg.max_body_bytes:
            self.too_large = True
            self.body.clear()
        elif not self.too_large:
            self.body.append(body)

    def on_headers_complete(self) -> None:
        length = self.headers.get("content-length")
        if length and length.isdigit() and int(length) > self.state.cfg.max_body_bytes:
            self.too_large = True

    def on_message_complete(self) -> None:
        state = self.state
        state.requests += 1
        method = self.parser.get_method().decode()
        target = self.url.decode("latin-1")
        path = urlsplit(target).path
        headers = self.headers
        if self.too_large:
            return self.gateway_error("too_large")
        body = b"".join(self.body)
        if path == "/v3/auth/tokens" and method == "POST":
            status, extra, doc = state.auth.issue_token(body)
            return self.respond(status, doc, extra)
        if path == STATS_PATH:
            if method == "POST":
                state.reset_stats()
            return self.respond(200, json.dumps(state.stats()).encode())
        openai = path.endswith("/chat/completions")
        # the infer path as ModelArts publishes it, or the root: `sseload run -H http://target` needs no path
        if not (path.startswith("/v1/infers/") or openai or path == "/"):
            return self.gateway_error("not_found")
        host = headers.get("host", "localhost")
        denied = state.auth.authenticate(method, f"http://{host}{target}", headers, body)
        if denied:
            return self.gateway_error(denied)
        if self.stream is not None:  # a pipelined request while streaming: not supported
            return self.respond(400, b'{"error_msg":"one stream per connection at a time"}', close=True)
        ask = LlmAsk.of(body) if openai else None
        self.stream = Stream(self, openai, state.pick_fault(headers), ask.model if ask else "sseload-target", ask)
        self.stream.start()

    # responses
    def respond(self, status: int, body: bytes, extra: dict[str, str] | None = None,
                content_type: str = "application/json", close: bool = False) -> None:
        if self.transport is None:
            return
        head = [
            f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}",
            f"Content-Type: {content_type}",
            f"Content-Length: {len(body)}",
            f"X-Request-Id: {new_request_id()}",
            "Server: api-gateway",
        ]
        head += [f"{k}: {v}" for k, v in (extra or {}).items()]
        if close or not self.parser.should_keep_alive():
            head.append("Connection: close")
            close = True
        self.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1") + body)
        if close:
            self.transport.close()

    def gateway_error(self, case: str, close: bool = False) -> None:
        status, code, message = ERRORS[case]
        self.respond(status, error_body(code, message, new_request_id()), close=close)


async def serve(cfg: TargetConfig, ready=None, tls=None) -> None:
    """Serve until cancelled. ``ready(host, port)`` is called once listening; ``tls``: HTTPS."""
    loop = asyncio.get_running_loop()
    state = TargetState(cfg)
    pacer = Pacer(loop)
    # Start-up objects out of the collector's sight, young collections rarer: with thousands
    # of open streams, full collections stalled every stream (bench/RESULTS.md has the lateness
    # with and without this).
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
    server = await loop.create_server(
        lambda: Connection(state, loop, pacer), cfg.host, cfg.port, backlog=4096, reuse_address=True, ssl=tls
    )
    port = server.sockets[0].getsockname()[1]
    if ready is not None:
        ready(cfg.host, port)
    async with server:
        await server.serve_forever()
