"""The I/O shell: one HTTP/1.1 connection that runs SSE streams and records raw facts.

Built on a plain (gevent-patched) socket rather than a general HTTP client, because the
measurement is the point: the process's reader (sseload.transport.reactor) times each read before any
parsing, and the stream's :class:`~sseload.protocol.response.Response` (sans-I/O) turns reads into
events and an outcome. This module connects, signs, sends, keeps TLS in memory buffers (so TLS
reads are timed like plain ones) and registers streams with the reader.

Avoided on purpose: FastHttpSession.iter_lines buffers before yielding (TTFE would include the
buffering); geventhttpclient's liveness check calls select(), which breaks past 1024 fds; gevent's
threaded resolver starves under load, so addresses resolve once. See docs/measurement.md.
"""

from __future__ import annotations

import contextlib
import itertools
import os
import socket
import ssl
import time
from urllib.parse import urljoin, urlsplit

from gevent import GreenletExit, get_hub
from gevent.event import Event

from sseload.auth.schemes import Authenticator
from sseload.protocol.classify import REDIRECTS, DeadlineExceeded
from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import Response, StreamRules
from sseload.protocol.sse import ALL_OUTPUT, EventLog, PyEventLog, SSEProtocolError
from sseload.record import redact
from sseload.record.records import EventBuffer, StreamRecord
from sseload.record.tokens import TokenTally, stream_tokens
from sseload.transport.attempts import lost_text, may_send_again
from sseload.transport.reactor import RECV_BYTES, reactor
from sseload.transport.request import Endpoint, HeadError, PreparedRequest, request_head  # noqa: F401  (HeadError: for callers)
from sseload.transport.sending import Upload, UploadStalled, closed_while_idle
from sseload.transport.tls import TLS
from sseload.transport.tuning import Tuning

perf_ns = time.perf_counter_ns
DRAIN_S = 0.2  # a stream completed by its rule reads at most this long more for its body's end


def log_class(tuning: Tuning) -> type:
    """The event log a tuning asks for: the compiled one, or its Python definition."""
    return EventLog if tuning.parser == "compiled" else PyEventLog


_stream_ids = itertools.count(1)


class SSEConnection:
    """One keep-alive connection of one user; runs streams one after another.

    It connects, signs, sends, keeps TLS and registers with the process's reader
    (sseload.transport.reactor); what the bytes mean is the stream's :class:`~sseload.protocol.response.Response`.
    """

    def __init__(self, endpoint: Endpoint, rules: StreamRules, auth: Authenticator,
                 tls: ssl.SSLContext | None = None, worker: int = 0, user: int = 0,
                 tuning: Tuning | None = None) -> None:
        self.endpoint = endpoint
        self.rules = rules
        self.auth = auth
        self.tls = tls
        self.worker = worker
        self.user = user
        self.tuning = tuning or Tuning.from_env()
        self._log_class = log_class(self.tuning)
        self.sock: socket.socket | None = None
        self._send_now = None  # the non-blocking socket's send, under gevent's (see _send)
        self.recv_now = None  # and its recv: the Python reader's read (reactor.ReadTarget)
        self._tls: TLS | None = None
        self.interrupted: BaseException | None = None
        self.unsent = False  # the last stream was stopped before its request went out
        self.attempts: list[StreamRecord] = []  # requests lost with a kept-alive connection: rows (take_attempts)
        self.upload = Upload()  # what the kernel took of the request going out
        self.read_timeout_ns = int(rules.read_timeout_s * 1e9)
        self._done = Event()
        self._resp: Response | None = None  # the stream's response, while one runs
        self._fd = -1
        self._read_error: BaseException | None = None
        self._drain_timer = None  # bounds reading a completed stream's body end (_drain_briefly)
        self.patience_s = rules.patience_s  # how long its user waits for a first output token (0: for ever)
        self._patience_timer = None
        self.log_ids: tuple[str, str, int | None] | None = None  # the last stream's (first id, last id, retry)
        self.event_span: tuple[int, ...] = ()  # the last stream's first and last events' read times, if any
        self._stream_facts: tuple[int, int, int] | None = None  # the open stream's (stream_id, t0, start_ns)
        self._tally: TokenTally | None = None  # an LLM stream's token facts of the chunks spilled (spill_events)
        self.outputs: list[str] = []  # keep_output: the data of the last stream's chunks carrying output
        self._tls_session: ssl.SSLSession | None = None  # the last TLS connection's, for resumption

    def open_log(self):
        """(event log, TTFE's start in perf ns) of the stream open now, once its head said SSE; else None."""
        resp = self._resp
        if resp is None or resp.log is None:
            return None
        return resp.log, resp.started_ns()

    def spill_events(self, more_than: int):
        """The events the stream open now holds, taken from its log when they are more than ``more_than``
        (the recorder's, at a flush): ((t_ns, size, server_ns, llm), the tokens each chunk carried (LLM
        streams, else None), stream_id, t0_perf_ns, start_ns), the facts its record will have; else None."""
        resp, facts = self._resp, self._stream_facts
        if resp is None or resp.log is None or facts is None or resp.log.held <= more_than:
            return None
        arrays = resp.log.spill()
        tokens = None
        if self.rules.dialect is not None:  # its token facts, so far (sseload.record.tokens.TokenTally)
            self._tally = self._tally or TokenTally()
            tokens = self._tally.part(arrays[3], arrays[0], tokenizer=self.rules.tokenizer is not None)
        return arrays, tokens, *facts

    def close(self) -> None:
        if self._tls is not None:  # keep its session (TLS 1.3: from the tickets read since the handshake)
            with contextlib.suppress(ssl.SSLError, ValueError):
                self._tls_session = self._tls.obj.session or self._tls_session
        if self.sock is not None:
            with contextlib.suppress(OSError):
                self.sock.close()
            self.sock = None

    def _connect(self, progress: list[str]) -> None:
        """TCP, then TLS where the URL says https; ``progress`` names the step under way."""
        ep = self.endpoint
        sock = socket.socket(ep.family, socket.SOCK_STREAM)
        sock.settimeout(self.rules.connect_timeout_s)
        self._tls = None
        try:
            sock.connect(ep.sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                progress[0] = "tls"
                self._tls = TLS(self.tls, ep.host, sock, self._tls_session if self.rules.tls_resume else None)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.rules.read_timeout_s)
        self.sock = sock
        inner = getattr(sock, "_sock", None)  # gevent's socket, over a non-blocking one: send at once
        self._send_now = inner.send if inner is not None else None
        self.recv_now = inner.recv if inner is not None else sock.recv

    def _send(self, data: bytes) -> None:
        if self._tls is not None:
            data = self._tls.encrypt(data)
        self.upload.send(self._send_now, self.sock, data, self.rules.read_timeout_s, perf_ns)

    def take_attempts(self) -> list[StreamRecord]:
        """The rows of requests the last stream lost with a kept-alive connection before the one it
        returned (sseload.transport.attempts): the caller records them, first."""
        attempts, self.attempts = self.attempts, []
        return attempts

    # --- one stream ---
    def stream(self, req: PreparedRequest, events: EventBuffer, scheduled_ns: int = 0,
               retried: bool = False, redirects: int = 0, first: tuple[int, int] | None = None) -> StreamRecord:
        """Run one stream; return its record and extend ``events`` with its events.

        Never raises for anything the service or network does: every way a stream can end
        is an outcome. GreenletExit (Locust stopping the user) is recorded as ``cancelled``
        and re-raised by the caller's handling in ``user.py``.
        """
        rules = self.rules
        self.interrupted = None
        self.unsent = False
        connect_ns = upload_ns = -1
        self.upload.start()
        reused = self.sock is not None
        tls = self._tls
        if reused and (closed_while_idle(self.sock, tls is not None)
                       or (tls is not None and tls.closed_while_idle())):  # it goes on a fresh one
            self.close()
            reused = False

        sign_start = perf_ns()
        try:
            headers, fetch_s = self.auth.headers(req.method, req.url, req.headers, req.body, req.body_sha256)
        except GreenletExit as exc:  # stopped while fetching credentials: nothing was sent
            record = self.skipped(req, Outcome.CANCELLED, "the run stopped while fetching credentials", scheduled_ns)
            self.interrupted, self.unsent = exc, True
            return record
        except Exception as err:  # credentials could not be had (IAM down, ...)
            return self.skipped(req, Outcome.AUTH_ERROR, f"credentials: {err}", scheduled_ns)
        sign_ns = perf_ns() - sign_start - int(fetch_s * 1e9)
        try:
            head = self._head(req, headers)
        except HeadError as err:  # a header made at send time that HTTP/1.1 cannot carry: never sent
            return self.skipped(req, Outcome.HARNESS_ERROR, f"not sent: {err}", scheduled_ns)

        deadline = _Deadline(rules.deadline_s)
        stream_id = (self.worker << 40) | next(_stream_ids)  # known from the start: its events may be spilled
        t0 = perf_ns()
        start_ns = time.time_ns()
        self._resp = resp = Response(rules, self._log_class, t0, self._route_body)
        phase = "connect"
        try:
            with deadline:
                if self.sock is None:
                    c0 = perf_ns()
                    step = [phase]
                    try:
                        self._connect(step)
                    finally:
                        phase = step[0]
                    connect_ns = perf_ns() - c0
                    t0 = perf_ns()  # TTFE starts when the request is sent, not at connect
                    start_ns = time.time_ns()
                    resp.started(t0)
                phase = "send"
                if len(req.body) <= 16384:
                    self._send(head + req.body)
                else:
                    self._send(head)
                    self._send(req.body)  # the one shared body object, not copied (in plain TCP)
                upload_ns = perf_ns() - t0
                phase = "read"
                resp.at(perf_ns())
                self._stream_facts, self._tally = (stream_id, *(first or (t0, start_ns))), None
                self._read_in_reactor()
        except GreenletExit as exc:  # Locust stops the user: record, then let it stop
            self.interrupted = exc
            self.unsent = phase in ("connect", "tls")  # no request went out: no stream to record
            resp.fail(Outcome.CANCELLED, f"the run stopped while the stream was open ({phase})")
        except Exception as err:
            # A server may answer before it took the whole request (413 while the body goes up) and
            # close, or stop reading: its answer is the stream's outcome, not the broken send.
            stalled = isinstance(err, UploadStalled)
            if stalled:  # the stream lasted until now; its upload, to the last byte the server took
                upload_ns = self.upload.last_ns - t0 if self.upload.sent else 0
                resp.closed(perf_ns())
            if phase == "send" and isinstance(err, OSError) and self._read_early_answer(resp, 0.05 if stalled else 1.0):
                pass
            elif stalled:
                resp.fail(Outcome.TIMEOUT, self.upload.stalled_text(upload_ns, rules.read_timeout_s))
            else:
                ep = self.endpoint
                resp.fail_on(err, phase, ep.host if isinstance(err, ssl.SSLCertVerificationError) else ep.host_header)
        self._stream_facts = None
        dropped_idle = resp.outcome is Outcome.RESET or (resp.outcome is None and not resp.status)
        lost = reused and resp.bytes_received() == 0 and phase in ("send", "read") and dropped_idle \
            and self.interrupted is None  # the server closed the kept-alive connection under the request
        if lost and not self.upload.sent:  # none of it went out (the send failed at once): no request was made
            self.close()
            self._resp = None
            resp.release()
            return self.stream(req, events, scheduled_ns, retried=retried, redirects=redirects, first=first)
        again = lost and not retried and may_send_again(req.method)
        if lost:  # the server got it: a row of its own (sseload.transport.attempts)
            resp.outcome, resp.error, resp.error_code = Outcome.RESET, lost_text(req.method, again), ""
        if resp.outcome is None and resp.status in REDIRECTS and redirects < rules.max_redirects:
            target = self._redirected(req, resp)
            if target is not None:  # a row of its own; the stream it leads to counts from the first request
                resp.outcome, resp.error = Outcome.REDIRECTED, f"redirected to {target.url}"
                self.attempts.append(self._record(
                    req, resp, events, t0, stream_id=stream_id, start_ns=start_ns, scheduled_ns=scheduled_ns,
                    connect_ns=connect_ns, upload_ns=upload_ns, sign_ns=sign_ns, auth_fetch_ns=int(fetch_s * 1e9),
                    reused=reused, retried=retried, redirects=redirects))
                return self.stream(target, events, scheduled_ns, redirects=redirects + 1,
                                   first=first or (t0, start_ns))
        if first is not None:
            t0, start_ns = first
        record = self._record(req, resp, events, t0, stream_id=stream_id, start_ns=start_ns, scheduled_ns=scheduled_ns,
                              connect_ns=connect_ns, upload_ns=upload_ns, sign_ns=sign_ns,
                              auth_fetch_ns=int(fetch_s * 1e9), reused=reused, retried=retried, redirects=redirects)
        if not again:
            return record
        self.attempts.append(record)  # (its connection is closed: the retry goes out on a fresh one)
        return self.stream(req, events, scheduled_ns, retried=True, redirects=redirects)

    def skipped(self, req: PreparedRequest, outcome: Outcome, error: str, scheduled_ns: int = 0) -> StreamRecord:
        """The record of a stream decided before sending (a body over the limit, no credentials)."""
        self.interrupted = None
        self.log_ids = None
        self.event_span = ()
        self.outputs = []
        return StreamRecord(
            stream_id=(self.worker << 40) | next(_stream_ids), worker=self.worker, user=self.user,
            t0_perf_ns=perf_ns(), start_ns=time.time_ns(), scheduled_ns=scheduled_ns, connect_ns=-1, upload_ns=-1,
            ttfb_ns=-1, ttfe_ns=-1, duration_ns=0, sign_ns=0, auth_fetch_ns=0, status=0, content_type="",
            charset_warning=False, body_bytes=req.body_bytes, response_bytes=0, events=0, malformed_events=0,
            outcome=outcome, error_code="", error=_from_server(error, self.auth, True), reused=False,
        )

    # --- reading: in the process's reactor, for plain TCP and TLS alike ---
    def _read_in_reactor(self) -> None:
        self._read_error = None
        self._fd = fd = self.sock.fileno()
        done = self._done
        done.clear()
        io = reactor(self.tuning)
        io.add(self, fd, self._resp.started_ns())
        if self.patience_s > 0:
            left_s = self.patience_s - (perf_ns() - self._resp.started_ns()) / 1e9
            self._patience_timer = timer = get_hub().loop.timer(max(left_s, 0.0))
            timer.start(self._impatient)
        try:
            done.wait()
        finally:
            io.remove(fd)
        if self._read_error is not None:
            raise self._read_error

    def _redirected(self, req: PreparedRequest, resp: Response) -> PreparedRequest | None:
        """The request a redirect asks for, where it stays on this connection's host; else None."""
        location = resp.headers.get("location")
        if not location:
            return None
        url = urljoin(req.url, location)
        parts, here = urlsplit(url), urlsplit(req.url)
        if (parts.scheme, parts.hostname, parts.port) != (here.scheme, here.hostname, here.port):
            return None
        if resp.status == 303 or (resp.status in (301, 302) and req.method == "POST"):
            return PreparedRequest.build("GET", url, req.headers, b"")  # as browsers and clients do
        return PreparedRequest.build(req.method, url, req.headers, req.body)

    def _read_direct(self, resp: Response, timeout_s: float, max_bytes: int, until) -> None:
        """Read the socket in this greenlet (off the reactor: after a failed send) into ``resp``
        until ``until()``, EOF, an error, ``timeout_s`` of silence or ``max_bytes``."""
        sock = self.sock
        if sock is None:
            return
        sock.settimeout(timeout_s)
        got = 0
        try:
            while not until() and got < max_bytes:
                data = sock.recv(RECV_BYTES)
                t_ns = perf_ns()
                if not data:
                    resp.feed_eof(t_ns)
                    return
                got += len(data)
                for piece in (self._tls.decrypt(data) if self._tls is not None else (data,)):
                    resp.feed(t_ns, piece)
        except (OSError, ssl.SSLError):
            pass
        finally:
            if self.sock is not None:
                self.sock.settimeout(self.rules.read_timeout_s)

    def _read_early_answer(self, resp: Response, wait_s: float = 1.0) -> bool:
        """After a failed send: read what the server answered before it closed (or stopped reading);
        True if it did."""
        self._read_direct(resp, wait_s, 1 << 20, resp.over)
        return resp.status != 0

    def _route_body(self, log) -> None:
        """The head is read: the native reader may feed the body's log itself from now on (a TLS
        stream's decrypted there too: everything before this read was decrypted, none is left)."""
        tls = self._tls
        reactor(self.tuning).route_body(self._fd, log, self.on_fed,
                                        None if tls is None else (tls.obj, tls.incoming, tls.outgoing))

    def on_read(self, t_ns: int, data: bytes, err: int) -> None:
        """Called by the reactor for each read, in order, with its time (see sseload.transport.reactor)."""
        resp = self._resp
        if err:
            resp.closed(t_ns)  # the stream ends at the read that broke, not at its last data
            self._read_error = OSError(err, os.strerror(err))  # e.g. ConnectionResetError
            return self._end_read()
        if not data:
            resp.feed_eof(t_ns)
            return self._end_read()
        # Nothing may escape to the reader's drain: it serves every stream of the process.
        try:
            if self._tls is None:
                over = resp.feed(t_ns, data)
            else:  # decrypt everything this read completed: nothing is left hidden in the TLS layer
                over = False
                for piece in self._tls.decrypt(data):
                    over = resp.feed(t_ns, piece)
        except Exception as exc:  # TLS, or a bug: classified by the stream's handler
            self._read_error = exc
            return self._end_read()
        if over:
            self._end_read()
        elif resp.drainable():
            self._drain_briefly()

    def _drain_briefly(self) -> None:
        """Completed by its rule ([DONE], a terminal event) before its body ended: read on, at most
        DRAIN_S, for the body's end, so the connection can carry the next stream (the stream's
        duration stays at its completion)."""
        if self._drain_timer is None:
            self._drain_timer = timer = get_hub().loop.timer(DRAIN_S)
            timer.start(self._end_read)

    def on_fed(self, t_ns: int, fed) -> None:
        """The reader fed a read to the body's log itself (reactor.route_body) and it completed
        something to act on: ``fed`` is the list of events to act on, or the log's error."""
        resp = self._resp
        if isinstance(fed, SSEProtocolError):
            resp.refused(t_ns, fed)
        elif isinstance(fed, BaseException):
            resp.closed(t_ns)
            self._read_error = fed
            return self._end_read()
        else:
            try:
                if not resp.fed(t_ns, fed):
                    if resp.drainable():
                        self._drain_briefly()
                    return
            except Exception as exc:  # nothing may escape to the reader's drain (a bug: harness_error)
                self._read_error = exc
        self._end_read()

    def idle_since_ns(self) -> int:
        """Where the read timeout counts from (reactor.ReadTarget): the response knows."""
        return self._resp.idle_since_ns()

    def on_read_timeout(self) -> None:
        self._resp.timed_out(perf_ns())
        self._end_read()

    def _impatient(self) -> None:
        """The user's patience ran out: unless an output token came, it gives up (the connection closes)."""
        resp = self._resp
        log = resp.log if resp is not None else None
        if resp is None or resp.over() or (log is not None and any(v & ALL_OUTPUT for v in
                                                                   memoryview(log.llm()).cast("q"))):
            return
        now = perf_ns()
        left_s = self.patience_s - (now - resp.started_ns()) / 1e9
        if left_s > 0:  # the loop's timers run on its cached time, which may lag: never give up early
            self._patience_timer.close()
            self._patience_timer = timer = get_hub().loop.timer(left_s)
            timer.start(self._impatient)
            return
        resp.abandoned(now, self.patience_s)
        self._end_read()

    def _end_read(self) -> None:
        for name in ("_drain_timer", "_patience_timer"):
            timer = getattr(self, name)
            if timer is not None:
                timer.stop()
                timer.close()
                setattr(self, name, None)
        reactor(self.tuning).remove(self._fd)
        self._done.set()

    def _head(self, req: PreparedRequest, headers: dict[str, str]) -> bytes:
        return request_head(req, headers, self.endpoint.host_header, self.rules.new_connection)

    def _record(self, req: PreparedRequest, resp: Response, events: EventBuffer, t0: int,
                **sent: int | bool) -> StreamRecord:
        """The stream's record, from its response; ``sent``: its facts known before the response came
        (stream_id, start_ns, scheduled_ns, connect_ns, upload_ns, sign_ns, auth_fetch_ns, reused, retried,
        redirects), by StreamRecord's names."""
        duration_ns = resp.end_ns() - t0
        outcome, error, code = resp.verdict(duration_ns)
        if not resp.keep_alive(outcome) or self.rules.new_connection:
            self.close()
        self._resp = None
        resp.release()
        log = resp.log
        n_events = malformed = 0
        first_event_ns = -1
        # what a feed (reconnect mode, sseload.protocol.feed) carries to its next connection
        self.log_ids = (log.first_event_id, log.last_event_id, log.retry) if log is not None else None
        self.event_span = (log.first_t_ns, log.last_event_t_ns) if log is not None and len(log) else ()
        tokens, rules = None, self.rules
        self.outputs = log.outputs() if log is not None and rules.keep_output else []  # a conversation's answer
        if log is not None:
            if rules.dialect is not None:  # (of a stream whose chunks were spilled: its tally's, this last part taken)
                tally, self._tally = self._tally, None
                tokens = (tally.stream if tally is not None else stream_tokens)(
                    log.llm(), log.arrays()[0], t0, self.outputs, rules.tokenizer, rules.dialect, log.reasoning_tokens)
            events.extend(log, tokens.chunk_tokens if tokens else None)
            n_events, malformed, first_event_ns = len(log), log.malformed, log.first_t_ns
        t_headers = resp.t_headers_ns
        return StreamRecord(
            worker=self.worker, user=self.user, t0_perf_ns=t0, **sent,
            ttfb_ns=(t_headers - t0) if t_headers >= 0 else -1,
            ttfe_ns=(first_event_ns - t0) if first_event_ns >= 0 else -1,
            duration_ns=duration_ns, status=resp.status, content_type=_from_server(resp.content_type, self.auth),
            charset_warning=resp.charset_warning, body_bytes=len(req.body), response_bytes=resp.bytes_received(),
            events=n_events, malformed_events=malformed, outcome=outcome, error_code=_from_server(code, self.auth),
            error=_from_server(error, self.auth, True), http_version=resp.http_version,
            request_id=_from_server(_request_id(resp.headers), self.auth),
            **(self._llm_facts(resp, log, tokens) if tokens else {}),
        )

    def _llm_facts(self, resp: Response, log, tokens) -> dict:
        """An LLM stream's record fields, by StreamRecord's names."""
        return {"ttft_ns": tokens.ttft_ns, "answer_ttft_ns": tokens.answer_ttft_ns, "ttst_ns": tokens.ttst_ns,
                "max_stall_ns": tokens.max_stall_ns, "output_tokens": tokens.output_tokens,
                "prompt_tokens": log.prompt_tokens, "reasoning_tokens": log.reasoning_tokens,
                "cached_tokens": log.cached_tokens, "tokenizer_tokens": tokens.tokenizer_tokens,
                "tokens_from": tokens.tokens_from,
                "finish_reason": _from_server(resp.finish_reason, self.auth),
                "response_id": _from_server(resp.response_id, self.auth),
                "server_timings": _from_server(resp.server_timings, self.auth)}


SERVER_TEXT_CHARS = 2000  # the most of one text from the server a record keeps (its length said beyond)
#: Response headers that carry the request's id in the server's or gateway's log, in the order looked for.
REQUEST_ID_HEADERS = ("x-request-id", "request-id", "x-amzn-requestid", "x-trace-id", "x-correlation-id")


def _request_id(headers: dict[str, str]) -> str:
    for name in REQUEST_ID_HEADERS:
        if name in headers:
            return headers[name][:200]
    return ""


def _from_server(text: str, auth: Authenticator, cut: bool = False) -> str:
    """Text the server controls, as a record keeps it: secrets masked (the auth's, fetched tokens
    included), control characters made visible, long text cut (sseload.record.redact). ``cut``: an error
    text, which may end mid-way through what the server echoed."""
    return redact.from_server(text, SERVER_TEXT_CHARS, auth.secrets(), cut) if text else text


class _Deadline:
    """A gevent Timeout raising DeadlineExceeded: bounds the whole stream, not single reads."""

    __slots__ = ("timeout",)

    def __init__(self, seconds: float) -> None:
        from gevent import Timeout

        self.timeout = Timeout(seconds, DeadlineExceeded)

    def __enter__(self):
        self.timeout.start()
        return self

    def __exit__(self, *exc) -> bool:
        self.timeout.close()
        return False


__all__ = ["DeadlineExceeded", "Endpoint", "HeadError", "PreparedRequest", "SSEConnection", "StreamRules", "log_class"]
