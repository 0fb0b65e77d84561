"""A compressed body's content coding taken off, within bounds: a decompression bomb is refused.

zlib inflates whatever one call hands it: 1 MiB of gzip on the wire can be 1 GiB of
``data: x`` (deflate reaches about 1000:1), and the stream's event log would record a hundred
million events before the stream ended. Here a body is inflated at most :data:`PIECE_BYTES` at a
time (zlib's ``max_length``; the input left over waits in ``unconsumed_tail``), and inflating
stops with :class:`~sseload.protocol.sse_types.SSEProtocolError` (a ``protocol_error``) once the
content passes ``max_bytes``, or, past its first :data:`RATIO_FLOOR_BYTES`, ``max_ratio`` times
the compressed bytes it came from. So memory per stream never holds more than one piece of
content beyond the limit. Sans I/O, like the rest of sseload.protocol.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator

from sseload.protocol.framing import codings
from sseload.protocol.sse_types import SSEProtocolError

DEFAULT_MAX_DECODED_BYTES = 256 << 20  # [stream] max_decoded_bytes: content per stream, once decompressed
DEFAULT_MAX_DECODE_RATIO = 100.0  # [stream] max_decode_ratio: content bytes per compressed byte
#: A body's first MiB may inflate at any ratio: a short repetitive answer compresses very well and is no bomb.
RATIO_FLOOR_BYTES = 1 << 20
PIECE_BYTES = 64 << 10  # the most content one zlib call makes
#: The content codings sseload takes off, and zlib's window bits for each (deflate: see Inflater).
CODINGS = {"gzip": 16 + zlib.MAX_WBITS, "x-gzip": 16 + zlib.MAX_WBITS, "deflate": zlib.MAX_WBITS}


def inflater(content_encoding: str, max_bytes: int = DEFAULT_MAX_DECODED_BYTES,
             max_ratio: float = DEFAULT_MAX_DECODE_RATIO) -> Inflater | None:
    """The inflater a Content-Encoding header asks for, None for none (or ``identity``);
    SSEProtocolError naming the codings sseload does not take off (more than one, or one not in
    :data:`CODINGS`)."""
    encoding = codings(content_encoding)
    if not encoding:
        return None
    if len(encoding) != 1 or encoding[0] not in CODINGS:
        raise SSEProtocolError(f"Content-Encoding {', '.join(encoding)} is not one sseload decodes (gzip, deflate); "
                               "the request's Accept-Encoding should not ask for it")
    return Inflater(encoding[0], max_bytes, max_ratio)


class Inflater:
    """One body's content coding taken off as it arrives: compressed bytes in, content out in pieces.

    ``deflate`` is meant to be zlib-wrapped (RFC 9110 section 8.4.1.2), but servers send raw
    deflate too: the first two bytes say which.
    """

    __slots__ = ("_head", "_z", "bytes_in", "bytes_out", "coding", "max_bytes", "max_ratio")

    def __init__(self, coding: str, max_bytes: int = DEFAULT_MAX_DECODED_BYTES,
                 max_ratio: float = DEFAULT_MAX_DECODE_RATIO) -> None:
        self.coding = coding
        self.max_bytes = max_bytes
        self.max_ratio = max_ratio
        self.bytes_in = 0  # compressed bytes taken
        self.bytes_out = 0  # content bytes made
        self._head = b""  # deflate: a first byte, until the second tells zlib from raw deflate
        self._z = None if coding == "deflate" else zlib.decompressobj(CODINGS[coding])

    def feed(self, data: bytes) -> Iterator[bytes]:
        """The content of ``data``, a piece at a time; SSEProtocolError for a body that does not
        decompress or passes a limit (raised before the piece that passes it is handed out)."""
        self.bytes_in += len(data)
        z = self._z
        if z is None:
            data = self._head + data
            if len(data) < 2:
                self._head = data
                return
            zlib_wrapped = data[0] & 0x0F == 8 and (data[0] << 8 | data[1]) % 31 == 0
            z = self._z = zlib.decompressobj(zlib.MAX_WBITS if zlib_wrapped else -zlib.MAX_WBITS)
        while not z.eof:
            try:
                out = z.decompress(data, min(PIECE_BYTES, self.max_bytes - self.bytes_out + 1))
            except zlib.error as err:
                raise SSEProtocolError(f"the {self.coding} body does not decompress: {err}") from None
            data = z.unconsumed_tail
            if out:
                self.bytes_out += len(out)
                self._check(self.bytes_in - len(data))
                yield out
            if not data and len(out) < PIECE_BYTES:  # (a full piece: zlib may hold more of it)
                return

    def _check(self, consumed: int) -> None:
        out = self.bytes_out
        ratio = out / max(1, consumed)
        said = f"{ratio:,.0f}:1 ({out:,} bytes of content from {consumed:,} compressed)"
        if out > self.max_bytes:
            raise SSEProtocolError(f"the {self.coding} body inflates past [stream] max_decoded_bytes = "
                                   f"{self.max_bytes:,} at {said}; raise it if the service really sends this much")
        if out > RATIO_FLOOR_BYTES and ratio > self.max_ratio:
            raise SSEProtocolError(f"the {self.coding} body inflates {said}, past [stream] max_decode_ratio = "
                                   f"{self.max_ratio:g}: a decompression bomb, refused before it fills memory")


__all__ = ["CODINGS", "DEFAULT_MAX_DECODED_BYTES", "DEFAULT_MAX_DECODE_RATIO", "PIECE_BYTES", "RATIO_FLOOR_BYTES",
           "Inflater", "inflater"]
