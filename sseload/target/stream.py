"""One stream of the reference target: the SSE or OpenAI-style writer on its absolute schedule,
with the faults a real service shows mid-stream (resets, stalls, gzip, split writes)."""

from __future__ import annotations

import contextlib
import json
import socket
import struct
import time
import zlib
from typing import TYPE_CHECKING

from sseload.protocol.gateway import SSE_CONTENT_TYPE, new_request_id

LATENESS_SAMPLES_MAX = 4_000_000  # the send lateness samples one run keeps

if TYPE_CHECKING:
    from sseload.target.server import Connection


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
