"""The compiled event log (its sources: sseload/protocol/*.c, sseload/protocol/_sse.h says which twins
which module); its specification is sseload.protocol.sse.PyEventLog."""

from typing import Any

from sseload.protocol.scan import Program
from sseload.protocol.sse_types import SSEEvent

class EventLog:
    """One stream's events as flat arrays: three int64 per event, no Python object per event."""

    def __init__(self, max_event_bytes: int = ..., truth_key: bytes | None = ..., sentinel: bytes | None = ...,
                 chunked: bool = ..., length: int = ..., program: Program | bytes | None = ...,
                 keep_output: bool = ..., output_kinds: int = ..., done_event: str | None = ...) -> None: ...
    def feed(self, chunk: bytes, t_ns: int, /) -> list[SSEEvent]:
        """Record every event the chunk completes; return those to act on (PyEventLog.feed says which).

        Raises sseload.protocol.sse_types.SSEProtocolError for an event over max_event_bytes or broken framing."""
    def arrays(self) -> tuple[bytes, bytes, bytes]:
        """(t_ns, size, server_ns) of the recorded events, as native int64 bytes."""
    def times(self, start: int, /) -> bytes:
        """The event times from event ``start`` on, as native int64 bytes."""
    def llm(self, start: int = 0, /) -> bytes:
        """With a program: per event from event ``start`` on, output kinds + KIND_BITS * (output tokens + 1), as
        native int64 bytes."""
    def outputs(self) -> list[str]:
        """keep_output: the data of each chunk that carried output, in order."""
    @property
    def prompt_tokens(self) -> int: ...
    @property
    def reasoning_tokens(self) -> int: ...
    @property
    def cached_tokens(self) -> int: ...
    def __len__(self) -> int: ...
    @property
    def bytes_in(self) -> int: ...
    @property
    def last_t_ns(self) -> int: ...
    @property
    def first_t_ns(self) -> int: ...
    @property
    def last_event_id(self) -> str: ...
    @property
    def first_event_id(self) -> str: ...
    @property
    def retry(self) -> int | None: ...
    @property
    def malformed(self) -> int: ...
    @property
    def max_event_bytes(self) -> int: ...
    @property
    def complete(self) -> bool:
        """The body's framing says it is over (never, for a body without framing)."""

_feed_api: Any  # the capsule sseload._reader feeds logs through (sseload/_sse_api.h)
