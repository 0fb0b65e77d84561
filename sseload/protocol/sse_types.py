"""The SSE parser's two types, apart so the compiled event log (sseload._sse) can import them
without importing sseload.protocol.sse, which imports it (no import cycle)."""

from __future__ import annotations

from typing import NamedTuple


class SSEProtocolError(ValueError):
    """The stream broke a limit the harness sets (an event larger than allowed), or its framing."""


class SSEEvent(NamedTuple):
    event: str
    data: str
    id: str
    #: Bytes of the event's data lines (UTF-8, joined with "\n"), before decoding.
    size: int


__all__ = ["SSEEvent", "SSEProtocolError"]
