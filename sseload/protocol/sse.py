"""Server-Sent Events, sans I/O: the WHATWG parser, and the event log the harness runs per stream.

:class:`SSEParser` follows the WHATWG "event stream interpretation" rules
(https://html.spec.whatwg.org/multipage/server-sent-events.html#event-stream-interpretation).
It is fed bytes and hands back events; it never touches a socket or a clock, so the
harness can timestamp a read first and parse second, and tests can feed it every split.
Work is done per read, not per byte: a read is split on line ends once, and each event's
data is decoded once, at dispatch. Decoding line by line gives the same text as decoding
the whole stream first, because line-end bytes can never be part of a UTF-8 sequence.

:class:`PyEventLog` is the per-event hot path, defined in Python: a body's framing taken off
(sseload.protocol.framing), its events parsed, three numbers recorded per event and, for
an LLM API's chunks, their facts (a dialect's scan program: sseload.protocol.scan). ``EventLog`` is its compiled twin
(sse.c and _sse_module.c beside it) where that was built; CONTRIBUTING.md says how the two are kept equal.
"""

from __future__ import annotations

import re
from array import array

from sseload.protocol.framing import BodyFraming
from sseload.protocol.scan import ANSWER, REASONING, TOOL, Program, scan
from sseload.protocol.sse_types import SSEEvent, SSEProtocolError

__all__ = ["ALL_OUTPUT", "DEFAULT_MAX_EVENT_BYTES", "KIND_BITS", "MAX_RETRY_DIGITS", "EventLog", "PyEventLog",
           "SSEEvent", "SSEParser", "SSEProtocolError"]

DEFAULT_MAX_EVENT_BYTES = 16 << 20  # of an event's data; memory per stream stays within it
ALL_OUTPUT = ANSWER | REASONING | TOOL
#: An LLM event's facts packed in one int64 (``llm()``): its output kinds' bits + this × (output tokens + 1).
KIND_BITS = 8
_BOM = b"\xef\xbb\xbf"
#: Longer is no reconnection time (and past 4,300 digits int() refuses it): malformed.
MAX_RETRY_DIGITS = 18


_new_event = tuple.__new__


class SSEParser:
    """Feed bytes in, get dispatched events out.

    ``max_event_bytes`` bounds memory: when one event (its data plus an unterminated
    line) grows past it, :class:`SSEProtocolError` is raised and the stream should be
    abandoned.
    """

    __slots__ = (
        "_bom_pending",
        "_cr_pending",
        "_data",
        "_data_len",
        "_event_type",
        "_last_id",
        "_pending",
        "_pending_len",
        "malformed",
        "max_event_bytes",
        "retry",
    )

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES) -> None:
        self.max_event_bytes = max_event_bytes
        #: Last valid ``retry`` field, in milliseconds, or None.
        self.retry: int | None = None
        self._pending: list[bytes] = []  # pieces of an unterminated line
        self._pending_len = 0
        self._cr_pending = False  # last byte seen was CR: a following LF is the same line end
        self._bom_pending = True  # still at stream start, may see (part of) a BOM
        self._data: list[bytes] = []
        self._data_len = 0
        self._event_type = b""
        self._last_id = ""
        #: Lines the spec says to ignore (unknown fields, bad retry values) plus events whose
        #: data was not valid UTF-8: legal to skip, but worth reporting.
        self.malformed = 0

    @property
    def last_event_id(self) -> str:
        return self._last_id

    def feed(self, chunk: bytes) -> list[SSEEvent]:
        """Parse one read; return the events it completed (often none, sometimes many)."""
        if not chunk:
            return []
        if self._bom_pending:
            chunk = self._strip_bom(chunk)
            if not chunk:
                return []
        if self._cr_pending:
            self._cr_pending = False
            if chunk[0] == 10:  # LF completing a CRLF split across reads
                chunk = chunk[1:]
                if not chunk:
                    return []
        if 13 in chunk:  # CR: normalise CRLF and lone CR to LF
            if chunk[-1] == 13:
                self._cr_pending = True
            chunk = chunk.replace(b"\r\n", b"\n").replace(b"\r", b"\n")
        lines = chunk.split(b"\n")
        if len(lines) == 1:  # no line end yet
            self._pending.append(chunk)
            self._pending_len += len(chunk)
            self._check_size()
            return []
        pending = self._pending
        if pending:  # the start of the first line came in earlier reads
            pending.append(lines[0])
            lines[0] = b"".join(pending)
            pending.clear()
            self._pending_len = 0
        tail = lines.pop()
        if tail:
            pending.append(tail)
            self._pending_len = len(tail)

        # The hot loop: one pass over the lines of a read. `data: ` lines (nearly all of a
        # stream) take the first branch; dispatch is inlined; events are built with
        # tuple.__new__ directly, skipping NamedTuple's Python-level constructor.
        events: list[SSEEvent] = []
        data = self._data
        data_len = self._data_len
        limit = self.max_event_bytes
        for line in lines:
            if line[:6] == b"data: ":
                value = line[6:]
                data.append(value)
                data_len += len(value) + 1
                if data_len - len(data) > limit:
                    self._data_len = data_len
                    self._check_size()
                continue
            if not line:
                if data:
                    raw = data[0] if len(data) == 1 else b"\n".join(data)
                    try:
                        text = raw.decode("utf-8")
                    except UnicodeDecodeError:
                        self.malformed += 1
                        text = raw.decode("utf-8", "replace")
                    event_type = self._event_type
                    events.append(_new_event(SSEEvent, (
                        event_type.decode("utf-8", "replace") if event_type else "message",
                        text, self._last_id, len(raw),
                    )))
                    data.clear()
                    data_len = 0
                self._event_type = b""
                continue
            if line[:4] == b"id: ":
                value = line[4:]
                if 0 not in value:
                    self._last_id = value.decode("utf-8", "replace")
                continue
            field, colon, value = line.partition(b":")
            if not field and colon:
                continue  # comment
            if value[:1] == b" ":
                value = value[1:]
            if field == b"data":
                data.append(value)
                data_len += len(value) + 1
                if data_len - len(data) > limit:
                    self._data_len = data_len
                    self._check_size()
            elif field == b"event":
                self._event_type = value
            elif field == b"id":
                if 0 not in value:
                    self._last_id = value.decode("utf-8", "replace")
            elif field == b"retry":
                if value.isdigit() and len(value) <= MAX_RETRY_DIGITS:  # ASCII digits only
                    self.retry = int(value)
                else:
                    self.malformed += 1
            else:
                self.malformed += 1
        self._data_len = data_len
        if data_len + self._pending_len > limit:
            self._check_size()
        return events

    def _strip_bom(self, chunk: bytes) -> bytes:
        seen = b"".join(self._pending) + chunk if self._pending else chunk
        if len(seen) < 3 and _BOM.startswith(seen):
            self._pending = [seen]
            self._pending_len = len(seen)
            return b""
        self._bom_pending = False
        self._pending = []
        self._pending_len = 0
        return seen[3:] if seen.startswith(_BOM) else seen

    def _check_size(self) -> None:
        """Raise when the event's data is over the limit: its lines' values, not the ``data: ``
        field names nor the line ends (a 1 MiB data line fits a 1 MiB limit). Callers test the
        cheap over-estimate (data and pending bytes, all counted) first."""
        size = self._data_len - len(self._data) + self._pending_len
        if self._pending_len >= 5:
            head = self._pending[0][:6]
            if len(head) < 6:
                head = b"".join(self._pending)[:6]
            if head[:5] == b"data:":
                size -= 6 if head[5:6] == b" " else 5
        if size > self.max_event_bytes:
            raise SSEProtocolError(
                f"an event grew past max_event_bytes={self.max_event_bytes} "
                f"({size} bytes of data without an event end); raise the limit in the scenario "
                "([stream] max_event_bytes) if the service really sends events this large"
            )


_TRUTH_NUMBER = re.compile(r"[ \t]*([0-9]+)")
_INT64_MAX = (1 << 63) - 1


class PyEventLog:
    """One stream's events as flat arrays: the harness's per-event hot path, defined in Python.

    ``feed(chunk, t_ns)`` parses a read with :class:`SSEParser` and records, per completed
    event, the read's time, the size of its data and the number that follows ``truth_key`` in
    it (the service's send time: spaces or tabs, then ASCII digits that fit an int64; 0 when
    absent). It returns only the events the caller must act on: events whose data is ``sentinel``,
    typed events (any ``event:`` but ``message``) and, with a dialect's scan ``program``, instead
    of every typed event only ``error`` and ``done_event``, plus the stream's first event and those
    the program says to act on (sseload.protocol.scan). As with ``SSEParser.feed``, a read that
    raises :class:`SSEProtocolError` records none of its events.

    Given ``chunked`` or a ``length``, ``feed`` takes the response body as it arrives and takes
    its framing off first (:class:`~sseload.protocol.framing.BodyFraming`); ``complete`` says
    when the body is over.

    This is the specification of ``sseload._sse.EventLog``, the compiled twin that does the
    same without a Python object per event; tests/test_event_log.py holds the two to the same
    results at every split of the input.
    """

    __slots__ = ("_done_event", "_framing", "_key", "_llm", "_outputs", "_parser", "_program", "_sentinel",
                 "_spilled_first_t", "_spilled_last_t", "bytes_in", "cached_tokens", "first_event_id", "keep_output",
                 "last_t_ns", "output_kinds", "prompt_tokens", "reasoning_tokens", "server_ns", "size", "spilled",
                 "t_ns")

    def __init__(self, max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES,
                 truth_key: bytes | None = None, sentinel: bytes | None = None,
                 chunked: bool = False, length: int = -1, program: Program | None = None, keep_output: bool = False,
                 output_kinds: int = ALL_OUTPUT, done_event: str | None = None) -> None:
        self._framing = BodyFraming(chunked, length) if chunked or length >= 0 else None
        self._parser = SSEParser(max_event_bytes)
        self._key = truth_key.decode("ascii") if truth_key else ""
        self._sentinel = sentinel.decode("utf-8") if sentinel is not None else None
        self.t_ns = array("q")  # the events held: those not yet spilled
        self.size = array("q")
        self.server_ns = array("q")
        self.spilled = 0  # events taken off by spill() (the recorder's), before those held
        self._spilled_first_t = self._spilled_last_t = -1
        self.bytes_in = 0  # every byte fed, framing and all
        self.last_t_ns = -1  # the time of the last read fed
        self.first_event_id = ""  # the event id in effect at the first event: where a feed resumed
        self._program = program  # an LLM API's chunks: per event, output kinds and usage (sseload.protocol.scan)
        self._done_event = done_event  # with a program: the typed event, besides error, returned to act on
        self._llm = array("q")  # output kinds + KIND_BITS * (output tokens + 1), per event
        self.prompt_tokens = -1  # the last usage numbers seen of these
        self.reasoning_tokens = -1
        self.cached_tokens = -1
        self.keep_output = program is not None and keep_output  # keep the data of each chunk carrying output
        self.output_kinds = output_kinds  # what counts as output (ANSWER, REASONING, TOOL bits)
        self._outputs: list[str] = []

    def feed(self, chunk: bytes, t_ns: int) -> list[SSEEvent]:
        self.bytes_in += len(chunk)
        self.last_t_ns = t_ns
        if self._framing is None:
            events = self._parser.feed(chunk)
        else:
            events = []
            for content in self._framing.feed(chunk):
                events += self._parser.feed(content)
        if not events:
            return events
        key, sentinel, program = self._key, self._sentinel, self._program
        notable = []
        first = not self.t_ns and not self.spilled
        if first:
            self.first_event_id = events[0].id
        self.t_ns.extend([t_ns] * len(events))
        size, server_ns = self.size.append, self.server_ns.append
        for ev in events:
            size(ev.size)
            truth = 0
            if key:
                data = ev.data
                k = data.find(key)
                if k >= 0:
                    k += len(key)
                    head = data[k:k + 19]  # fast path: time.time_ns() right after the key
                    if head.isascii() and head.isdigit() and len(head) == 19 \
                            and not data[k + 19:k + 20].isdigit():
                        truth = int(head)
                    else:
                        m = _TRUTH_NUMBER.match(data, k)
                        truth = int(m[1]) if m and len(m[1]) <= 19 else 0
                    if truth > _INT64_MAX:
                        truth = 0
            server_ns(truth)
            if program is None:
                if ev.event != "message" or ev.data == sentinel:
                    notable.append(ev)
            elif (self._llm_chunk(ev.data, program) or first or ev.data == sentinel
                  or (ev.event != "message" and ev.event in ("error", self._done_event))):
                notable.append(ev)
            first = False
        return notable

    def _llm_chunk(self, data: str, program: Program) -> bool:
        """Records an LLM chunk's facts; whether the response must act on it."""
        facts = scan(data, program)
        kinds = facts.kinds & self.output_kinds
        self._llm.append(kinds + KIND_BITS * (facts.output_tokens + 1))
        if facts.prompt_tokens >= 0:
            self.prompt_tokens = facts.prompt_tokens
        if facts.reasoning_tokens >= 0:
            self.reasoning_tokens = facts.reasoning_tokens
        if facts.cached_tokens >= 0:
            self.cached_tokens = facts.cached_tokens
        if kinds and self.keep_output:
            self._outputs.append(data)
        return facts.act

    def arrays(self) -> tuple[bytes, bytes, bytes]:
        """(t_ns, size, server_ns) of the events held, as native int64 bytes."""
        return self.t_ns.tobytes(), self.size.tobytes(), self.server_ns.tobytes()

    def spill(self) -> tuple[bytes, bytes, bytes, bytes]:
        """``(*arrays(), llm())`` of the events held, then held no more: the recorder takes a long stream's
        events while it is open. ``len``, ``times``, ``llm`` and ``first_t_ns`` still count them."""
        taken = (*self.arrays(), self._llm.tobytes())
        if self.t_ns:
            self._spilled_first_t = self._spilled_first_t if self.spilled else self.t_ns[0]
            self._spilled_last_t, self.spilled = self.t_ns[-1], self.spilled + len(self.t_ns)
            self.t_ns, self.size, self.server_ns, self._llm = array("q"), array("q"), array("q"), array("q")
        return taken

    held = property(lambda self: len(self.t_ns), doc="Events held in memory (not spilled).")

    def times(self, start: int) -> bytes:
        """The times of the events held from event ``start`` on, native int64 bytes (sseload.views.live)."""
        return self.t_ns[max(start - self.spilled, 0):].tobytes()

    def llm(self, start: int = 0) -> bytes:
        """With a program: per event from event ``start`` on, output kinds + KIND_BITS * (output tokens + 1),
        native int64 bytes (sseload.views.live counts an open stream's new tokens, as it reads its new times)."""
        return self._llm[max(start - self.spilled, 0):].tobytes()

    def outputs(self) -> list[str]:
        """keep_output: the data of each chunk that carried output, in order."""
        return list(self._outputs)

    def __len__(self) -> int:
        return self.spilled + len(self.t_ns)

    @property
    def complete(self) -> bool:
        """The body's framing says it is over (never, for a body without framing)."""
        return self._framing is not None and self._framing.complete

    @property
    def first_t_ns(self) -> int:
        """Time of the first event, -1 before it."""
        return self._spilled_first_t if self.spilled else self.t_ns[0] if self.t_ns else -1

    @property
    def last_event_t_ns(self) -> int:
        """Time of the last event, -1 before one."""
        return self.t_ns[-1] if self.t_ns else self._spilled_last_t

    @property
    def last_event_id(self) -> str:
        return self._parser.last_event_id

    @property
    def retry(self) -> int | None:
        return self._parser.retry

    @property
    def malformed(self) -> int:
        return self._parser.malformed

    @property
    def max_event_bytes(self) -> int:
        return self._parser.max_event_bytes


try:  # the compiled twin, where setup.py could build it
    from sseload._sse import EventLog
except ImportError:
    EventLog = PyEventLog
