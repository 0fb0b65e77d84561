"""One HTTP response to an SSE request, as a state machine fed ``(t_ns, bytes)`` reads.

It never touches a socket or a clock (the I/O shell, sseload.transport.client, does both): it reads
the response head (status, headers), picks the body's framing (sseload.protocol.framing), hands the
body to the stream's event log and acts on what the log returns (the scenario's completion rule,
event errors). Where it stands is one state, changed only by the table in sseload.protocol.state;
what that comes to as an :class:`~sseload.protocol.outcomes.Outcome` is sseload.protocol.classify,
the gateway contract. So every rule of the contract can be tested by feeding bytes.

httptools (llhttp) reads the head. A framed SSE body after it (chunked, a Content-Length, or
until the close) goes straight to the stream's event log, which takes the framing off itself:
one call per read, from bytes to recorded events (``on_body_log`` lets the I/O shell have the
native reader feed that log directly; see docs/measurement.md). A compressed body still goes
through httptools, then the bounded inflater (sseload.protocol.decoding), then the log.
"""

from __future__ import annotations

from collections.abc import Callable

import httptools

from sseload.protocol import classify
from sseload.protocol.decoding import inflater
from sseload.protocol.dialects import read_event
from sseload.protocol.framing import codings, framing_of
from sseload.protocol.outcomes import Outcome
from sseload.protocol.rules import MAX_HEAD_BYTES, StreamRules, truth_key  # noqa: F401  (StreamRules: its old home)
from sseload.protocol.sse_types import SSEProtocolError
from sseload.protocol.state import Got, State, next_state

DONE = "[DONE]"  # the data of the event that completes a stream (completion done or auto)
ERROR_BODY_BYTES = 1024  # the start of an error answer kept for its text and error_code


class Response:
    """The response to one request: fed reads, it knows when the stream is over and how it ended.

    ``state`` says where it is (:class:`~sseload.protocol.state.State`); it changes only in
    ``_step``, by the table in sseload.protocol.state. ``feed`` returns True once the state is over:
    the body ended, the stream failed, or the scenario's rule completed it with nothing worth reading
    after; the I/O shell then stops reading. ``on_body_log(log)``, where given, hears of the body's
    event log as soon as the head is read.
    """

    __slots__ = (
        "rules", "_log_class", "_on_body_log", "_http", "_t_read", "headers", "status", "content_type",
        "charset_warning", "_gunzip", "_parser", "log", "_body", "_framing", "_head_tail", "state", "_keeps_alive",
        "error_body", "outcome", "error", "error_code", "t_headers_ns", "_sentinel", "_done_event", "_response_bytes",
        "_t_start", "_t_end", "first_bytes", "completed_ns", "_t_sent", "finish_reason", "http_version",
        "response_id", "server_timings",
    )

    def __init__(self, rules: StreamRules, log_class, t_ns: int,
                 on_body_log: Callable[[object], None] | None = None) -> None:
        self.rules = rules
        self._log_class = log_class
        self._on_body_log = on_body_log
        self._http = httptools.HttpResponseParser(self)
        self._t_start = self._t_read = t_ns
        self._t_end = -1  # when the stream ended without a read ending it (a timeout)
        self._t_sent = t_ns  # when the request was sent: a head's timeout counts from here
        self.state = State.HEAD
        self._keeps_alive = True  # the final head lets the connection carry another request
        self.first_bytes = b""  # the response's first bytes, to name what a server that is not HTTP/1.x speaks
        self.completed_ns = -1  # the read that completed the stream by its rule ([DONE], a terminal event)
        self.headers: dict[str, str] = {}
        self.status = 0
        self.http_version = ""  # as the status line gave it ("1.1", "1.0"); "" until a final head came
        self.content_type = ""
        self.charset_warning = False
        self._gunzip = None
        self._parser = None  # the log while httptools takes the body's framing off (and the inflater its compression)
        self.log = None  # the stream's events (an event log), once the head says it is an SSE body
        self._body = None  # the log while it takes the raw body, framing and all
        self._framing: tuple[bool, int] | None = None  # (chunked, length) for the log to take off
        self._head_tail = b""  # the head's last bytes so far: its end may span reads
        self.error_body = b""  # the start of an answer other than 200
        self.outcome: Outcome | None = None  # the first failure, where one came; else verdict() decides
        self.error = ""
        self.error_code = ""
        self.finish_reason = ""  # an LLM API's stream: the last finish reason a chunk gave
        self.response_id = ""  # an LLM API's stream: the service's id of the response (sseload.protocol.dialects)
        self.server_timings = ""  # an LLM API's stream: the server's own timings of it, as JSON
        self.t_headers_ns = -1
        completion = rules.completion
        self._sentinel = DONE.encode() if completion in ("done", "auto") else None
        self._done_event = completion[6:] if completion.startswith("event:") else "\0none"
        self._response_bytes = 0  # the head's bytes, and the body's where the log does not take it raw

    def _step(self, got: Got) -> None:
        """The one place the state changes, by sseload.protocol.state's table."""
        self.state = next_state(self.state, got, self._keeps_alive)

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

    def abandoned(self, t_ns: int, patience_s: float) -> None:
        """The user's patience ran out at ``t_ns`` before the first output token: it gives up."""
        self._t_end = t_ns
        self.fail(Outcome.ABANDONED, f"no output token within {patience_s:g} s ([load] patience_s): the user gave up")

    def timed_out(self, t_ns: int) -> None:
        """The read timeout fired at ``t_ns``: the stream waited until then."""
        self._t_end = t_ns
        if self.state is State.HEAD:
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
            elif self.state is State.HEAD:
                self._take_head(data)
            else:
                self._feed_http(data)
        except SSEProtocolError as broken:  # broken framing, or an event over the limit
            self._broken(str(broken))
        except httptools.HttpParserUpgrade:
            self._switched()
        except httptools.HttpParserError as err:
            outcome, text = classify.classify_error(err, "read", self.rules, "")
            hint = classify.not_http_hint(self.first_bytes) if outcome is Outcome.PROTOCOL_ERROR else ""
            self.fail(outcome, f"{text}: {hint}" if hint else text)
        return self.state.over

    def feed_eof(self, t_ns: int) -> None:
        """The server closed the connection (FIN): the end of a body without framing (RFC 9112 section 6.3)."""
        self._t_read = t_ns
        self._step(Got.CLOSE)

    def fed(self, t_ns: int, fed: list) -> bool:
        """The reader fed a read to the body's log itself and it completed something to act on:
        ``fed`` is the list of events to act on. True when the stream is over."""
        self._t_read = t_ns
        self._act_on(fed)
        return self.state.over

    def refused(self, t_ns: int, error: SSEProtocolError) -> None:
        """The body's log refused a read the reader fed it (broken framing, an event too large)."""
        self._t_read = t_ns
        self._broken(str(error))

    def _take_head(self, data: bytes) -> None:
        """Only the response head goes to httptools; a framed SSE body after it goes to the log.

        The head ends at the first CRLF CRLF: llhttp takes no other line end in a head.
        """
        if len(self.first_bytes) < 16:
            self.first_bytes += data[: 16 - len(self.first_bytes)]
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
            self._http.feed_data(data[:split])  # on_headers_complete runs in here
            if self.state is not State.HEAD:
                break
            # 100 Continue and the like: the real response follows (their bytes count to the head's limit)
            self._head_tail = b""
            self.headers = {}
            self.status = 0
            self._http = httptools.HttpResponseParser(self)
            data = data[split:]
            if not data:
                return
        framing = self._framing
        if framing is not None:
            self._framing = None
            self.log = self._body = body = self._new_log(*framing)
            if body.complete:  # Content-Length: 0
                self._step(Got.BODY_END)
            elif self._on_body_log is not None:
                self._on_body_log(body)
        if len(data) > split:
            rest = data[split:]
            body = self._body
            if body is not None:
                notable = body.feed(rest, self._t_read)
                if notable or body.complete:
                    self._act_on(notable)
            else:
                self._feed_http(rest)

    def _feed_http(self, data: bytes) -> None:
        """A body httptools takes the framing off: compressed, framed as the log does not take it,
        or an answer other than 200."""
        self._response_bytes += len(data)
        if not self.state.over:
            self._http.feed_data(data)  # on_body and on_message_complete run in here
            if self.state is State.ERROR_BODY and len(self.error_body) >= ERROR_BODY_BYTES:
                self._step(Got.ERROR_KEPT)

    def _new_log(self, chunked: bool = False, length: int = -1):
        return self._log_class(self.rules.max_event_bytes,
                               truth_key(self.rules.send_time_key) if self.rules.truth else None,
                               self._sentinel, chunked, length, self.rules.program, self.rules.keep_output,
                               self.rules.output_kinds, self._done_event if self.rules.llm else None)

    def _broken(self, error: str) -> None:
        """The body broke the protocol (its framing, an event over the limit): no log takes more of it."""
        if self._body is not None:
            self._response_bytes += self._body.bytes_in
        self._parser = self._body = None
        self.fail(Outcome.PROTOCOL_ERROR, error)

    def _act_on(self, notable: list) -> None:
        """The events the log returned: typed events, [DONE] where it completes the stream (the log's
        sentinel), and for an LLM API's stream the events its dialect says to act on (a finish, an
        error, the first). They count only while the body is read for them: once the rule completed
        the stream, nothing does."""
        state = self.state
        if state is State.BODY or state is State.BODY_TO_CLOSE:
            dialect = self.rules.dialect
            for ev in notable:
                name = ev.event
                if (name == "message" and ev.data == DONE and self._sentinel is not None) or name == self._done_event:
                    self.completed_ns = self._t_read
                    self._step(Got.COMPLETION)
                    break
                if dialect is not None:
                    said = read_event(dialect, ev.data)
                    self.finish_reason = said.finish or self.finish_reason
                    self.response_id = self.response_id or said.response_id
                    self.server_timings = said.timings or self.server_timings
                    if said.error:
                        self.fail(Outcome.EVENT_ERROR, f"error in a chunk: {said.error[:200]}", said.code)
                        continue
                if name == "error":
                    self.fail(Outcome.EVENT_ERROR, f"event: error: {ev.data[:200]}")
        body = self._body
        if body is not None and body.complete:
            self._step(Got.BODY_END)

    def over(self) -> bool:
        """Nothing more of the response matters: it is over, failed, or completed by the rule."""
        return self.state.over

    # --- httptools callbacks ---
    def on_header(self, name: bytes, value: bytes) -> None:
        self.headers[name.decode("latin-1").lower()] = value.decode("latin-1")

    def on_headers_complete(self) -> None:
        self.t_headers_ns = self._t_read
        self.status = self._http.get_status_code()
        if 100 <= self.status < 200 and self.status != 101:
            return  # 100 Continue and the like: the state stays HEAD, the real head follows
        headers = self.headers
        self._keeps_alive = self._http.should_keep_alive() and headers.get("connection", "").lower() != "close"
        self.http_version = self._http.get_http_version()
        ctype = headers.get("content-type", "")
        self.content_type = ctype
        if self.status == 101:
            self._switched()
            return
        if self.status != 200:
            self._step(Got.OTHER_HEAD)
            return
        media = ctype.split(";", 1)[0].strip().lower()
        if media != "text/event-stream":
            self.fail(Outcome.PROTOCOL_ERROR, f"Content-Type is {ctype or 'missing'}, not text/event-stream")
            return
        charset = ctype.lower().partition("charset=")[2].strip().strip('"')
        self.charset_warning = charset not in ("utf-8", "utf8")
        unknown = codings(headers.get("transfer-encoding", ""), ("chunked",))
        if unknown:  # a transfer coding under the chunks ("gzip, chunked"): its content would be unread
            self.fail(Outcome.PROTOCOL_ERROR, f"Transfer-Encoding {', '.join(unknown)} is not one sseload decodes "
                      "(chunked only)")
            return
        try:
            self._gunzip = inflater(headers.get("content-encoding", ""), self.rules.max_decoded_bytes,
                                    self.rules.max_decode_ratio)
        except SSEProtocolError as unknown:
            self.fail(Outcome.PROTOCOL_ERROR, str(unknown))
            return
        framing = framing_of(headers)
        self._step(Got.EVENT_STREAM_TO_CLOSE if framing == (False, -1) else Got.EVENT_STREAM)
        if framing is None or self._gunzip is not None:  # httptools takes the framing off, hands on_body the body
            self._parser = self.log = self._new_log()
        else:  # the log takes the raw body once the head's end is found
            self._framing = framing

    def _switched(self) -> None:
        self.fail(Outcome.PROTOCOL_ERROR, f"the server switched protocols (HTTP {self.status or 101} Upgrade: "
                  f"{self.headers.get('upgrade', '?')}), not an SSE response")

    def on_body(self, body: bytes) -> None:
        parser = self._parser
        if parser is None:
            if self.state is State.ERROR_BODY and len(self.error_body) < ERROR_BODY_BYTES:
                self.error_body += body[: ERROR_BODY_BYTES - len(self.error_body)]  # for its text and code
            return
        try:  # a compressed body: inflated a bounded piece at a time (a bomb is refused, not unpacked)
            for piece in (body,) if self._gunzip is None else self._gunzip.feed(body):
                notable = parser.feed(piece, self._t_read)
                if notable:
                    self._act_on(notable)
                if self.state.over:
                    return
        except SSEProtocolError as err:
            self._broken(str(err))

    def on_message_complete(self) -> None:
        self._step(Got.BODY_END)  # a 1xx head's end leaves HEAD as it is

    # --- what it came to ---
    def fail(self, outcome: Outcome, error: str, code: str = "") -> None:
        """The stream failed this way; the first failure decides. An event error is kept and the stream
        read on. Any other failure ends it, unless the rule completed it first or it was over: then
        the stream keeps its outcome and only its connection goes (sseload.protocol.state)."""
        if outcome is not Outcome.EVENT_ERROR:
            self._step(Got.FAILURE)
            if self.state is not State.FAILED:
                return
        if self.outcome is None:
            self.outcome, self.error, self.error_code = outcome, error, code

    def fail_on(self, exc: BaseException, phase: str, host: str) -> None:
        """The stream failed with ``exc`` in ``phase``; a break before any answer says what that suggests."""
        outcome, text = classify.classify_error(exc, phase, self.rules, host)
        if outcome is Outcome.RESET and phase == "read" and not self.first_bytes:
            text += ": the server closed without answering (is it an HTTP/1.1 server? does it want https://?)"
        self.fail(outcome, text)

    def verdict(self, duration_ns: int) -> tuple[Outcome, str, str]:
        """How the stream ended: (outcome, error text, gateway error code); sseload.protocol.classify decides."""
        return classify.verdict(self, duration_ns)

    def drainable(self) -> bool:
        """Completed by the rule while a framed body is still open: reading on to its end lets the
        connection carry the next stream."""
        return self.state is State.DRAINING

    def keep_alive(self, outcome: Outcome) -> bool:
        """Whether the connection may carry the user's next stream: the stream is ok (or a redirect
        followed) and its response ended by its framing on a connection the head keeps alive."""
        return (outcome is Outcome.OK or outcome is Outcome.REDIRECTED) and self.state is State.DONE

    def bytes_received(self) -> int:
        """Response bytes so far: the head and any body httptools took, plus what the log took raw."""
        body = self._body
        return self._response_bytes + (body.bytes_in if body is not None else 0)

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
        return self._t_sent if self.state is State.HEAD else self.last_read_ns()

    def end_ns(self) -> int:
        """The stream's end: the read that completed it by its rule, the read that ended it, or
        when it timed out (reading the body's end afterwards, for reuse, does not count)."""
        if self.completed_ns >= 0:
            return self.completed_ns
        return self._t_end if self._t_end >= 0 else self.last_read_ns()

    def release(self) -> None:
        """Drop the HTTP parser: it calls back into this object, a reference cycle that only the
        cyclic collector (made rare during load) would otherwise free, with the stream's log."""
        self._http = None
        self._on_body_log = None


__all__ = ["Response", "StreamRules"]
