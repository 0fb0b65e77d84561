"""Independent servers for tests: real third-party SSE servers and hostile or odd HTTP peers.

None of them is sseload's own reference target (``sseload serve``), so tests written against them check
sseload against behaviour it did not define itself. Every server listens on 127.0.0.1 on a free port, is
started when returned, is a context manager (``with garbage() as srv: ...``) and stops cleanly: no thread or
process is left behind, and each one stops by itself after ``max_life_s`` even if a test forgets it.

Shared attributes of every server:

- ``url``: the full URL to request (base URL plus the server's ``path``); ``base_url``, ``host``, ``port``
- ``requests``: ``list[bytes]``, each request as received (head and body, chunked framing included)
- ``received``: the same as parsed :class:`Request` objects (method, target, headers, decoded body)
- ``connections``: how many connections were accepted
- ``errors``: unexpected exceptions raised by a handler (a bug in the server, not a client going away)

This module is the catalogue, one behaviour per named factory; the framework under it (the threaded
server, connections, request parsing, the subprocess runner) is tests/serverkit.py. The pytest fixture
``start_server`` (tests/conftest.py) starts any of them and stops them all at teardown.
"""

from __future__ import annotations

import contextlib
import itertools
import json
import random
import select
import shutil
import socket
import ssl
import tempfile
import threading
import time
import uuid
from collections import deque
from collections.abc import Iterable
from pathlib import Path

from tests.serverkit import (  # noqa: F401  (the framework's names, for tests that build their own server)
    APIG_413_BODY,
    APIG_500_BODY,
    HOST,
    HTTP2_GOAWAY_PROTOCOL_ERROR,
    HTTP2_SETTINGS_FRAME,
    REASONS,
    SSE_HEADERS,
    TLS_ALERT_UNEXPECTED_MESSAGE,
    Closed,
    Conn,
    Request,
    ScriptedServer,
    SubprocessServer,
    parse_head,
    parse_request,
    response_head,
    send_sse,
    serve_keepalive,
    sse_event,
    take_request,
)


def sse_starlette_server(events: int = 5, gap_s: float = 0.0, path: str = "/stream", **kw) -> SubprocessServer:
    """sse-starlette on Starlette under uvicorn (a child process): GET and POST on ``path`` answer ``events``
    events ``data: {"i": k}`` ``gap_s`` apart, then the response ends cleanly (chunked, keep-alive).

    Options: ``ping_s`` (sse-starlette's ``: ping`` comment interval, high by default), ``first_delay_s``,
    ``stamp`` (add ``"t_send_ns"``), ``sep`` (sse-starlette's line end, CRLF by default), ``http`` (uvicorn's
    ``auto``/``h11``/``httptools``), ``status``, ``max_life_s``.
    """
    return SubprocessServer(events=events, gap_s=gap_s, path=path, **kw)


# --------------------------------------------------------------------------------------------------------------
# 2. An OpenAI-style chat completions stream


def openai_mock_server(chunks: int | Iterable[str] = 5, gap_s: float = 0.0, *, model: str = "mock-gpt",
                       path: str = "/v1/chat/completions", first_delay_s: float = 0.0, stamp: bool = False,
                       **kw) -> ScriptedServer:
    """``POST /v1/chat/completions``: a role chunk, content chunks, a ``finish_reason`` chunk, ``data: [DONE]``.

    ``chunks`` is a count (contents ``tok0 ``, ``tok1 ``...) or the contents themselves. Chunked transfer
    encoding, ``text/event-stream``, keep-alive. A body with ``"stream": false`` gets one JSON completion;
    another path gets 404, another method 405. ``stamp`` adds ``"t_send_ns"`` to each chunk.
    """
    contents = [f"tok{k} " for k in range(chunks)] if isinstance(chunks, int) else list(chunks)

    def chunk(cid: str, created: int, delta: dict, finish: str | None = None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": created, "model": model,
               "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if stamp:
            obj["t_send_ns"] = time.time_ns()
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    def respond(conn: Conn, req: Request) -> bool:
        if req.target.split("?")[0] != path:
            conn.send_response(404, b'{"error":{"message":"not found","type":"invalid_request_error"}}',
                               {"Content-Type": "application/json"})
            return True
        if req.method != "POST":
            conn.send_response(405, b'{"error":{"message":"method not allowed"}}',
                               {"Content-Type": "application/json", "Allow": "POST"})
            return True
        try:
            wants_stream = json.loads(req.body or b"{}").get("stream", True) is not False
        except (ValueError, AttributeError):
            wants_stream = True
        cid, created = f"chatcmpl-{uuid.uuid4().hex[:24]}", int(time.time())
        if not wants_stream:
            full = {"id": cid, "object": "chat.completion", "created": created, "model": model,
                    "choices": [{"index": 0, "finish_reason": "stop",
                                 "message": {"role": "assistant", "content": "".join(contents)}}]}
            conn.send_response(200, json.dumps(full).encode(), {"Content-Type": "application/json"})
            return True
        conn.start_chunked(200, {"Content-Type": "text/event-stream", "X-Request-Id": cid})
        conn.wait(first_delay_s)
        conn.send_chunk(chunk(cid, created, {"role": "assistant"}))
        for text in contents:
            conn.wait(gap_s)
            conn.send_chunk(chunk(cid, created, {"content": text}))
        conn.send_chunk(chunk(cid, created, {}, "stop"))
        conn.send_chunk(b"data: [DONE]\n\n")
        conn.end_chunked()
        return True

    return ScriptedServer(lambda c: serve_keepalive(c, respond), name="openai-mock", path=path, **kw)


class _FifoSlots:
    """``slots`` places served in arrival order: a request that finds them all taken waits its turn."""

    def __init__(self, slots: int) -> None:
        self.free = slots
        self.queue: deque[object] = deque()
        self.cond = threading.Condition()

    def take(self, conn: Conn) -> None:
        ticket = object()
        with self.cond:
            self.queue.append(ticket)
            try:
                while not (self.free and self.queue[0] is ticket):
                    self.cond.wait(0.05)
                    if conn.stopping:
                        raise Closed
            except BaseException:
                self.queue.remove(ticket)
                self.cond.notify_all()
                raise
            self.queue.popleft()
            self.free -= 1
            self.cond.notify_all()

    def give_back(self) -> None:
        with self.cond:
            self.free += 1
            self.cond.notify_all()


def slots_server(slots: int = 4, chunks: int = 5, gap_s: float = 0.02, *, path: str = "/v1/chat/completions",
                 queue: int | None = None, **kw) -> ScriptedServer:
    """An LLM service with a known capacity: ``slots`` streams are served at once, and a request beyond
    them waits, in arrival order, for a slot (as a model server's batch does), so its time to first
    token grows by the wait. The response head goes out at once; on taking a slot, the role chunk and
    the first content chunk, then ``chunks - 1`` more ``gap_s`` apart; the slot is given back before
    the ``finish_reason`` chunk and ``data: [DONE]`` (a closed-model user asks again only after it).
    ``queue``: the most requests waiting; one more is refused at once with a 503 (an error, not a wait).

    Ground truth per stream in ``server.truth``: ``waited_s`` (for a slot) and ``held_s`` (a slot held)."""
    srv: ScriptedServer
    place = _FifoSlots(slots)

    def chunk(delta: dict, finish: str | None = None) -> bytes:
        obj = {"id": "chatcmpl-slots", "object": "chat.completion.chunk", "created": int(time.time()),
               "model": "slots", "choices": [{"index": 0, "delta": delta, "finish_reason": finish}]}
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    def respond(conn: Conn, req: Request) -> bool:
        if req.target.split("?")[0] != path or req.method != "POST":
            conn.send_response(404, b'{"error":{"message":"not found"}}', {"Content-Type": "application/json"})
            return True
        arrived = time.monotonic()
        if queue is not None and len(place.queue) >= queue and not place.free:
            conn.send_response(503, b'{"error":{"message":"overloaded"}}', {"Content-Type": "application/json"})
            return True
        conn.start_chunked(200, {"Content-Type": "text/event-stream"})
        place.take(conn)
        took = time.monotonic()
        try:
            conn.send_chunk(chunk({"role": "assistant", "content": ""}) + chunk({"content": "t0 "}))
            for k in range(1, chunks):
                conn.wait(gap_s)
                conn.send_chunk(chunk({"content": f"t{k} "}))
        finally:
            place.give_back()
            with srv._lock:
                srv.truth.append({"waited_s": took - arrived, "held_s": time.monotonic() - took})
        conn.send_chunk(chunk({}, "stop") + b"data: [DONE]\n\n")
        conn.end_chunked()
        return True

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name="slots", path=path, **kw)
    srv.truth = []
    return srv


def vllm_like_server(*, prefill_s: float = 0.2, token_s: float = 0.01, chunk_tokens: tuple[int, ...] = (1, 3, 2),
                     default_max_tokens: int = 24, path: str = "/v1/chat/completions", error_after: int = 0,
                     **kw) -> ScriptedServer:
    """An LLM server as vLLM streams: the role-only chunk at once, the first content chunk after
    ``prefill_s``, then chunks of ``chunk_tokens`` tokens in turn (a chunk of k tokens ``k * token_s``
    after the one before), until ``max_tokens`` (from the body); a ``finish_reason`` chunk, the usage chunk
    when the body asks ``stream_options.include_usage``, ``data: [DONE]``. With the body's
    ``stream_options.continuous_usage_stats`` every chunk carries the usage so far (as vLLM's does).
    Each request's words are ``w<n> `` (n: the request's number), one per token. ``error_after``:
    after that many tokens, an error object in a chunk (vLLM's mid-stream error) and ``[DONE]``.

    Ground truth per request in ``server.truth``: ``first_token_s`` and ``last_token_s`` (since the
    request was read), ``tokens``, ``chunks`` (content chunks), ``chunk_s`` (each content chunk's send
    time since the request was read), ``chunk_tokens`` (each one's tokens), the ``answer`` text and the
    request ``body``.
    """
    srv: ScriptedServer

    def chunk(cid: str, delta: dict, finish: str | None = None, usage: dict | None = None) -> bytes:
        obj = {"id": cid, "object": "chat.completion.chunk", "created": int(time.time()), "model": "vllm-like",
               "choices": [] if usage else [{"index": 0, "delta": delta, "finish_reason": finish}]}
        if usage:
            obj["usage"] = usage
        return b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"

    def respond(conn: Conn, req: Request) -> bool:
        t_req = time.monotonic()
        if req.target.split("?")[0] != path or req.method != "POST":
            conn.send_response(404, b'{"error":{"message":"not found"}}', {"Content-Type": "application/json"})
            return True
        body = json.loads(req.body or b"{}")
        max_tokens = int(body.get("max_tokens", default_max_tokens))
        options = body.get("stream_options") or {}
        include_usage, continuous = bool(options.get("include_usage")), bool(options.get("continuous_usage_stats"))
        prompt = " ".join(str(m.get("content", "")) for m in body.get("messages", []))
        cid = f"chatcmpl-{uuid.uuid4().hex[:24]}"
        word = f"w{next(srv.numbers)} "

        def usage(sent: int) -> dict | None:
            return {"prompt_tokens": len(prompt.split()), "completion_tokens": sent,
                    "total_tokens": len(prompt.split()) + sent}

        def delta_chunk(delta: dict, sent: int, finish: str | None = None) -> bytes:
            data = chunk(cid, delta, finish)
            if continuous:  # the usage so far rides on the chunk itself
                obj = json.loads(data[6:])
                obj["usage"] = usage(sent)
                data = b"data: " + json.dumps(obj, separators=(",", ":")).encode() + b"\n\n"
            return data

        conn.start_chunked(200, {"Content-Type": "text/event-stream"})
        conn.send_chunk(delta_chunk({"role": "assistant", "content": ""}, 0))
        due, sent, k, first, at, sizes = t_req + prefill_s, 0, 0, None, [], []
        while sent < max_tokens and not (error_after and sent >= error_after):
            n = min(chunk_tokens[k % len(chunk_tokens)], max_tokens - sent)
            if k:
                due += n * token_s
            k += 1
            conn.wait(due - time.monotonic())
            conn.send_chunk(delta_chunk({"content": word * n}, sent + n))
            at.append(time.monotonic() - t_req)
            first = at[0] if first is None else first
            sent += n
            sizes.append(n)
        last = time.monotonic() - t_req
        if error_after and sent >= error_after:
            conn.send_chunk(b'data: {"error":{"object":"error","message":"the engine died mid-stream",'
                            b'"type":"InternalServerError","code":500}}\n\n')
        else:
            conn.send_chunk(delta_chunk({}, sent, "length"))
            if include_usage:
                conn.send_chunk(chunk(cid, {}, usage=usage(sent)))
        conn.send_chunk(b"data: [DONE]\n\n")
        conn.end_chunked()
        with srv._lock:
            srv.truth.append({"first_token_s": first, "last_token_s": last, "tokens": sent, "chunks": len(sizes),
                              "chunk_s": at, "chunk_tokens": sizes, "answer": word * sent, "body": req.body})
        return True

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name="vllm-like", path=path, **kw)
    srv.truth = []
    srv.numbers = itertools.count()  # each request's number, in its words
    return srv


# --------------------------------------------------------------------------------------------------------------
# 3. Hostile and odd servers


def endless_head(*, line_bytes: int | None = 1024, max_bytes: int = 200 * 1024 * 1024, max_s: float = 60.0,
                 **kw) -> ScriptedServer:
    """``HTTP/1.1 200 OK`` then ``X-Junk: aaaa...`` header bytes forever: the head never ends.

    ``line_bytes``: each ``X-Junk`` line's size (many lines), or None for one header line that never ends.
    Stops when the client goes away, after ``max_bytes`` sent, or after ``max_s``. ``server.sent`` holds
    the bytes sent per connection.
    """
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        block = b"a" * 16384
        if line_bytes is not None:
            line = b"X-Junk: " + b"a" * max(1, line_bytes - 10) + b"\r\n"
            block = line * max(1, 16384 // len(line))
        try:
            conn.send(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nX-Junk: " if line_bytes is None
                      else b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n")
            deadline = time.monotonic() + max_s
            while conn.bytes_sent < max_bytes and time.monotonic() < deadline:
                conn.send(block)
        finally:
            srv.sent.append(conn.bytes_sent)

    kw.setdefault("max_life_s", max(60.0, max_s + 5))
    srv = ScriptedServer(handle, name="endless-head", **kw)
    srv.sent = []
    return srv


def huge_head(size_bytes: int = 1024 * 1024, *, events: int = 3, **kw) -> ScriptedServer:
    """A 200 head with one ``X-Huge`` header of ``size_bytes`` bytes of value, then a normal SSE body
    (``Content-Length``, keep-alive)."""
    body = b"".join(sse_event(k) for k in range(events))

    def respond(conn: Conn, req: Request) -> bool:
        head = response_head(200, {**SSE_HEADERS, "X-Huge": "h" * size_bytes}, content_length=len(body))
        conn.send(head + body)
        return True

    return ScriptedServer(lambda c: serve_keepalive(c, respond), name="huge-head", **kw)


def garbage(size: int = 4096, *, seed: int | None = None, **kw) -> ScriptedServer:
    """Reads the request, sends ``size`` random bytes that are not HTTP, then closes. ``server.sent`` has them."""
    rng = random.Random(seed)
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        junk = b"\x00\xff" + bytes(rng.getrandbits(8) for _ in range(max(0, size - 2)))
        srv.sent.append(junk)
        conn.send(junk)
        conn.drain(0.02)

    srv = ScriptedServer(handle, name="garbage", **kw)
    srv.sent = []
    return srv


def close_on_accept(**kw) -> ScriptedServer:
    """Accepts each connection and closes it at once, reading nothing."""
    return ScriptedServer(lambda conn: conn.close(), name="close-on-accept", **kw)


def http2_only(*, goaway: bool = False, **kw) -> ScriptedServer:
    """Answers whatever arrives first (an HTTP/1.1 request, or the h2 preface) with the HTTP/2 server preface
    (an empty SETTINGS frame; a GOAWAY PROTOCOL_ERROR after it if ``goaway``), then closes."""

    def handle(conn: Conn) -> None:
        data = conn.recv()
        if not data:
            return
        data += conn.drain(0.02)
        if data.startswith(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n"):
            conn.server._record(Request(data, "PRI", "*", "HTTP/2.0", []))
        else:
            conn.server._record_raw(data)
        conn.send(HTTP2_SETTINGS_FRAME + (HTTP2_GOAWAY_PROTOCOL_ERROR if goaway else b""))
        conn.drain(0.02)

    return ScriptedServer(handle, name="http2-only", **kw)


def tls_server(events: int = 3, gap_s: float = 0.0, *, plain_reply: str = "alert", stamp: bool = False,
               close_each: bool = False, close_idle_s: float | None = None, close_notify: bool = False,
               **kw) -> ScriptedServer:
    """SSE over HTTPS (chunked, keep-alive; ``close_each``: the connection closed after each response)
    with a certificate for 127.0.0.1/localhost from a trustme CA. ``server.tls_resumed`` says, for each
    handshake, whether it resumed an earlier session. ``close_idle_s``: a connection idle that long
    after a response is closed cleanly, as servers time idle ones out: TLS's close_notify, then (its
    answer not awaited long) the FIN; a request that comes meanwhile is kept in ``server.unanswered``,
    never answered. ``close_notify``: with ``close_each``, each close is a clean one, TLS's close_notify
    sent right after the response's last bytes.

    ``server.ca`` is the ``trustme.CA``, ``server.ca_file`` its PEM (removed at stop), ``server.ssl_context()``
    a client context trusting it. Plain (non-TLS) bytes reaching the port are read and kept in
    ``server.plain_requests``, then answered with a fatal TLS alert (``plain_reply="alert"``) or just closed
    (``"close"``).
    """
    import trustme

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1", "localhost")
    ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    cert.configure_cert(ctx)
    tmp = Path(tempfile.mkdtemp(prefix="tls-server-"))
    ca_file = tmp / "ca.pem"
    ca.cert_pem.write_to_path(str(ca_file))
    srv: ScriptedServer

    def respond(conn: Conn, req: Request) -> bool:
        send_sse(conn, events, gap_s, stamp=stamp, keep_alive=not close_each)
        if close_each and close_notify:
            conn.sock.settimeout(0.2)
            with contextlib.suppress(OSError, ssl.SSLError):
                conn.sock.unwrap()
        if close_idle_s is None or close_each:
            return not close_each
        ready, _, _ = select.select([conn.sock], [], [], close_idle_s)
        if ready or conn.sock.pending():  # the next request, in time
            return True
        conn.sock.settimeout(0.2)
        with contextlib.suppress(OSError, ssl.SSLError):
            raw = conn.sock.unwrap()  # close_notify (and a short wait for the client's)
            late = b""
            with contextlib.suppress(OSError):
                while data := raw.recv(65536):  # a request sent after it: never answered
                    late += data
            if late:
                with srv._lock:
                    srv.unanswered.append(late)
        return False

    def plaintext(conn: Conn) -> None:
        got = conn.drain(0.5, until=b"\r\n\r\n")
        with srv._lock:
            srv.plain_requests.append(got)
        if plain_reply == "alert":
            conn.send(TLS_ALERT_UNEXPECTED_MESSAGE)
        conn.drain(0.02)

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name="tls", tls=ctx, on_plaintext=plaintext, **kw)
    srv.ca, srv.ca_file, srv.plain_requests, srv.unanswered = ca, ca_file, [], []

    def client_context() -> ssl.SSLContext:
        client = ssl.create_default_context()
        ca.configure_trust(client)
        return client

    srv.ssl_context = client_context
    stop = srv.stop

    def stop_and_clean(timeout: float = 5.0) -> None:
        try:
            stop(timeout)
        finally:
            shutil.rmtree(tmp, ignore_errors=True)

    srv.stop = stop_and_clean
    return srv


def silent(*, max_s: float = 30.0, **kw) -> ScriptedServer:
    """Accepts and never sends a byte; reads (and records) what arrives until the client closes or ``max_s``."""

    def handle(conn: Conn) -> None:
        deadline, pending = time.monotonic() + max_s, b""
        try:
            while time.monotonic() < deadline and not conn.stopping:
                ready, _, _ = select.select([conn.sock], [], [], 0.1)
                if not ready:
                    continue
                data = conn.sock.recv(65536)
                if not data:
                    break
                pending = conn.server._record_raw(pending + data, final=False)
        finally:
            if pending:
                conn.server._fragment(pending)

    kw.setdefault("max_life_s", max(60.0, max_s + 5))
    return ScriptedServer(handle, name="silent", **kw)


def paced_sse(events: int = 3, gap_s: float = 0.0, *, first_delay_s: float = 0.0, **kw) -> ScriptedServer:
    """A plain SSE service (chunked, keep-alive): ``events`` events ``gap_s`` apart, the first after
    ``first_delay_s``."""
    return ScriptedServer(lambda conn: serve_keepalive(conn, lambda c, req: send_sse(
        c, events, gap_s, first_delay_s=first_delay_s) or True), name="paced", **kw)


def continue_then_sse(events: int = 3, gap_s: float = 0.0, *, stamp: bool = False, **kw) -> ScriptedServer:
    """``HTTP/1.1 100 Continue`` (asked for or not) after the request head, then a normal 200 SSE response
    (chunked, keep-alive)."""

    def handle(conn: Conn) -> None:
        while True:
            head_only = conn.read_request(read_body=False)
            if head_only is None:
                return
            conn.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            raw_body, head_only.body = conn._read_body(head_only)
            head_only.raw += raw_body
            send_sse(conn, events, gap_s, stamp=stamp)
            if not head_only.keep_alive:
                return

    return ScriptedServer(handle, name="continue-then-sse", **kw)


def rst_after_quiet(events: int = 3, quiet_s: float = 0.5, *, gap_s: float = 0.0, **kw) -> ScriptedServer:
    """A 200 SSE head (chunked) and ``events`` events, then ``quiet_s`` of silence, then a TCP reset."""

    def handle(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        conn.start_chunked(200)
        for k in range(events):
            if k:
                conn.wait(gap_s)
            conn.send_chunk(sse_event(k))
        conn.wait(quiet_s)
        conn.reset()

    return ScriptedServer(handle, name="rst-after-quiet", **kw)


def early_413(*, linger_s: float = 0.0, **kw) -> ScriptedServer:
    """Reads only the request head, answers 413 with an APIG-style JSON body and closes without reading the
    body (unread body bytes make the close a reset, as at a real gateway). ``linger_s > 0``: after the answer,
    shut down writing and drop incoming bytes for that long before closing (a lingering close).
    ``server.request_ids`` has the ids sent."""
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        req = conn.read_request(read_body=False)
        if req is None:
            return
        rid = uuid.uuid4().hex
        srv.request_ids.append(rid)
        body = APIG_413_BODY.replace("{request_id}", rid).encode()
        conn.send_response(413, body, {"Content-Type": "application/json"}, keep_alive=False)
        if linger_s > 0:
            with contextlib.suppress(OSError):
                conn.sock.shutdown(socket.SHUT_WR)
            conn.drain(linger_s)

    srv = ScriptedServer(handle, name="early-413", **kw)
    srv.request_ids = []
    return srv


def status_server(status: int = 500, body: bytes | str | dict | None = None, headers: dict[str, str] | None = None,
                  *, keep_alive: bool = True, **kw) -> ScriptedServer:
    """Answers every request with ``status`` and ``body`` (Content-Length; keep-alive unless told otherwise).

    ``body``: bytes/str (``{request_id}`` in it becomes a fresh id per request), a dict (sent as JSON), or
    None: an APIG-style JSON error with a random ``request_id`` per request. ``headers`` are added (e.g.
    ``{"Location": "/elsewhere"}`` for a 302). ``server.request_ids`` has the ids sent.
    """
    if body is None:
        template = APIG_500_BODY.encode()
    elif isinstance(body, dict):
        template = json.dumps(body).encode()
    else:
        template = body.encode() if isinstance(body, str) else body
    given = {k.lower() for k in headers or {}}
    hdrs = {**({} if "content-type" in given else {"Content-Type": "application/json"}), **(headers or {})}
    srv: ScriptedServer

    def respond(conn: Conn, req: Request) -> bool:
        rid = uuid.uuid4().hex
        srv.request_ids.append(rid)
        payload = template.replace(b"{request_id}", rid.encode())
        conn.send_response(status, b"" if req.method == "HEAD" else payload, hdrs, keep_alive=keep_alive)
        return keep_alive

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name=f"status-{status}", **kw)
    srv.request_ids = []
    return srv


def keepalive_closer(events: int = 3, idle_close_s: float = 0.2, *, goodbye: bytes = b"", **kw) -> ScriptedServer:
    """One SSE response per connection (Content-Length, ``Connection: keep-alive``), then after
    ``idle_close_s`` the server closes the connection. A request sent on it meanwhile is read (so the close is
    a FIN) but never answered; such requests are kept in ``server.unanswered`` (and in ``requests``). Where
    none came, ``goodbye`` is sent before the close (see :func:`idle_408`)."""
    body = b"".join(sse_event(k) for k in range(events))
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        if conn.read_request() is None:
            return
        conn.send(response_head(200, SSE_HEADERS, keep_alive=True, content_length=len(body)) + body)
        late = conn.drain(idle_close_s)
        if late.strip():
            with srv._lock:
                srv.unanswered.append(late)
            srv._record_raw(late)
        elif goodbye:
            conn.send(goodbye)
            conn.drain(0.05)
        # returning closes the connection

    kw.setdefault("name", "keepalive-closer")
    srv = ScriptedServer(handle, **kw)
    srv.unanswered = []
    return srv


def buffering_proxy(events: int = 5, gap_s: float = 0.05, **kw) -> ScriptedServer:
    """What a buffering proxy in front of an SSE origin does: a 200 SSE head with Content-Length and all
    ``events`` events in ONE write, after ``events * gap_s``. Event k carries ``"t_send_ns"``: the time the
    origin would have sent it (the request's arrival plus k * gap_s, on time.time_ns()). Keep-alive."""

    def respond(conn: Conn, req: Request) -> bool:
        t0 = time.time_ns()
        gap_ns = int(gap_s * 1e9)
        conn.wait(events * gap_s)
        body = b"".join(sse_event(k, t_send_ns=t0 + k * gap_ns) for k in range(events))
        conn.send(response_head(200, SSE_HEADERS, content_length=len(body)) + body)
        return True

    return ScriptedServer(lambda c: serve_keepalive(c, respond), name="buffering-proxy", **kw)


def reconnecting_feed(events_per_connection: int = 3, retry_ms: int = 100, *, total_events: int | None = None,
                      gap_s: float = 0.0, **kw) -> ScriptedServer:
    """A long-lived feed: ``retry: <retry_ms>``, then events ``id: <n>`` / ``data: {"i": n}`` (chunked), and
    after ``events_per_connection`` events the connection is dropped (no closing chunk). A reconnect's
    ``Last-Event-ID`` is honoured: the feed goes on from the next id. ``server.last_event_ids`` records the
    header per request (None when absent). With ``total_events``, the stream that reaches it ends cleanly
    (closing chunk, keep-alive) instead."""
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            last = req.header("last-event-id")
            with srv._lock:
                srv.last_event_ids.append(last)
            try:
                n = int(last) + 1 if last is not None else 0
            except ValueError:
                n = 0
            conn.start_chunked(200)
            conn.send_chunk(b"retry: %d\n\n" % retry_ms)
            for k in range(events_per_connection):
                if total_events is not None and n >= total_events:
                    conn.end_chunked()
                    break
                if k:
                    conn.wait(gap_s)
                conn.send_chunk(sse_event(n, event_id=n))
                n += 1
            else:
                if total_events is not None and n >= total_events:
                    conn.end_chunked()
                else:
                    return  # drop the connection mid-stream
            if not req.keep_alive:
                return

    srv = ScriptedServer(handle, name="reconnecting-feed", **kw)
    srv.last_event_ids = []
    return srv


# --------------------------------------------------------------------------------------------------------------
# 4. Peers for trace replay and the service's own metrics


def arrival_log(chunks: int = 2, gap_s: float = 0.0, *, path: str = "/v1/chat/completions", **kw) -> ScriptedServer:
    """An OpenAI-style streaming endpoint that logs when each request arrived: ``server.arrivals`` holds
    ``(time.time_ns() when the request was read whole, its body as JSON)`` in order of arrival. Each answer
    is ``chunks`` content chunks ``gap_s`` apart, a ``finish_reason`` chunk and ``data: [DONE]`` (chunked,
    keep-alive)."""
    srv: ScriptedServer

    def respond(conn: Conn, req: Request) -> bool:
        arrived_ns = time.time_ns()
        try:
            body = json.loads(req.body or b"{}")
        except ValueError:
            body = None
        with srv._lock:
            srv.arrivals.append((arrived_ns, body))
        conn.start_chunked(200, {"Content-Type": "text/event-stream"})
        for k in range(chunks):
            if k:
                conn.wait(gap_s)
            conn.send_chunk(b'data: {"choices":[{"index":0,"delta":{"content":"t%d "},"finish_reason":null}]}\n\n' % k)
        conn.send_chunk(b'data: {"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        conn.end_chunked()
        return True

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name="arrival-log", path=path, **kw)
    srv.arrivals = []
    return srv


def prometheus_page(step_s: float = 0.5, *, path: str = "/metrics", pages: int | None = None,
                    **kw) -> ScriptedServer:
    """A service's Prometheus page (text format 0.0.4, vLLM's names) whose values change on a known
    schedule: at ``k = (time.time_ns() - server.t0_ns) // step_s`` it shows the gauge
    ``vllm:num_requests_running`` = k % 7 for ``model_name="m"`` and k % 5 for ``model_name="n"``,
    ``vllm:num_requests_waiting`` = k % 3, ``vllm:kv_cache_usage_perc`` = (k % 10) / 10, the counter
    ``app_requests_total`` = 3 k, and the histogram ``vllm:request_queue_time_seconds`` (``_count`` k,
    ``_sum`` k / 10: its mean is 0.1). ``server.rendered`` logs each page as ``(time.time_ns(), k)``.
    With ``pages``, the server answers that many pages, then closes every connection without a word (an
    endpoint that disappears)."""
    srv: ScriptedServer

    def page(k: int) -> bytes:
        return (
            "# HELP vllm:num_requests_running Requests running.\n# TYPE vllm:num_requests_running gauge\n"
            f'vllm:num_requests_running{{model_name="m"}} {k % 7}\n'
            f'vllm:num_requests_running{{model_name="n"}} {k % 5}\n'
            f"# TYPE vllm:num_requests_waiting gauge\nvllm:num_requests_waiting {k % 3}\n"
            f"# TYPE vllm:kv_cache_usage_perc gauge\nvllm:kv_cache_usage_perc {(k % 10) / 10}\n"
            "# HELP app_requests_total Requests served.\n# TYPE app_requests_total counter\n"
            f"app_requests_total {3 * k}\n"
            "# TYPE vllm:request_queue_time_seconds histogram\n"
            f'vllm:request_queue_time_seconds_bucket{{le="0.5"}} {k}\n'
            f'vllm:request_queue_time_seconds_bucket{{le="+Inf"}} {k}\n'
            f"vllm:request_queue_time_seconds_sum {k / 10}\nvllm:request_queue_time_seconds_count {k}\n").encode()

    def handle(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            now = time.time_ns()
            if pages is not None and len(srv.rendered) >= pages:
                return  # gone: the connection closes unanswered
            if req.target.split("?")[0] != path:
                conn.send_response(404, b"not found\n", {"Content-Type": "text/plain"})
                continue
            k = int((now - srv.t0_ns) // (step_s * 1e9))
            with srv._lock:
                srv.rendered.append((now, k))
            conn.send_response(200, page(k), {"Content-Type": "text/plain; version=0.0.4; charset=utf-8"})
            if not req.keep_alive:
                return

    srv = ScriptedServer(handle, name="prometheus-page", path=path, **kw)
    srv.t0_ns, srv.rendered = time.time_ns(), []
    return srv


# --------------------------------------------------------------------------------------------------------------
# 5. Peers that test sseload's bounds (tests/test_bounded.py, tests/test_retries.py)


def bomb_bytes(coding: str = "gzip", content_bytes: int = 1 << 30, line: bytes = b"data: x\n\n") -> bytes:
    """A valid ``gzip`` or ``deflate`` (zlib-wrapped) body whose content is ``content_bytes`` of ``line``
    repeated: about 2 MiB on the wire for 1 GiB of content (zlib packs it about 500:1). Built from one
    compressed block repeated (each ends in a full flush, so each block's bytes are the same), with the
    true checksum and length at its end."""
    import struct
    import zlib

    block = line * max(1, (1 << 20) // len(line))
    count = max(1, content_bytes // len(block))
    z = zlib.compressobj(9, zlib.DEFLATED, 31 if coding == "gzip" else 15)
    first = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    again = z.compress(block) + z.flush(zlib.Z_FULL_FLUSH)
    end = z.flush()  # the last (empty) block, then a trailer made for two blocks: replaced below
    checksum = zlib.crc32 if coding == "gzip" else zlib.adler32
    check = checksum(b"")
    for _ in range(count):
        check = checksum(block, check)
    trailer = struct.pack("<II", check, len(block) * count & 0xFFFFFFFF) if coding == "gzip" \
        else struct.pack(">I", check)
    return first + again * (count - 1) + end[: len(end) - len(trailer)] + trailer


def compression_bomb(coding: str = "gzip", content_bytes: int = 1 << 30, **kw) -> ScriptedServer:
    """Answers every request (keep-alive) with a 200 ``text/event-stream`` whose body is
    :func:`bomb_bytes`: ``Content-Encoding: coding``, a ``Content-Length`` of about 2 MiB, and 1 GiB of
    ``data: x`` events once inflated. ``server.body`` holds the bytes sent."""
    srv: ScriptedServer
    body = bomb_bytes(coding, content_bytes)

    def respond(conn: Conn, req: Request) -> bool:
        conn.send_response(200, body, {**SSE_HEADERS, "Content-Encoding": coding})
        return True

    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name=f"{coding}-bomb", **kw)
    srv.body = body
    return srv


def never_reads_body(*, max_s: float = 30.0, **kw) -> ScriptedServer:
    """Reads each request's head and then neither reads its body nor answers: the client's upload stalls
    once the kernel's buffers are full. Holds the connection until the client closes it, ``max_s`` passes
    or the server stops. ``server.heads`` has the request heads read."""
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        req = conn.read_request(read_body=False)
        if req is None:
            return
        with srv._lock:
            srv.heads.append(req)
        conn.wait(max_s)

    kw.setdefault("max_life_s", max(60.0, max_s + 5))
    srv = ScriptedServer(handle, name="never-reads-body", **kw)
    srv.heads = []
    return srv


def idle_408(events: int = 3, idle_s: float = 0.1, **kw) -> ScriptedServer:
    """One SSE response per connection (Content-Length, keep-alive), then, once the connection was idle
    ``idle_s``, ``408 Request Timeout`` with ``Connection: close`` that nobody asked for, and the close
    (as servers that time out idle kept-alive connections do). A request that arrives first is read and
    kept in ``server.unanswered`` (and in ``requests``), never answered."""
    goodbye = response_head(408, {"Content-Type": "text/plain"}, keep_alive=False, content_length=9) + b"timed out"
    kw.setdefault("name", "idle-408")
    return keepalive_closer(events, idle_s, goodbye=goodbye, **kw)


def tiny_event_flood(events_per_s: int = 1_000_000, seconds: float = 6.0, *, floods: int = 1,
                     **kw) -> ScriptedServer:
    """The first ``floods`` requests get a flood of the smallest events (``data:x``, 8 bytes on the
    wire) at ``events_per_s`` for ``seconds``, 10 ms of them per write, in one response with a
    ``Content-Length``; every later request gets three events. ``server.sent`` lists the events each
    response carried, in order of the requests."""
    srv: ScriptedServer
    line = b"data:x\n\n"
    per_write = max(1, events_per_s // 100)
    writes = max(1, int(seconds * 100))

    def respond(conn: Conn, req: Request) -> bool:
        with srv._lock:
            flood = len(srv.sent) < floods
            srv.sent.append(per_write * writes if flood else 3)
        if not flood:
            conn.send_response(200, line * 3, SSE_HEADERS)
            return True
        conn.send(response_head(200, SSE_HEADERS, content_length=len(line) * per_write * writes))
        piece, start = line * per_write, time.monotonic()
        for k in range(writes):
            conn.wait(start + k / 100 - time.monotonic())
            conn.send(piece)
        return True

    kw.setdefault("max_life_s", max(60.0, seconds * floods + 30))
    srv = ScriptedServer(lambda c: serve_keepalive(c, respond), name="tiny-event-flood", **kw)
    srv.sent = []
    return srv
