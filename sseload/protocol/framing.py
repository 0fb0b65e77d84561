"""HTTP/1.1 body framing (RFC 9112 sections 6-7), sans I/O: which framing a head announces, and
taking it off a body as it arrives.

This is HTTP, not SSE: the event log (sseload.protocol.sse) runs a body through it first so that
a read goes from socket to events in one call. Its compiled twin is framing.c beside it;
tests/test_body_framing.py holds this definition to llhttp and the twin to this definition.
"""

from __future__ import annotations

import re

from sseload.protocol.sse_types import SSEProtocolError

#: A chunk-size line or trailer line longer than this is not HTTP/1.1 framing.
MAX_FRAMING_LINE = 16384
_CHUNK_SIZE_LINE = re.compile(rb"([0-9A-Fa-f]{1,15})[ \t]*(?:;.*)?", re.DOTALL)
_SIZE, _DATA, _DATA_END, _TRAILER, _COMPLETE = range(5)


def framing_of(headers: dict[str, str]) -> tuple[bool, int] | None:
    """(chunked, length) of a body the event log can take off itself, length -1 for a body that
    ends at the connection's close; None to leave it to httptools (any other transfer coding, or a
    Content-Length that is not a plain number)."""
    te, cl = headers.get("transfer-encoding"), headers.get("content-length")
    if te is not None:
        return (True, -1) if te.strip().lower() == "chunked" and cl is None else None
    if cl is None:
        return False, -1  # until the connection closes
    cl = cl.strip()
    return (False, int(cl)) if cl.isascii() and cl.isdigit() else None


def codings(value: str, understood: tuple[str, ...] = ()) -> list[str]:
    """The codings a Content- or Transfer-Encoding header lists, lowercase (names are case-insensitive,
    RFC 9110), without ``identity`` and those ``understood``."""
    names = (name.strip().lower() for name in value.split(","))
    return [name for name in names if name and name != "identity" and name not in understood]


class BodyFraming:
    """An HTTP/1.1 response body's framing, sans I/O: body bytes in, content out.

    ``chunked``: chunk-size lines (hex, optional extensions after ``;``), chunk data, and after
    the last (zero) chunk any trailer lines up to an empty one; else ``length`` bytes, or
    (``length`` -1) everything until the connection closes, which the caller sees. ``complete``
    turns true once the framing says the body is over; bytes after that are ignored. Lines end
    with CRLF or a bare LF (a tolerant reader). Broken framing raises :class:`SSEProtocolError`
    before any content of that read is handed out.
    """

    __slots__ = ("_left", "_line", "_state", "chunked", "complete")

    def __init__(self, chunked: bool = False, length: int = -1) -> None:
        self.chunked = chunked
        self._left = length  # bytes left of the body (length) or of the chunk (chunked)
        self._state = _SIZE
        self._line = b""  # a framing line begun in earlier reads
        self.complete = not chunked and length == 0

    def feed(self, data: bytes) -> list[bytes]:
        if self.complete:
            return []
        if not self.chunked:
            if self._left < 0:
                return [data]
            take = data[:self._left]
            self._left -= len(take)
            self.complete = self._left == 0
            return [take]
        out = []
        i, n = 0, len(data)
        while i < n and self._state != _COMPLETE:
            if self._state == _DATA:
                take = min(self._left, n - i)
                out.append(data[i:i + take])
                i += take
                self._left -= take
                if self._left == 0:
                    self._state = _DATA_END
                continue
            j = data.find(b"\n", i)
            if j < 0:
                self._line += data[i:]
                if len(self._line) > MAX_FRAMING_LINE:
                    raise SSEProtocolError(f"malformed chunked body: a framing line over {MAX_FRAMING_LINE} bytes")
                break
            line = self._line + data[i:j]
            self._line = b""
            i = j + 1
            if len(line) > MAX_FRAMING_LINE:
                raise SSEProtocolError(f"malformed chunked body: a framing line over {MAX_FRAMING_LINE} bytes")
            if line.endswith(b"\r"):
                line = line[:-1]
            self._end_line(line)
        self.complete = self._state == _COMPLETE
        return out

    def _end_line(self, line: bytes) -> None:
        state = self._state
        if state == _SIZE:
            m = _CHUNK_SIZE_LINE.fullmatch(line)
            if m is None:
                raise SSEProtocolError("malformed chunked body: a bad chunk-size line")
            self._left = int(m[1], 16)
            self._state = _DATA if self._left else _TRAILER
        elif state == _DATA_END:
            if line:
                raise SSEProtocolError("malformed chunked body: chunk data longer than its size")
            self._state = _SIZE
        elif not line:  # _TRAILER: an empty line ends the trailers and the body
            self._state = _COMPLETE


__all__ = ["MAX_FRAMING_LINE", "BodyFraming", "framing_of"]
