"""The body's framing under the event log: chunked and Content-Length bodies turned into content.

sseload.protocol.framing.BodyFraming is the definition; it must take off exactly what llhttp (httptools, the
response parser the headers still go through) takes off a valid body, and the compiled event
log must do what PyEventLog does on top of it, at every split, broken framing included.
"""

from __future__ import annotations

import httptools
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.protocol.framing import BodyFraming, framing_of
from sseload.protocol.sse import PyEventLog, SSEProtocolError
from tests.event_logs import BOTH, KEY, needs_c, observe, run
from tests.sse_streams import streams

try:
    from sseload._sse import EventLog as CEventLog
except ImportError:
    CEventLog = None


pytestmark = pytest.mark.unit


@st.composite
def chunked(draw, crlf_only: bool = False) -> tuple[bytes, bytes]:
    """(content, its chunked encoding): random chunk sizes, hex case, extensions, trailers.

    ``crlf_only``: the strict form llhttp takes; else also bare LF line ends and BWS before ";".
    """
    content = draw(streams())

    def eol() -> bytes:
        return b"\r\n" if crlf_only else draw(st.sampled_from([b"\r\n", b"\r\n", b"\n"]))

    parts, i = [], 0
    while i < len(content):
        n = draw(st.integers(1, len(content) - i))
        size = draw(st.sampled_from([b"%x", b"%X", b"%04x"])) % n
        # (whitespace before ";" is RFC 9112's BWS, which llhttp refuses; the strict form has none)
        ext = draw(st.sampled_from([b"", b";a=1", b';x="q"'] + ([] if crlf_only else [b" ;name", b"\t;x"])))
        parts += [size + ext, eol(), content[i:i + n], eol()]
        i += n
    parts += [b"0", draw(st.sampled_from([b"", b";end"])), eol()]
    for trailer in draw(st.lists(st.sampled_from([b"X-Trailer: 1", b"Server-Timing: a;dur=1"]), max_size=2)):
        parts += [trailer, eol()]
    parts.append(eol())
    return content, b"".join(parts)


def deframe(framing: BodyFraming, body: bytes, cuts) -> bytes:
    out, last = [], 0
    for cut in sorted(cuts) + [len(body)]:
        if cut > last:
            out += framing.feed(body[last:cut])
        last = max(last, cut)
    return b"".join(out)


def llhttp_content(body: bytes, head: bytes) -> tuple[bytes, bool]:
    class Sink:
        def __init__(self):
            self.parts, self.complete = [], False

        def on_body(self, b):
            self.parts.append(b)

        def on_message_complete(self):
            self.complete = True

    sink = Sink()
    httptools.HttpResponseParser(sink).feed_data(head + body)
    return b"".join(sink.parts), sink.complete


@settings(max_examples=300, deadline=None)
@given(enc=chunked(crlf_only=True), cuts=st.lists(st.integers(0, 600), max_size=10))
def test_chunked_framing_takes_off_what_llhttp_takes_off(enc, cuts):
    content, body = enc
    framing = BodyFraming(chunked=True)
    got = deframe(framing, body + b"HTTP/1.1 200 OK\r\n", cuts)  # bytes after the body are not content
    assert got == content and framing.complete
    assert llhttp_content(body, b"HTTP/1.1 200 OK\r\nTransfer-Encoding: chunked\r\n\r\n") == (content, True)


@settings(max_examples=100, deadline=None)
@given(content=st.binary(max_size=300), extra=st.binary(max_size=20), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_a_content_length_body_ends_at_its_length(content, extra, cuts):
    framing = BodyFraming(length=len(content))
    assert framing.complete == (not content)
    assert deframe(framing, content + extra, cuts) == content
    assert framing.complete


def test_without_framing_everything_is_content_until_the_connection_closes():
    framing = BodyFraming()
    assert deframe(framing, b"data: a\n\n" * 3, [4, 9]) == b"data: a\n\n" * 3
    assert not framing.complete


def test_the_head_picks_a_framing_the_log_takes_off_or_leaves_it_to_httptools():
    assert framing_of({"transfer-encoding": "chunked"}) == (True, -1)
    assert framing_of({"content-length": "12"}) == (False, 12)
    assert framing_of({}) == (False, -1)  # until the connection closes
    assert framing_of({"transfer-encoding": "gzip, chunked"}) is None
    assert framing_of({"transfer-encoding": "chunked", "content-length": "5"}) is None
    assert framing_of({"content-length": "1e3"}) is None


def test_a_chunked_body_is_not_complete_before_its_trailers_end():
    framing = BodyFraming(chunked=True)
    framing.feed(b"5\r\nhello\r\n0\r\nX-A: 1\r\n")
    assert not framing.complete
    assert framing.feed(b"\r\n") == [] and framing.complete


@pytest.mark.parametrize("body,what", [
    (b"zz\r\nhello\r\n", "a bad chunk-size line"),
    (b"\r\nhello\r\n", "a bad chunk-size line"),
    (b"5 x\r\nhello\r\n", "a bad chunk-size line"),
    (b"5\r\r\nhello\r\n", "a bad chunk-size line"),
    (b"10000000000000000\r\n", "a bad chunk-size line"),  # 17 hex digits: past any real chunk
    (b"F" * 40 + b"\r\n", "a bad chunk-size line"),  # past int64: refused before it overflows
    (b"5\r\nhello!\r\n", "chunk data longer than its size"),
    (b"5" + b" " * 20000, "a framing line over 16384 bytes"),
    (b"5;" + b"x" * 20000 + b"\r\n", "a framing line over 16384 bytes"),
])
@pytest.mark.parametrize("cls", BOTH)
def test_broken_chunked_framing_is_a_protocol_error_naming_it(cls, body, what):
    log = cls(chunked=True)
    with pytest.raises(SSEProtocolError, match="malformed chunked body: " + what):
        for cut in range(0, len(body), 4096):
            log.feed(body[cut:cut + 4096], 1)


@pytest.mark.parametrize("cls", BOTH)
def test_a_read_with_broken_framing_records_none_of_its_events(cls):
    log = cls(truth_key=KEY, chunked=True)
    log.feed(b"9\r\ndata: a\n\n\r\n", 1)
    with pytest.raises(SSEProtocolError):
        log.feed(b"9\r\ndata: b\n\n\r\nxyz\r\n", 2)
    assert len(log) == 1 and log.arrays()[0] == (1).to_bytes(8, "little")


@pytest.mark.parametrize("cls", BOTH)
def test_an_event_carries_the_time_of_the_read_that_ended_it_across_chunks(cls):
    body = b"".join(b"%x\r\n%s\r\n" % (len(p), p) for p in
                    [b'data: {"t_send_ns":5}\n\n', b"event: done\ndata: {}\n\n"]) + b"0\r\n\r\n"
    seen = run(cls, body, cuts=[26], truth_key=KEY, chunked=True)
    assert (seen.t_ns, seen.server, seen.error) == ([1, 1], [5, 0], None), seen.error
    assert [e.event for e in seen.notable] == ["done"]


@needs_c
@settings(max_examples=400, deadline=None)
@given(enc=chunked(), cuts=st.lists(st.integers(0, 700), max_size=12),
       limit=st.sampled_from([1 << 20, 40]), noise=st.sampled_from([b"", b"x", b"\r\r\n", b"5\r\nab"]),
       at=st.integers(0, 700))
def test_compiled_twin_frames_as_the_definition(enc, cuts, limit, noise, at):
    """Valid encodings, and ones broken at a random place: same events, errors and completeness."""
    _, body = enc
    body = body[:at] + noise + body[at:]

    kw = {"max_event_bytes": limit, "truth_key": KEY, "sentinel": b"[DONE]", "chunked": True}
    compiled, defined = CEventLog(**kw), PyEventLog(**kw)
    assert observe(compiled, body, cuts) == observe(defined, body, cuts)
    assert compiled.complete == defined.complete
    assert (compiled.bytes_in, compiled.last_t_ns) == (defined.bytes_in, defined.last_t_ns)


@needs_c
@settings(max_examples=100, deadline=None)
@given(content=streams(), extra=st.binary(max_size=10), cuts=st.lists(st.integers(0, 400), max_size=8))
def test_compiled_twin_ends_a_length_body_as_the_definition(content, extra, cuts):
    stream = content + extra
    compiled, defined = (cls(truth_key=KEY, length=len(content)) for cls in (CEventLog, PyEventLog))
    assert observe(compiled, stream, cuts) == observe(defined, stream, cuts)
    assert compiled.complete and defined.complete
