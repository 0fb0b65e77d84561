"""The I/O shell: one HTTP/1.1 connection that runs SSE streams and records raw facts.

Built on a plain (gevent-patched) socket and httptools' C response parser instead of a
general HTTP client, because the measurement is the point: each read comes with its time
(the kernel's arrival time with the native reader, else the moment it returned; see
sseload.reactor), taken before any parsing; the SSE parser then runs over the whole read and
the events it completes share that read's time. Nothing per event leaves this module but three
integers appended to flat arrays (sseload.sse.EventLog, compiled where it could be built).
httptools reads the response head; an SSE body after it (chunked, a Content-Length, or until
the close) goes straight to the event log, which takes the framing off itself: one call per
read, from bytes to recorded events, made by the native reader itself where it can
(``sseload.reactor.NativeReactor.route_body``: then ``on_fed`` hears only of reads that completed
something to act on). A compressed body still goes through httptools.

Avoided on purpose (measured with locust 2.47): FastHttpSession.iter_lines buffers 1 KiB
before yielding (+280 ms TTFE); geventhttpclient's liveness check calls select(), which breaks
past 1024 fds; gevent's threaded resolver starves under load, so addresses resolve once.
"""

from __future__ import annotations

import itertools
import os
import socket
import ssl
import time
import zlib
from dataclasses import dataclass
from urllib.parse import urlsplit

import httptools
from gevent import GreenletExit
from gevent.event import Event

from sseload.auth.apig import payload_sha256
from sseload.auth.schemes import Authenticator
from sseload.gateway import AUTH_CODES, CUTOFF_CODES, THROTTLE_CODES, error_code_of
from sseload.reactor import RECV_BYTES, reactor
from sseload.records import EventBuffer
from sseload.sse import EventLog, PyEventLog, SSEProtocolError

ERROR_BODY_BYTES = 1024
perf_ns = time.perf_counter_ns
_TRUTH_KEY = b'"t_send_ns":'
# SSELOAD_PARSER=python runs the Python event log even where the compiled one was built (to compare).
_EventLog = PyEventLog if os.environ.get("SSELOAD_PARSER") == "python" else EventLog


def parser_kind() -> str:
    """For run.json: "compiled" (sseload._sse) or "python" (sseload.sse.PyEventLog)."""
    return "python" if _EventLog is PyEventLog else "compiled"


class DeadlineExceeded(Exception):
    """The harness's own total-stream deadline passed."""


@dataclass(frozen=True)
class Endpoint:
    """Where streams go: resolved once per process, not per connection."""

    scheme: str
    host: str
    port: int
    family: int
    sockaddr: tuple
    host_header: str

    @classmethod
    def resolve(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise ConnectionError(
                f"cannot resolve host {parts.hostname!r} ({err.strerror}); check the URL or -H/--host"
            ) from None
        family, _, _, _, sockaddr = infos[0]
        default = 443 if parts.scheme == "https" else 80
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        host_header = host if port == default else f"{host}:{port}"
        return cls(parts.scheme, parts.hostname, port, family, sockaddr, host_header)


@dataclass(frozen=True)
class StreamRules:
    """How a stream is judged; built once per scenario."""

    completion: str = "close"  # "close", "done", or "event:NAME"
    max_event_bytes: int = 1 << 20
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    deadline_s: float = 45.0  # gateway limit + grace
    limit_s: float = 40.0
    truth: bool = True

    @property
    def cutoff_after_s(self) -> float:
        """An abnormal end this late is the gateway's cut, not a random reset."""
        return self.limit_s - min(1.0, 0.05 * self.limit_s)


@dataclass
class PreparedRequest:
    """A request built once and sent many times: the body is never rebuilt or copied."""

    method: str
    url: str
    path: str  # path and query as sent
    headers: dict[str, str]
    body: bytes
    body_sha256: str

    @classmethod
    def build(cls, method: str, url: str, headers: dict[str, str], body: bytes) -> PreparedRequest:
        parts = urlsplit(url)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        return cls(method.upper(), url, path, dict(headers), body, payload_sha256(body))


_stream_ids = itertools.count(1)


class SSEConnection:
    """One keep-alive connection of one user; runs streams one after another."""

    def __init__(self, endpoint: Endpoint, rules: StreamRules, auth: Authenticator,
                 tls: ssl.SSLContext | None = None, worker: int = 0, user: int = 0) -> None:
        self.endpoint = endpoint
        self.rules = rules
        self.auth = auth
        self.tls = tls
        self.worker = worker
        self.user = user
        self.sock: socket.socket | None = None
        self._send_now = None  # the non-blocking socket's send, under gevent's (see _send)
        self._tls: _TLS | None = None
        self.interrupted: BaseException | None = None
        self.read_timeout_ns = int(rules.read_timeout_s * 1e9)
        self._done = Event()
        # per-stream state, reset at the start of each stream
        self._log: EventLog | None = None  # the stream's events
        self._parser: EventLog | None = None  # the log while the body is still parsed as events
        self._body: EventLog | None = None  # the log while it takes the raw body, framing and all
        self._http = None

    def close(self) -> None:
        if self.sock is not None:
            try:
                self.sock.close()
            except OSError:
                pass
            self.sock = None

    def _connect(self) -> None:
        ep = self.endpoint
        sock = socket.socket(ep.family, socket.SOCK_STREAM)
        sock.settimeout(self.rules.connect_timeout_s)
        self._tls = None
        try:
            sock.connect(ep.sockaddr)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                self._tls = _TLS(self.tls, ep.host, sock)
        except BaseException:
            sock.close()
            raise
        sock.settimeout(self.rules.read_timeout_s)
        self.sock = sock
        inner = getattr(sock, "_sock", None)  # gevent's socket, over a non-blocking one: send at once
        self._send_now = inner.send if inner is not None else None

    def _send(self, data: bytes) -> None:
        if self._tls is not None:
            data = self._tls.encrypt(data)
        # A request nearly always fits the socket's buffer: one send() on the non-blocking socket
        # under gevent's. gevent's sendall asks the kernel for SO_SNDBUF on every call and runs
        # four Python frames around the send (py-spy: about a tenth of a stream's own samples).
        sent = 0
        if self._send_now is not None:
            try:
                sent = self._send_now(data)
            except BlockingIOError:
                pass
        if sent < len(data):  # the rest waits for room, cooperatively
            self.sock.sendall(memoryview(data)[sent:])

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self._headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self._t_headers = self._t_read
        self._status = self._http.get_status_code()
        headers = self._headers
        ctype = headers.get("content-type", "")
        self._ctype = ctype
        if self._status != 200:
            return
        media = ctype.split(";", 1)[0].strip().lower()
        if media != "text/event-stream":
            self._fail("protocol_error", f"Content-Type is {ctype or 'missing'}, not text/event-stream")
            return
        charset = ctype.lower().partition("charset=")[2].strip().strip('"')
        self._charset_warning = charset not in ("utf-8", "utf8")
        if headers.get("content-encoding", "identity") in ("gzip", "x-gzip"):
            self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif headers.get("content-encoding", "identity") == "deflate":
            self._gunzip = zlib.decompressobj()
        framing = _framing_of(headers) if self._gunzip is None else None
        if framing is None:  # httptools takes the framing off and hands the body to on_body
            self._parser = self._log = self._new_log()
        else:  # the log takes the raw body once on_read knows where the head ends
            self._framing = framing

    def _new_log(self, chunked: bool = False, length: int = -1) -> EventLog:
        return _EventLog(self.rules.max_event_bytes, _TRUTH_KEY if self.rules.truth else None,
                         b"[DONE]" if self._done_data else None, chunked, length)

    def on_body(self, body: bytes) -> None:
        parser = self._parser
        if parser is None:  # an error answer: keep the start of it
            if len(self._error_body) < ERROR_BODY_BYTES:
                self._error_body += body[: ERROR_BODY_BYTES - len(self._error_body)]
            return
        if self._gunzip is not None:
            body = self._gunzip.decompress(body)
        try:
            notable = parser.feed(body, self._t_read)
        except SSEProtocolError as err:
            self._fail("protocol_error", str(err))
            self._parser = None
            return
        if notable:
            self._act_on(notable)

    def _act_on(self, notable: list) -> None:
        for ev in notable:  # typed events, and [DONE] where it ends a stream (the log's sentinel)
            name = ev.event
            if name == "message" or name == self._done_event:
                self._completed = True
            elif name == "error":
                self._fail("event_error", f"event: error: {ev.data[:200]}")
        if self._body is not None and self._body.complete:
            self._message_complete = True

    def on_message_complete(self) -> None:
        self._message_complete = True

    def _fail(self, outcome: str, error: str, code: str = "") -> None:
        if self._outcome is None:
            self._outcome, self._error, self._error_code = outcome, error, code

    # --- one stream ---
    def stream(self, req: PreparedRequest, events: EventBuffer, scheduled_ns: int = 0) -> tuple:
        """Run one stream; return its raw record (records.RAW_FIELDS) and extend ``events``.

        Never raises for anything the service or network does: every way a stream can end
        is an outcome. GreenletExit (Locust stopping the user) is recorded as ``cancelled``
        and re-raised by the caller's handling in ``user.py``.
        """
        rules = self.rules
        self.interrupted: BaseException | None = None
        self._headers: dict[str, str] = {}
        self._status = 0
        self._ctype = ""
        self._charset_warning = False
        self._gunzip = None
        self._parser = self._log = self._body = None
        self._log_has_body = False  # the log takes the raw body: its bytes_in are response bytes
        self._framing: tuple[bool, int] | None = None  # (chunked, length) for the log to take off
        self._head_tail = b""  # the head's last bytes so far: its end may span reads
        self._head_done = False
        self._ends_at_close = False  # a body without framing: the connection's close ends it
        self._error_body = b""
        self._message_complete = False
        self._completed = False
        self._outcome: str | None = None
        self._error = ""
        self._error_code = ""
        self._t_headers = -1
        completion = rules.completion
        self._done_data = completion == "done"
        self._done_event = completion[6:] if completion.startswith("event:") else "\0none"
        self._response_bytes = 0
        connect_ns = upload_ns = -1
        reused = self.sock is not None

        sign_start = perf_ns()
        try:
            headers, fetch_s = self.auth.headers(req.method, req.url, req.headers, req.body, req.body_sha256)
        except Exception as err:  # credentials could not be had (IAM down, ...)
            now = time.time_ns()
            return self._record(req, events, perf_ns(), now, scheduled_ns, -1, -1, 0, 0, 0,
                                reused, "auth_error", f"credentials: {err}", "", perf_ns())
        sign_ns = perf_ns() - sign_start - int(fetch_s * 1e9)
        head = self._head(req, headers)

        deadline = _Deadline(rules.deadline_s)
        t0 = perf_ns()
        start_ns = time.time_ns()
        self._t_read = t0
        phase = "connect"
        try:
            with deadline:
                if self.sock is None:
                    c0 = perf_ns()
                    self._connect()
                    connect_ns = perf_ns() - c0
                    t0 = perf_ns()  # TTFE starts when the request is sent, not at connect
                    start_ns = time.time_ns()
                phase = "send"
                if len(req.body) <= 16384:
                    self._send(head + req.body)
                else:
                    self._send(head)
                    self._send(req.body)  # the one shared body object, not copied (in plain TCP)
                upload_ns = perf_ns() - t0
                phase = "read"
                self._t_read = perf_ns()
                self._http = httptools.HttpResponseParser(self)
                self._read_in_reactor()
        except DeadlineExceeded:
            self._fail("timeout", f"stream still open after the harness deadline of {rules.deadline_s:g} s")
        except (socket.timeout, TimeoutError):
            if phase == "connect":
                self._fail("connect_error", f"connect to {self.endpoint.host_header} timed out "
                           f"after {rules.connect_timeout_s:g} s")
            else:
                self._fail("timeout", f"no bytes for {rules.read_timeout_s:g} s (read_timeout_s)")
        except ssl.SSLCertVerificationError as err:
            self._fail("connect_error", f"TLS certificate of {self.endpoint.host} not trusted "
                       f"({err.verify_message}); set [stream] ca_bundle or use --insecure")
        except ssl.SSLError as err:
            self._fail("connect_error" if phase == "connect" else "reset", f"TLS error: {err.reason or err}")
        except ConnectionRefusedError:
            self._fail("connect_error", f"connection refused by {self.endpoint.host_header}; "
                       "is the service running and the port right?")
        except (ConnectionResetError, BrokenPipeError, ConnectionAbortedError) as err:
            self._fail("connect_error" if phase == "connect" else "reset",
                       f"connection {'reset' if isinstance(err, ConnectionResetError) else 'broken'} "
                       f"during {phase}")
        except OSError as err:
            self._fail("connect_error" if phase == "connect" else "reset",
                       f"{phase} failed: {err.strerror or err}")
        except httptools.HttpParserCallbackError as err:  # our own callback failed: a bug
            cause = err.__context__ or err
            self._fail("harness_error", f"{type(cause).__name__}: {cause}")
        except httptools.HttpParserError as err:
            self._fail("protocol_error", f"malformed HTTP response: {err}")
        except GreenletExit as exc:  # Locust stops the user: record, then let it stop
            self.interrupted = exc
            self._fail("cancelled", f"the run stopped while the stream was open ({phase})")
        except Exception as err:  # a bug in sseload or a custom user: record it, never lose the stream
            self._fail("harness_error", f"{type(err).__name__}: {err}")
        dropped_idle = self._outcome == "reset" or (self._outcome is None and not self._status)
        if reused and self._bytes_received() == 0 and phase != "connect" and dropped_idle \
                and self.interrupted is None:
            # the server had closed the idle keep-alive connection: retry once on a fresh one
            self.close()
            return self.stream(req, events, scheduled_ns)
        return self._record(req, events, t0, start_ns, scheduled_ns, connect_ns, upload_ns, sign_ns,
                            int(fetch_s * 1e9), self._bytes_received(), reused, None, "", "", self.last_read_ns())

    def skipped(self, req: PreparedRequest, outcome: str, error: str, scheduled_ns: int = 0) -> tuple:
        """The record of a stream decided before sending (e.g. a body over the limit)."""
        self.interrupted = None
        return (
            (self.worker << 40) | next(_stream_ids), self.worker, self.user, perf_ns(), time.time_ns(), scheduled_ns, -1, -1,
            -1, -1, 0, 0, 0, 0, "", False, len(req.body), 0, 0, 0, outcome, "", error, False,
        )

    # --- reading: in the process's reactor, for plain TCP and TLS alike ---
    def _read_in_reactor(self) -> None:
        self._read_error = None
        self._fd = fd = self.sock.fileno()
        done = self._done
        done.clear()
        io = reactor()
        io.add(self, fd)
        try:
            done.wait()
        finally:
            io.remove(fd)
        if self._read_error is not None:
            raise self._read_error

    def on_read(self, t_ns: int, data: bytes, err: int) -> None:
        """Called by the reactor for each read, in order, with its time (see sseload.reactor): parse it."""
        if err:
            self._read_error = OSError(err, os.strerror(err))  # e.g. ConnectionResetError
            return self._end_read()
        self._t_read = t_ns
        if not data:
            if self._ends_at_close:  # RFC 9112 section 6.3: the body ends when the connection closes
                self._message_complete = True
            return self._end_read()
        try:
            if self._tls is None:
                body = self._body
                if body is None:
                    self._take(data)
                else:  # the common read (unless the reader feeds the log itself: on_fed)
                    notable = body.feed(data, t_ns)
                    if not notable and not body.complete:
                        return  # nothing to act on
                    self._act_on(notable)
            else:  # decrypt everything this read completed: nothing is left hidden in the TLS layer
                for plain in self._tls.decrypt(data):
                    self._take(plain)
        except SSEProtocolError as broken:  # broken framing, or an event over the limit
            self._fail("protocol_error", str(broken))
            self._parser = self._body = None
        except Exception as exc:  # TLS, parser or callback errors: classified by the stream's handlers
            self._read_error = exc
            return self._end_read()
        self._end_if_over()

    def on_fed(self, t_ns: int, fed) -> None:
        """The reader fed a read to the body's log itself (reactor.route_body) and it completed
        something to act on: ``fed`` is the list of events to act on, or the log's error."""
        self._t_read = t_ns
        if isinstance(fed, SSEProtocolError):
            self._fail("protocol_error", str(fed))
            self._parser = self._body = None
        elif isinstance(fed, BaseException):
            self._read_error = fed
            return self._end_read()
        else:
            self._act_on(fed)
        self._end_if_over()

    def _end_if_over(self) -> None:
        if (self._message_complete  # the response is over, or nothing more in it matters
                or (self._outcome is not None and self._outcome != "event_error")
                or (self._completed and self.rules.completion != "close")
                or (self._parser is None and self._status and self._status != 200
                    and len(self._error_body) >= ERROR_BODY_BYTES)):
            self._end_read()

    def _take(self, data: bytes) -> None:
        body = self._body
        if body is not None:  # its bytes are counted by the log (bytes_in)
            notable = body.feed(data, self._t_read)
            if notable or body.complete:
                self._act_on(notable)
        elif self._head_done:
            self._response_bytes += len(data)
            self._http.feed_data(data)
        else:
            self._take_head(data)

    def _take_head(self, data: bytes) -> None:
        """Only the response head goes to httptools; a framed SSE body after it goes to the log.

        The head ends at the first CRLF CRLF: llhttp takes no other line end in a head.
        """
        seen = self._head_tail + data
        end = seen.find(b"\r\n\r\n")
        if end < 0:
            self._head_tail = seen[-3:]
            self._response_bytes += len(data)
            self._http.feed_data(data)
            return
        split = end + 4 - len(self._head_tail)
        self._head_done = True
        self._response_bytes += split
        self._http.feed_data(data[:split])  # on_headers_complete runs in here
        framing = self._framing
        if framing is not None:
            self._framing = None
            self._ends_at_close = framing == (False, -1)
            self._parser = self._log = self._body = body = self._new_log(*framing)
            self._log_has_body = True
            if body.complete:  # Content-Length: 0
                self._message_complete = True
            elif self._tls is None:  # the reader may feed the log itself from now on
                reactor().route_body(self._fd, body, self.on_fed)
        if len(data) > split:
            self._take(data[split:])

    def _bytes_received(self) -> int:
        """Response bytes so far: the head and any body httptools took, plus what the log took."""
        return self._response_bytes + (self._log.bytes_in if self._log_has_body else 0)

    def last_read_ns(self) -> int:
        """The time of the stream's last read, whoever took it (on_read, or the reader: on_fed)."""
        body = self._body
        return self._t_read if body is None else max(self._t_read, body.last_t_ns)

    def on_read_timeout(self) -> None:
        self._read_error = socket.timeout("read timeout")
        self._end_read()

    def _end_read(self) -> None:
        reactor().remove(self._fd)
        self._done.set()

    def _head(self, req: PreparedRequest, headers: dict[str, str]) -> bytes:
        lines = [f"{req.method} {req.path} HTTP/1.1"]
        if not any(k.lower() == "host" for k in headers):
            lines.append(f"Host: {self.endpoint.host_header}")
        lines += [f"{k}: {v}" for k, v in headers.items()]
        lines.append(f"Content-Length: {len(req.body)}")
        lines.append("Accept: text/event-stream")
        return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")

    def _classify(self) -> tuple[str, str, str]:
        status = self._status
        if self._outcome is not None:
            return self._outcome, self._error, self._error_code
        if status and status != 200:
            code = error_code_of(self._error_body) or ""
            text = self._error_body.decode("utf-8", "replace")
            error = f"HTTP {status}: {text}"
            if status == 504 or (code in CUTOFF_CODES and status >= 500 and status != 502):
                return "cutoff", error, code
            if status in (401, 403) or code in AUTH_CODES:
                return "auth_error", error, code
            if status == 429 or code in THROTTLE_CODES:
                return "throttled", error, code
            if status == 413:
                return "too_large", error, code
            return "http_error", error, code
        if self._message_complete:
            if self._completed or self.rules.completion == "close":
                return "ok", "", ""
            return "incomplete", f"stream ended without its completion ({self.rules.completion})", ""
        if self._completed and self.rules.completion != "close":
            return "ok", "", ""
        if not status:
            return "reset", "connection closed before a response", ""
        return "reset", "connection closed mid-stream", ""

    def _record(self, req, events, t0, start_ns, scheduled_ns, connect_ns, upload_ns,
                sign_ns, fetch_ns, response_bytes, reused, outcome, error, code, t_end) -> tuple:
        if outcome is None:
            outcome, error, code = self._classify()
        duration_ns = t_end - t0
        # The gateway's cut looks like a reset (or a clean but early end) that comes at the limit.
        # A timeout is never re-labelled: the harness's own deadline is not the gateway's.
        if outcome in ("reset", "incomplete") and duration_ns >= self.rules.cutoff_after_s * 1e9:
            error = f"ended at {duration_ns / 1e9:.2f} s, at the gateway limit of {self.rules.limit_s:g} s ({error})"
            outcome = "cutoff"
        keep_open = (outcome == "ok" and self._message_complete
                     and self._headers.get("connection", "").lower() != "close")
        if not keep_open:
            self.close()
        log = self._log
        n_events = malformed = 0
        first_event_ns = -1
        if log is not None:
            events.extend(log)
            n_events, malformed, first_event_ns = len(log), log.malformed, log.first_t_ns
        return (
            (self.worker << 40) | next(_stream_ids), self.worker, self.user, t0, start_ns, scheduled_ns, connect_ns,
            upload_ns, (self._t_headers - t0) if self._t_headers >= 0 else -1,
            (first_event_ns - t0) if first_event_ns >= 0 else -1,
            duration_ns, sign_ns, fetch_ns, self._status, self._ctype, self._charset_warning,
            len(req.body), response_bytes, n_events, malformed, outcome, code,
            _redact_text(error, self.auth), reused,
        )


def _framing_of(headers: dict[str, str]) -> tuple[bool, int] | None:
    """(chunked, length) of a body the event log can take off itself; None to leave it to httptools."""
    te, cl = headers.get("transfer-encoding"), headers.get("content-length")
    if te is not None:
        return (True, -1) if te.strip().lower() == "chunked" and cl is None else None
    if cl is None:
        return False, -1  # until the connection closes
    cl = cl.strip()
    return (False, int(cl)) if cl.isascii() and cl.isdigit() else None


def _redact_text(text: str, auth: Authenticator) -> str:
    for secret in auth.secrets():
        if secret:
            text = text.replace(secret, "<redacted>")
    return text


class _TLS:
    """TLS over the plain socket through memory buffers (ssl.MemoryBIO).

    The socket stays a plain one, so TLS streams are read by the reactor like any other: each
    raw read is timestamped, then decrypted whole. (An SSL socket can hold decrypted bytes a
    poller cannot see, and reading it greenlet by greenlet cost 70 µs per event.)
    """

    __slots__ = ("obj", "incoming", "outgoing", "sock")

    def __init__(self, context: ssl.SSLContext, hostname: str, sock: socket.socket) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=hostname)
        self.sock = sock
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionResetError("the server closed the connection during the TLS handshake")
                self.incoming.write(data)
        self._flush()

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.outgoing.read()

    def decrypt(self, data: bytes) -> list[bytes]:
        self.incoming.write(data)
        out = []
        while True:
            try:
                out.append(self.obj.read(RECV_BYTES))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the response ends with the connection
                break
        if self.outgoing.pending:  # e.g. a TLS 1.3 key update answered; tiny, and we are in the hub:
            try:                     # send without waiting (the kernel buffer is all but empty)
                self.sock._sock.send(self.outgoing.read())
            except BlockingIOError:
                pass
        return out


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


__all__ = ["DeadlineExceeded", "Endpoint", "PreparedRequest", "SSEConnection", "StreamRules"]
