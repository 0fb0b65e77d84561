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
import struct
import time
import zlib
from array import array
from datetime import UTC, datetime, timedelta
from urllib.parse import urlsplit

import httptools

from sseload.auth.apig import ALGORITHM, SignatureError, parse_authorization, verify
from sseload.protocol.gateway import ERRORS, REASONS, SSE_CONTENT_TYPE, error_body, new_request_id
from sseload.target.config import TargetConfig

STATS_PATH = "/_sseload/stats"
FAULT_HEADER = "x-sseload-fault"  # a request may ask for one fault by name (tests, demos)
LATENESS_SAMPLES_MAX = 4_000_000


class TargetState:
    """What outlives a connection: issued tokens, lockouts, counters."""

    def __init__(self, cfg: TargetConfig) -> None:
        self.cfg = cfg
        self.rng = random.Random(cfg.seed)  # delays and split points: drawn in the order events go out
        # faults have their own draws, in request order: with a seed, the n-th request gets the
        # same fault whatever the timing of the events in between
        self.fault_rng = random.Random(cfg.seed)
        self.issued_tokens: dict[str, float] = {}  # token -> expiry (monotonic)
        self.failures: dict[str, int] = {}
        self.locked_until: dict[str, float] = {}
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

    # --- authentication, answering like the gateway ---

    def authenticate(self, method: str, url: str, headers: dict[str, str], body: bytes) -> str | None:
        """Return None when allowed, else the ERRORS key to answer with (and a detail)."""
        cfg = self.cfg
        if not cfg.auth_required:
            return None
        now = time.monotonic()
        token = headers.get("x-auth-token")
        if token is not None:
            if token in cfg.tokens:
                return None
            expiry = self.issued_tokens.get(token)
            if expiry is None:
                return "token_invalid"
            return None if expiry > now else "token_expired"
        authorization = headers.get("authorization", "")
        if authorization.startswith(ALGORITHM):
            try:
                access = parse_authorization(authorization)[0]
            except SignatureError:
                return "aksk_invalid" if cfg.aksk else "app_invalid"
            kind = "app_invalid" if access in cfg.app_keys or not cfg.aksk else "aksk_invalid"
            if self.locked_until.get(access, 0.0) > now:
                return "auth_locked"
            try:
                verify(
                    method, url, headers, body,
                    lambda ak: cfg.aksk.get(ak) or cfg.app_keys.get(ak),
                    max_skew_s=cfg.max_skew_s,
                )
            except SignatureError:
                failures = self.failures.get(access, 0) + 1
                self.failures[access] = failures
                if failures >= cfg.lockout_failures:
                    self.locked_until[access] = now + cfg.lockout_s
                    self.failures[access] = 0
                return kind
            self.failures.pop(access, None)
            return None
        code = headers.get("x-apig-appcode")
        if code is not None:
            return None if code in cfg.app_codes else "app_invalid"
        return "token_invalid"

    def issue_token(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        """Emulate IAM ``POST /v3/auth/tokens`` (password identity, project scope)."""
        try:
            auth = json.loads(body)["auth"]
            user = auth["identity"]["password"]["user"]
            name, password = user["name"], user["password"]
            project = auth["scope"]["project"]["name"]
        except (ValueError, KeyError, TypeError):
            return 400, {}, json.dumps({"error": {"code": 400, "message": "The request body is malformed."}}).encode()
        if self.cfg.iam_users.get(name) != password:
            return 401, {}, json.dumps(
                {"error": {"code": 401, "message": "The username or password is wrong."}}).encode()
        token = "MII" + new_request_id() + new_request_id()
        self.issued_tokens[token] = time.monotonic() + self.cfg.token_ttl_s
        issued = datetime.now(UTC)
        expires = issued + timedelta(seconds=self.cfg.token_ttl_s)
        fmt = "%Y-%m-%dT%H:%M:%S.%fZ"
        doc = {
            "token": {
                "expires_at": expires.strftime(fmt),
                "issued_at": issued.strftime(fmt),
                "methods": ["password"],
                "project": {"name": project},
                "user": {"name": name},
            }
        }
        return 201, {"X-Subject-Token": token}, json.dumps(doc).encode()

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
            status, extra, doc = state.issue_token(body)
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
        denied = state.authenticate(method, f"http://{host}{target}", headers, body)
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


def _chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


class LlmAsk:
    """What an OpenAI-style request asks of the emulated LLM: its model, max_tokens, whether the
    usage chunk is wanted (stream_options.include_usage) and the prompt's length in words."""

    __slots__ = ("include_usage", "max_tokens", "model", "prompt_words")

    def __init__(self, model: str = "sseload-target", max_tokens: int = 0, include_usage: bool = False,
                 prompt_words: int = 0) -> None:
        self.model, self.max_tokens, self.include_usage, self.prompt_words = (
            model, max_tokens, include_usage, prompt_words)

    @classmethod
    def of(cls, body: bytes) -> LlmAsk:
        try:
            req = json.loads(body) if body else {}
            messages = req.get("messages") or []
            words = sum(len(str(m.get("content", "")).split()) for m in messages if isinstance(m, dict))
            words += len(str(req.get("prompt", "")).split())
            return cls(str(req.get("model", "sseload-target")), max(0, int(req.get("max_tokens") or 0)),
                       bool((req.get("stream_options") or {}).get("include_usage")), words)
        except (ValueError, AttributeError, TypeError):
            return cls()


class Stream:
    """One SSE response on an absolute schedule: event i is due at t0 + offsets[i].

    OpenAI-style (a path ending in /chat/completions) it streams as an LLM server does: the
    role-only chunk with the head, then content chunks of ``tokens_per_chunk`` tokens (up to the
    request's max_tokens, else ``events`` chunks), the first after ``ttfe_ms`` plus
    ``prefill_ms_per_word`` per prompt word and each next ``gap_ms`` per token it carries later,
    the finish_reason chunk, the usage chunk when asked, ``data: [DONE]``. Every chunk carries
    its ground truth: ``t_send_ns`` and, on content chunks, ``sseload_tokens``.
    """

    __slots__ = (
        "conn", "state", "loop", "openai", "fault", "model", "t0", "offsets", "i", "n",
        "shift", "timer", "token", "limit_timer", "headers_sent", "done", "gzip", "chunk_id",
        "fault_at", "split_at", "ask", "chunk_tokens",
    )

    def __init__(self, conn: Connection, openai: bool, fault: str | None, model: str,
                 ask: LlmAsk | None = None) -> None:
        state = conn.state
        cfg = state.cfg
        self.conn = conn
        self.state = state
        self.loop = conn.loop
        self.openai = openai
        self.fault = fault
        self.model = model
        self.t0 = self.loop.time()
        self.ask = ask
        rng = state.rng
        offsets = []
        t = cfg.ttfe_ms.sample(rng)
        self.chunk_tokens: list[int] = []
        if openai:
            ask = self.ask = ask or LlmAsk()
            t += cfg.prefill_ms_per_word * ask.prompt_words
            left = ask.max_tokens or -1
            while (left > 0 if ask.max_tokens else len(offsets) < cfg.events):
                k = max(1, round(cfg.tokens_per_chunk.sample(rng)))
                k = min(k, left) if ask.max_tokens else k
                offsets.append(max(t, 0.0) / 1000.0)
                self.chunk_tokens.append(k)
                left -= k
                t += sum(cfg.gap_ms.sample(rng) for _ in range(k))
        else:
            for _ in range(cfg.events):
                offsets.append(max(t, 0.0) / 1000.0)
                t += cfg.gap_ms.sample(rng)
        self.offsets = offsets
        self.n = len(offsets)
        self.i = 0
        self.shift = 0.0
        self.timer = None  # slow_headers only; events go through the connection's pacer
        self.token = 0  # the pacer's entry for this stream is valid while it matches
        self.limit_timer = None
        self.headers_sent = False
        self.done = False
        self.gzip = None
        self.chunk_id = "chatcmpl-" + new_request_id()[:24]
        self.fault_at = self.n // 2
        self.split_at = 0.0

    def start(self) -> None:
        state = self.state
        state.streams_started += 1
        state.streams_active += 1
        self.limit_timer = self.loop.call_at(self.t0 + state.cfg.limit_s, self.on_limit)
        if self.fault == "slow_headers":
            self.timer = self.loop.call_at(self.t0 + state.cfg.slow_headers_s, self.send_headers)
        else:
            self.send_headers()

    def send_headers(self) -> None:
        conn, fault = self.conn, self.fault
        if fault and fault.startswith("http_"):
            case = {"http_429": "throttled", "http_500": "internal",
                    "http_502": "backend_unavailable", "http_503": "unavailable"}[fault]
            self.finish_quietly()
            return conn.gateway_error(case)
        if fault == "wrong_content_type":
            self.finish_quietly()
            return conn.respond(200, b"<html><body>Service maintenance</body></html>",
                                content_type="text/html; charset=utf-8")
        head = [
            "HTTP/1.1 200 OK",
            "Content-Type: " + ("text/event-stream" if fault == "no_charset" else SSE_CONTENT_TYPE),
            "Transfer-Encoding: chunked",
            "Cache-Control: no-cache",
            f"X-Request-Id: {new_request_id()}",
            "Server: api-gateway",
        ]
        if fault == "gzip":
            head.append("Content-Encoding: gzip")
            self.gzip = zlib.compressobj(6, zlib.DEFLATED, 16 + zlib.MAX_WBITS)
        if not conn.parser.should_keep_alive():
            head.append("Connection: close")
        conn.transport.write(("\r\n".join(head) + "\r\n\r\n").encode("latin-1"))
        self.headers_sent = True
        if self.openai:  # an LLM server's role-only chunk, with the head
            self.write(self._chunk('"delta":{"role":"assistant","content":""},"finish_reason":null'))
            self.state.events_sent += 1
        self.schedule()

    def schedule(self) -> None:
        if self.i < self.n:
            self.token += 1
            self.conn.pacer.at(self.t0 + self.offsets[self.i] + self.shift, self, self.token)
        else:
            self.finish()

    def tick(self) -> None:
        now = self.loop.time()
        state = self.state
        if len(state.lateness_us) < LATENESS_SAMPLES_MAX:
            state.lateness_us.append(int((now - self.t0 - self.offsets[self.i] - self.shift) * 1e6))
        seq = self.i
        if seq == self.fault_at and self.fault in _MID_STREAM_FAULTS and _MID_STREAM_FAULTS[self.fault](self):
            return
        self.write(self.event(seq))
        state.events_sent += 1
        self.i += 1
        self.schedule()

    def event(self, seq: int) -> bytes:
        if self.openai:  # as an LLM server: k tokens in this chunk, the truth beside them
            k = self.chunk_tokens[seq]
            return self._chunk(f'"delta":{{"content":"{"tok " * k}"}},"finish_reason":null', f',"sseload_tokens":{k}')
        t_send_ns = time.time_ns()
        pad = self.state.pad
        return b'id: %d\ndata: {"t_send_ns":%d,"seq":%d,"pad":"%s"}\n\n' % (seq, t_send_ns, seq, pad)

    def _chunk(self, choice: str, extra: str = "", usage: str = "") -> bytes:
        """One chat.completion.chunk with its send time: one choice (or none, with usage)."""
        t_send_ns = time.time_ns()
        choices = f'[{{"index":0,{choice}}}]' if choice else "[]"
        usage = f',"usage":{usage}' if usage else ""
        return (f'data: {{"t_send_ns":{t_send_ns},"id":"{self.chunk_id}","object":"chat.completion.chunk",'
                f'"created":{t_send_ns // 1_000_000_000},"model":"{self.model}","choices":{choices}{extra}{usage}}}\n\n'
                ).encode()

    def write(self, payload: bytes) -> None:
        transport = self.conn.transport
        if transport is None:
            return
        if self.gzip is not None:
            payload = self.gzip.compress(payload) + self.gzip.flush(zlib.Z_SYNC_FLUSH)
        if self.fault == "split" and len(payload) > 1:
            # pieces 1 ms apart, never overtaking the pieces of an earlier write
            rng = self.state.rng
            cuts = sorted(rng.sample(range(1, len(payload)), min(3, len(payload) - 1)))
            at = max(self.loop.time(), self.split_at)
            for a, b in zip([0, *cuts], [*cuts, len(payload)], strict=True):
                at += 0.001
                self.loop.call_at(at, self._write_late, _chunk(payload[a:b]))
            self.split_at = at
            return
        transport.write(_chunk(payload))

    def _write_late(self, data: bytes) -> None:
        if self.conn.transport is not None and self.conn.stream is self:
            self.conn.transport.write(data)

    def finish(self, completion: bool = True) -> None:
        """End the stream cleanly (terminating chunk), with or without the completion event."""
        if completion and self.openai:  # as an LLM server
            ask, tokens = self.ask, sum(self.chunk_tokens)
            reason = "length" if ask.max_tokens and tokens >= ask.max_tokens else "stop"
            tail = self._chunk(f'"delta":{{}},"finish_reason":"{reason}"')
            if ask.include_usage:
                words = ask.prompt_words
                tail += self._chunk("", usage=f'{{"prompt_tokens":{words},"completion_tokens":{tokens},'
                                              f'"total_tokens":{words + tokens}}}')
            self.write(tail + b"data: [DONE]\n\n")
        elif completion:
            self.write(b'event: done\ndata: {"events":%d}\n\n' % self.n)
        if self.gzip is not None:
            self.write_raw(_chunk(self.gzip.flush()))
        if self.fault == "split":
            self.loop.call_at(max(self.loop.time(), self.split_at) + 0.001, self._end_chunked)
        else:
            self._end_chunked()

    def write_raw(self, data: bytes) -> None:
        if self.conn.transport is not None:
            self.conn.transport.write(data)

    def _end_chunked(self) -> None:
        self.write_raw(b"0\r\n\r\n")
        self.finish_quietly()
        if self.conn.transport is not None and not self.conn.parser.should_keep_alive():
            self.conn.transport.close()

    def finish_quietly(self) -> None:
        """Forget this stream: timers off, counters down; the connection may serve another."""
        if self.done:
            return
        self.done = True
        self.token += 1  # whatever the pacer holds for this stream is void
        self.state.streams_active -= 1
        for timer in (self.timer, self.limit_timer):
            if timer is not None:
                timer.cancel()
        if self.conn.stream is self:
            self.conn.stream = None

    def on_limit(self) -> None:
        """The gateway's limit: 504 before headers, else cut (or close) the stream."""
        conn = self.conn
        self.limit_timer = None
        if self.done:
            return
        if not self.headers_sent:
            self.finish_quietly()
            return conn.gateway_error("backend_timeout", close=True)
        if self.state.cfg.cutoff == "close":
            if self.gzip is not None:
                self.write_raw(_chunk(self.gzip.flush()))
            self.write_raw(b"0\r\n\r\n")
            self.finish_quietly()
            if conn.transport is not None:
                conn.transport.close()
            return
        self.finish_quietly()
        _abort(conn)

    # mid-stream faults: return True when the stream must not go on as usual
    def _reset(self) -> bool:
        self.finish_quietly()
        _abort(self.conn)
        return True

    def _stall(self) -> bool:
        self.shift += self.state.cfg.stall_s
        self.fault = None
        self.schedule()
        return True

    def _malformed(self) -> bool:
        self.write(b"this line has no colon\nretry: soon\ndata: \xff\xfe broken utf-8 {\n\n")
        return False

    def _oversized(self) -> bool:
        self.write(b"data: " + b"o" * self.state.cfg.oversized_bytes + b"\n\n")
        return False

    def _early_close(self) -> bool:
        self.finish(completion=False)
        return True

    def _error_event(self) -> bool:
        self.write(b'event: error\ndata: {"error_code":"ModelArts.0001","error_msg":"model failed"}\n\n')
        self.finish(completion=False)
        return True


_MID_STREAM_FAULTS = {
    "reset": Stream._reset,
    "stall": Stream._stall,
    "malformed": Stream._malformed,
    "oversized": Stream._oversized,
    "early_close": Stream._early_close,
    "error_event": Stream._error_event,
}


def _abort(conn: Connection) -> None:
    """Drop the connection with a RST (SO_LINGER 0), as a gateway cutting a stream does."""
    transport = conn.transport
    if transport is None:
        return
    sock = transport.get_extra_info("socket")
    if sock is not None:
        with contextlib.suppress(OSError):
            sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    transport.abort()


async def serve(cfg: TargetConfig, ready=None, tls=None) -> None:
    """Serve until cancelled. ``ready(host, port)`` is called once listening; ``tls``: HTTPS."""
    loop = asyncio.get_running_loop()
    state = TargetState(cfg)
    pacer = Pacer(loop)
    # Start-up objects out of the collector's sight, young collections rarer: with thousands
    # of open streams, full collections stalled every stream (schedule lateness p99 81 ms at
    # 4,000 streams; 6-11 ms with this).
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
