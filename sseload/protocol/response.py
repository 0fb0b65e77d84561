"""One HTTP response to an SSE request, as a state machine fed ``(t_ns, bytes)`` reads.

It never touches a socket or a clock (the I/O shell, sseload.transport.client, does both): it owns the
response head (status, headers), the choice of body framing, the completion rule and the
classification of how the stream ended into an :class:`~sseload.protocol.outcomes.Outcome` with its
error text. So every rule of the gateway contract can be tested by feeding bytes.

httptools (llhttp) reads the head. A framed SSE body after it (chunked, a Content-Length, or
until the close) goes straight to the stream's event log, which takes the framing off itself:
one call per read, from bytes to recorded events (``on_body_log`` lets the I/O shell have the
native reader feed that log directly; see docs/measurement.md). A compressed body still goes
through httptools, then zlib, then the log.
"""

from __future__ import annotations

import socket
import ssl
import zlib
from collections.abc import Callable
from dataclasses import dataclass

import httptools

from sseload.protocol.gateway import AUTH_CODES, CUTOFF_CODES, THROTTLE_CODES, error_code_of
from sseload.protocol.llm import chunk_ending
from sseload.protocol.outcomes import Outcome
from sseload.protocol.sse import ALL_OUTPUT, DEFAULT_MAX_EVENT_BYTES
from sseload.protocol.sse_types import SSEProtocolError

DONE = "[DONE]"  # the data of the event that completes a stream (completion done or auto)
ERROR_BODY_BYTES = 1024  # the start of an error answer kept for its text and error_code
REDIRECTS = frozenset({301, 302, 303, 307, 308})
MAX_HEAD_BYTES = 64 * 1024  # a response head longer than this is refused (an endless head must not grow memory)
SEND_TIME_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000}  # a send time's unit, in ns


def truth_key(field: str) -> bytes:
    """What precedes a send time in an event's data: the JSON field's name, quoted, and a colon."""
    return f'"{field}":'.encode()


class DeadlineExceeded(Exception):
    """The harness's own total-stream deadline passed."""


@dataclass(frozen=True)
class StreamRules:
    """How a stream is judged; built once per scenario."""

    completion: str = "close"  # "close", "auto" (close or data: [DONE]), "done", or "event:NAME"
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_head_bytes: int = MAX_HEAD_BYTES
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    deadline_s: float = 45.0  # gateway limit + grace
    limit_s: float = 40.0
    truth: bool = True
    send_time_key: str = "t_send_ns"  # the JSON field in each event's data that carries its send time
    max_redirects: int = 3  # same-origin redirects followed (0: none)
    openai: bool = False  # OpenAI-style chunks: the log keeps each event's output and usage (token metrics)
    keep_output: bool = False  # openai: the log keeps the output chunks' data (a tokenizer, a conversation)
    output_kinds: int = ALL_OUTPUT  # openai: what counts as a chunk's output (sseload.protocol.sse.OUTPUT_KINDS' bits)
    tokenizer: object = None  # openai: counts output tokens where the server sends no usage (sseload.protocol.llm)
    new_connection: bool = False  # a connection per stream (Connection: close), not kept alive
    tls_resume: bool = True  # a new TLS connection resumes the last session; False: a full handshake each time

    @property
    def cutoff_after_s(self) -> float:
        """An abnormal end this late is the gateway's cut, not a random reset."""
        return self.limit_s - min(1.0, 0.05 * self.limit_s)


def not_http_hint(first: bytes) -> str:
    """What a response that is not HTTP/1.x most likely is, from its first bytes; "" if it looks like HTTP."""
    if first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
        return "the server speaks TLS on this port: use https://"
    if first.startswith(b"PRI * HTTP/2") or (len(first) >= 9 and first[3:4] == b"\x04" and first[4:5] in b"\x00\x01"):
        return ("the server answered with HTTP/2 only; sseload speaks HTTP/1.1 (as the gateway does): "
                "use an HTTP/1.1 endpoint")
    if not first.startswith(b"HTTP/"[: len(first)]):
        return (f"the server did not answer in HTTP/1.x (its first bytes: {first[:16]!r}); "
                "is this the right host and port?")
    return ""


def framing_of(headers: dict[str, str]) -> tuple[bool, int] | None:
    """(chunked, length) of a body the event log can take off itself; None to leave it to httptools."""
    te, cl = headers.get("transfer-encoding"), headers.get("content-length")
    if te is not None:
        return (True, -1) if te.strip().lower() == "chunked" and cl is None else None
    if cl is None:
        return False, -1  # until the connection closes
    cl = cl.strip()
    return (False, int(cl)) if cl.isascii() and cl.isdigit() else None


def classify_error(exc: BaseException, phase: str, rules: StreamRules, host: str) -> tuple[Outcome, str]:
    """The outcome and text of an exception that ended a stream in ``phase`` (connect, tls, send, read)."""
    connecting = phase in ("connect", "tls")
    if isinstance(exc, DeadlineExceeded):
        return Outcome.TIMEOUT, f"stream still open after the harness deadline of {rules.deadline_s:g} s"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        if phase == "tls":
            return Outcome.CONNECT_ERROR, (f"the TLS handshake with {host} timed out after {rules.connect_timeout_s:g}"
                                           " s: is it an HTTPS port? (http:// for a plain one)")
        if connecting:
            return Outcome.CONNECT_ERROR, f"connect to {host} timed out after {rules.connect_timeout_s:g} s"
        return Outcome.TIMEOUT, f"no bytes for {rules.read_timeout_s:g} s (read_timeout_s)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.CONNECT_ERROR, (f"TLS certificate of {host} not trusted ({exc.verify_message}); "
                                       "set [stream] ca_bundle or use --insecure")
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc
        if phase == "tls" and str(reason).upper() in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                                      "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
            return Outcome.CONNECT_ERROR, f"TLS error: {reason}: {host} does not speak TLS on this port; use http://"
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"TLS error: {reason}"
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.CONNECT_ERROR, f"connection refused by {host}; is the service running and the port right?"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        how = "reset" if isinstance(exc, ConnectionResetError) else "broken"
        if phase == "tls":
            return Outcome.CONNECT_ERROR, (f"connection {how} during the TLS handshake: is it an HTTPS port? "
                                           "(http:// for a plain one)")
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"connection {how} during {phase}"
    if isinstance(exc, OSError):
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"{phase} failed: {exc.strerror or exc}"
    if isinstance(exc, httptools.HttpParserCallbackError):  # our own callback failed: a bug
        cause = exc.__context__ or exc
        return Outcome.HARNESS_ERROR, f"{type(cause).__name__}: {cause}"
    if isinstance(exc, httptools.HttpParserError):
        return Outcome.PROTOCOL_ERROR, f"malformed HTTP response: {exc}"
    if isinstance(exc, ConnectionError) and "TLS handshake" in str(exc):
        return Outcome.CONNECT_ERROR, f"{exc}: is it an HTTPS port? (http:// for a plain one)"
    return Outcome.HARNESS_ERROR, f"{type(exc).__name__}: {exc}"  # a bug in sseload or a custom user


class Response:
    """The response to one request: fed reads, it knows when the stream is over and how it ended.

    ``feed`` returns True once nothing more of the response matters (it is complete, failed, or
    completed by the scenario's rule); the I/O shell then stops reading. ``on_body_log(log)``,
    where given, hears of the body's event log as soon as the head is read.
    """

    __slots__ = (
        "rules", "_log_class", "_on_body_log", "_http", "_t_read", "headers", "status", "content_type",
        "charset_warning", "_gunzip", "_parser", "log", "_body", "_log_has_body", "_framing", "_head_tail",
        "_head_done", "_ends_at_close", "_error_body", "_message_complete", "_completed", "outcome", "error",
        "error_code", "t_headers_ns", "_sentinel", "_done_event", "_response_bytes", "_t_start", "_t_end",
        "_informational", "_first", "_t_done", "_t_sent", "_keep_alive", "finish_reason",
    )

    def __init__(self, rules: StreamRules, log_class, t_ns: int,
                 on_body_log: Callable[[object], None] | None = None) -> None:
        self.rules = rules
        self._log_class = log_class
        self._on_body_log = on_body_log
        self._http = httptools.HttpResponseParser(self)
        self._t_start = self._t_read = t_ns
        self._t_end = -1  # when the stream ended without a read ending it (a timeout)
        self._informational = False  # the head just read was a 1xx (100 Continue): the real one follows
        self._first = b""  # the response's first bytes, to name what a server that is not HTTP/1.x speaks
        self._t_done = -1  # the read that completed the stream by its rule ([DONE], a terminal event)
        self._t_sent = t_ns  # when the request was sent: a head's timeout counts from here
        self._keep_alive = True  # HTTP/1.1 keep-alive, as the head says
        self.headers: dict[str, str] = {}
        self.status = 0
        self.content_type = ""
        self.charset_warning = False
        self._gunzip = None
        self._parser = None  # the log while the body is still parsed as events
        self.log = None  # the stream's events (an event log), once the head says it is an SSE body
        self._body = None  # the log while it takes the raw body, framing and all
        self._log_has_body = False  # the log takes the raw body: its bytes_in are response bytes
        self._framing: tuple[bool, int] | None = None  # (chunked, length) for the log to take off
        self._head_tail = b""  # the head's last bytes so far: its end may span reads
        self._head_done = False
        self._ends_at_close = False  # a body without framing: the connection's close ends it
        self._error_body = b""
        self._message_complete = False
        self._completed = False  # the scenario's completion event came
        self.outcome: Outcome | None = None  # decided early (a failure), else by verdict()
        self.error = ""
        self.error_code = ""
        self.finish_reason = ""  # OpenAI-style streams: the last finish_reason a chunk gave
        self.t_headers_ns = -1
        completion = rules.completion
        self._sentinel = DONE.encode() if completion in ("done", "auto") else None
        self._done_event = completion[6:] if completion.startswith("event:") else "\0none"
        self._response_bytes = 0

    # --- reads ---
    def started(self, t_ns: int) -> None:
        """The request starts to go out now (after connecting): TTFE counts from here."""
        self._t_start = self._t_read = self._t_sent = t_ns

    def at(self, t_ns: int) -> None:
        """The stream's time so far, before any read (after sending)."""
        self._t_read = self._t_sent = t_ns

    def closed(self, t_ns: int) -> None:
        """The connection broke (a read error, e.g. RST) at ``t_ns``: the stream's end."""
        self._t_read = max(self._t_read, t_ns)

    def timed_out(self, t_ns: int) -> None:
        """The read timeout fired at ``t_ns``: the stream waited until then."""
        self._t_end = t_ns
        if not self._head_done:
            got = f"; {self._response_bytes} bytes of it came" if self._response_bytes else ""
            self.fail(Outcome.TIMEOUT, f"no complete response head within {self.rules.read_timeout_s:g} s "
                      f"(read_timeout_s){got}")
        else:
            self.fail(Outcome.TIMEOUT, f"no bytes for {self.rules.read_timeout_s:g} s (read_timeout_s)")

    def feed(self, t_ns: int, data: bytes) -> bool:
        """One read (plain bytes, decrypted already); True when the stream is over."""
        self._t_read = t_ns
        try:
            body = self._body
            if body is not None:  # the common read: the log takes it whole
                notable = body.feed(data, t_ns)
                if not notable and not body.complete:
                    return False
                self._act_on(notable)
            elif self._head_done:
                self._response_bytes += len(data)
                self._http.feed_data(data)
            else:
                self._take_head(data)
        except SSEProtocolError as broken:  # broken framing, or an event over the limit
            self.fail(Outcome.PROTOCOL_ERROR, str(broken))
            self._parser = self._body = None
        except httptools.HttpParserUpgrade:
            self.fail(Outcome.PROTOCOL_ERROR, f"the server switched protocols (HTTP {self.status or 101} Upgrade: "
                      f"{self.headers.get('upgrade', '?')}), not an SSE response")
        except httptools.HttpParserError as err:
            outcome, text = classify_error(err, "read", self.rules, "")
            hint = not_http_hint(self._first) if outcome is Outcome.PROTOCOL_ERROR else ""
            self.fail(outcome, f"{text}: {hint}" if hint else text)
        except zlib.error as err:
            self.fail(Outcome.PROTOCOL_ERROR, f"the compressed body does not decompress: {err}")
        return self.over()

    def feed_eof(self, t_ns: int) -> None:
        """The server closed the connection (FIN)."""
        self._t_read = t_ns
        if self._ends_at_close:  # RFC 9112 section 6.3: the body ends when the connection closes
            self._message_complete = True

    def fed(self, t_ns: int, fed: list) -> bool:
        """The reader fed a read to the body's log itself and it completed something to act on:
        ``fed`` is the list of events to act on. True when the stream is over."""
        self._t_read = t_ns
        self._act_on(fed)
        return self.over()

    def refused(self, t_ns: int, error: SSEProtocolError) -> None:
        """The body's log refused a read the reader fed it (broken framing, an event too large)."""
        self._t_read = t_ns
        self.fail(Outcome.PROTOCOL_ERROR, str(error))
        self._parser = self._body = None

    def _take_head(self, data: bytes) -> None:
        """Only the response head goes to httptools; a framed SSE body after it goes to the log.

        The head ends at the first CRLF CRLF: llhttp takes no other line end in a head.
        """
        if len(self._first) < 16:
            self._first += data[: 16 - len(self._first)]
        while True:  # a loop, not recursion: a read may hold many 1xx heads
            seen = self._head_tail + data
            end = seen.find(b"\r\n\r\n")
            split = end + 4 - len(self._head_tail) if end >= 0 else len(data)
            self._response_bytes += split
            if self._response_bytes > self.rules.max_head_bytes:  # never let an endless head grow memory
                self.fail(Outcome.PROTOCOL_ERROR, f"the response head passed {self.rules.max_head_bytes} bytes "
                          "without its end (CRLF CRLF); the server sends an endless or huge head")
                return
            if end < 0:
                self._head_tail = seen[-3:]
                self._http.feed_data(data)
                return
            self._head_done = True
            self._http.feed_data(data[:split])  # on_headers_complete runs in here
            if not self._informational:
                break
            # 100 Continue and the like: the real response follows (their bytes count to the head's limit)
            self._informational = False
            self._head_done = False
            self._head_tail = b""
            self.headers = {}
            self.status = 0
            self._message_complete = False
            self._http = httptools.HttpResponseParser(self)
            data = data[split:]
            if not data:
                return
        framing = self._framing
        if framing is not None:
            self._framing = None
            self._parser = self.log = self._body = body = self._new_log(*framing)
            self._log_has_body = True
            if body.complete:  # Content-Length: 0
                self._message_complete = True
            elif self._on_body_log is not None:
                self._on_body_log(body)
        if len(data) > split:
            rest = data[split:]
            if self._body is not None:
                notable = self._body.feed(rest, self._t_read)
                if notable or self._body.complete:
                    self._act_on(notable)
            else:
                self._response_bytes += len(rest)
                self._http.feed_data(rest)

    def _new_log(self, chunked: bool = False, length: int = -1):
        return self._log_class(self.rules.max_event_bytes,
                               truth_key(self.rules.send_time_key) if self.rules.truth else None,
                               self._sentinel, chunked, length, self.rules.openai, self.rules.keep_output,
                               self.rules.output_kinds)

    def _act_on(self, notable: list) -> None:
        for ev in notable:  # typed events, [DONE] where it ends a stream (the log's sentinel), and in
            name = ev.event  # openai mode the chunks that end a choice or report an error
            if self._completed:  # the body's end read after completion, for reuse: nothing in it counts
                break
            if name == "message" and self.rules.openai and ev.data != DONE:
                finish, error, code = chunk_ending(ev.data)
                self.finish_reason = finish or self.finish_reason
                if error:
                    self.fail(Outcome.EVENT_ERROR, f"error in a chunk: {error[:200]}", code)
            elif name == "message" or name == self._done_event:
                self._completed = True
                self._t_done = self._t_read
            elif name == "error":
                self.fail(Outcome.EVENT_ERROR, f"event: error: {ev.data[:200]}")
        if self._body is not None and self._body.complete:
            self._message_complete = True

    def over(self) -> bool:
        """Nothing more of the response matters: it is over, failed, or completed by the rule."""
        return bool(self._message_complete
                    or (self.outcome is not None and self.outcome is not Outcome.EVENT_ERROR)
                    or (self._completed and self.rules.completion != "close" and not self.drainable())
                    or (self._parser is None and self.status and self.status != 200
                        and len(self._error_body) >= ERROR_BODY_BYTES))

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.t_headers_ns = self._t_read
        self.status = self._http.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            self._informational = True
            return
        self._keep_alive = self._http.should_keep_alive()
        headers = self.headers
        ctype = headers.get("content-type", "")
        self.content_type = ctype
        if self.status != 200:
            return
        media = ctype.split(";", 1)[0].strip().lower()
        if media != "text/event-stream":
            self.fail(Outcome.PROTOCOL_ERROR, f"Content-Type is {ctype or 'missing'}, not text/event-stream")
            return
        charset = ctype.lower().partition("charset=")[2].strip().strip('"')
        self.charset_warning = charset not in ("utf-8", "utf8")
        encoding = headers.get("content-encoding", "identity")
        if encoding in ("gzip", "x-gzip"):
            self._gunzip = zlib.decompressobj(16 + zlib.MAX_WBITS)
        elif encoding == "deflate":
            self._gunzip = zlib.decompressobj()
        framing = framing_of(headers)
        self._ends_at_close = framing == (False, -1)  # neither a length nor chunks: the close ends the body
        if framing is None or self._gunzip is not None:  # httptools takes the framing off, hands on_body the body
            self._parser = self.log = self._new_log()
        else:  # the log takes the raw body once the head's end is found
            self._framing = framing

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
            self.fail(Outcome.PROTOCOL_ERROR, str(err))
            self._parser = None
            return
        if notable:
            self._act_on(notable)

    def on_message_complete(self) -> None:
        if not self._informational:
            self._message_complete = True

    # --- what it came to ---
    def fail(self, outcome: Outcome, error: str, code: str = "") -> None:
        """The stream failed this way (the first failure decides)."""
        if self.outcome is None:
            self.outcome, self.error, self.error_code = outcome, error, code

    def fail_on(self, exc: BaseException, phase: str, host: str) -> None:
        """The stream failed with ``exc`` in ``phase``; a break before any answer says what that suggests."""
        outcome, text = classify_error(exc, phase, self.rules, host)
        if outcome is Outcome.RESET and phase == "read" and not self._first:
            text += ": the server closed without answering (is it an HTTP/1.1 server? does it want https://?)"
        self.fail(outcome, text)

    def bytes_received(self) -> int:
        """Response bytes so far: the head and any body httptools took, plus what the log took."""
        return self._response_bytes + (self.log.bytes_in if self._log_has_body else 0)

    def last_read_ns(self) -> int:
        """The time of the stream's last read, whoever took it (feed, or the reader: fed)."""
        body = self._body
        return self._t_read if body is None else max(self._t_read, body.last_t_ns)

    def started_ns(self) -> int:
        """When the request went out (after connecting): no read of its answer can be earlier."""
        return self._t_start

    def idle_since_ns(self) -> int:
        """Where the read timeout counts from: the last read, but the request's sending until the
        head is whole (a head dripped byte by byte must time out too)."""
        return self.last_read_ns() if self._head_done else self._t_sent

    def end_ns(self) -> int:
        """The stream's end: the read that completed it by its rule, the read that ended it, or
        when it timed out (reading the body's end afterwards, for reuse, does not count)."""
        if self._t_done >= 0:
            return self._t_done
        return self._t_end if self._t_end >= 0 else self.last_read_ns()

    @property
    def message_complete(self) -> bool:
        return self._message_complete

    def verdict(self, duration_ns: int) -> tuple[Outcome, str, str]:
        """How the stream ended: (outcome, error text, gateway error code)."""
        outcome, error, code = self._classify(duration_ns)
        # The gateway's cut looks like a reset (or a clean but early end) that comes at the limit.
        # A timeout is never re-labelled: the harness's own deadline is not the gateway's.
        rules = self.rules
        if outcome in (Outcome.RESET, Outcome.INCOMPLETE) and duration_ns >= rules.cutoff_after_s * 1e9:
            error = f"ended at {duration_ns / 1e9:.2f} s, at the gateway limit of {rules.limit_s:g} s ({error})"
            outcome = Outcome.CUTOFF
        return outcome, error, code

    def _classify(self, duration_ns: int) -> tuple[Outcome, str, str]:
        status = self.status
        if self.outcome is not None:
            return self.outcome, self.error, self.error_code
        if status and status != 200:
            code = error_code_of(self._error_body) or ""
            error = f"HTTP {status}: {self._error_body.decode('utf-8', 'replace')}"
            # The gateway's cut is a 504, or a 5xx with a cutoff code that comes at the limit; the
            # same code well before it is the backend failing, not the limit (shared/apig/SPEC.md).
            at_limit = duration_ns >= self.rules.cutoff_after_s * 1e9
            if status == 504 or (code in CUTOFF_CODES and status >= 500 and status != 502 and at_limit):
                return Outcome.CUTOFF, error, code
            if status in (401, 403) or code in AUTH_CODES:
                return Outcome.AUTH_ERROR, error, code
            if status == 429 or code in THROTTLE_CODES:
                return Outcome.THROTTLED, error, code
            if status == 413:
                return Outcome.TOO_LARGE, error, code
            if status in REDIRECTS:
                where = self.headers.get("location", "nowhere (no Location header)")
                return Outcome.HTTP_ERROR, (f"HTTP {status}: redirected to {where}, not followed (sseload follows up "
                                            f"to {self.rules.max_redirects} redirects on the same host, [stream] "
                                            "max_redirects): point -H or [request] url at it"), code
            return Outcome.HTTP_ERROR, error, code
        completion = self.rules.completion
        if self._message_complete:
            if self._completed or completion in ("close", "auto"):
                return Outcome.OK, "", ""
            return Outcome.INCOMPLETE, f"stream ended without its completion ({completion})", ""
        if self._completed and completion != "close":  # ended by the rule's event, before the body's end
            return Outcome.OK, "", ""
        if not status:
            if self._first:
                hint = not_http_hint(self._first)
                return Outcome.RESET, f"connection closed before a whole response head{': ' + hint if hint else ''}", ""
            return Outcome.RESET, ("connection closed before a response: the server closed without answering "
                                   "(is it an HTTP/1.1 server? does it want https://?)"), ""
        return Outcome.RESET, "connection closed mid-stream", ""

    def release(self) -> None:
        """Drop the HTTP parser: it calls back into this object, a reference cycle that only the
        cyclic collector (made rare during load) would otherwise free, with the stream's log."""
        self._http = None
        self._on_body_log = None

    def drainable(self) -> bool:
        """Completed by the rule while a framed body (chunked, a length) is still open."""
        return self._completed and not self._message_complete and self._body is not None \
            and not self._ends_at_close

    def keep_alive(self, outcome: Outcome) -> bool:
        """Whether the connection may carry the user's next stream: the response ended by its framing
        (not by the close) and HTTP/1.1 keep-alive holds (no Connection: close, not HTTP/1.0)."""
        return (outcome is Outcome.OK and self._message_complete and not self._ends_at_close
                and self._keep_alive and self.headers.get("connection", "").lower() != "close")


__all__ = ["DeadlineExceeded", "Response", "StreamRules", "classify_error", "framing_of"]
