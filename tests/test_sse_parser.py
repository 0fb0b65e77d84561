"""The SSE parser against the WHATWG event-stream rules, at every byte boundary."""

from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.protocol.sse import SSEParser, SSEProtocolError
from tests.sse_streams import streams

pytestmark = pytest.mark.unit


def triples(events):
    return [(e.event, e.data, e.id) for e in events]


def parse(stream: bytes, cuts=(), **kw):
    p = SSEParser(**kw)
    out = []
    last = 0
    for cut in list(cuts) + [len(stream)]:
        out += p.feed(stream[last:cut])
        last = cut
    return triples(out), p


def parse_every_chunking(stream: bytes, **kw):
    """Parse whole, byte by byte, and split at every boundary; all must agree."""
    whole, p = parse(stream, **kw)
    bytewise, _ = parse(stream, range(1, len(stream)), **kw)
    assert bytewise == whole, "byte-at-a-time parse differs"
    for i in range(1, len(stream)):
        split, _ = parse(stream, [i], **kw)
        assert split == whole, f"split at byte {i} differs"
    return whole, p


CASES = [
    # (name, stream, expected [(event, data, id)])
    ("simple", b"data: hello\n\n", [("message", "hello", "")]),
    ("two data lines", b"data: a\ndata: b\n\n", [("message", "a\nb", "")]),
    ("crlf", b"data: a\r\n\r\ndata: b\r\n\r\n", [("message", "a", ""), ("message", "b", "")]),
    ("lone cr", b"data: a\r\rdata: b\r\r", [("message", "a", ""), ("message", "b", "")]),
    ("mixed ends", b"data: a\r\ndata: b\rdata: c\n\r\n", [("message", "a\nb\nc", "")]),
    ("event type", b"event: add\ndata: 1\n\n", [("add", "1", "")]),
    ("type resets", b"event: x\ndata: 1\n\ndata: 2\n\n", [("x", "1", ""), ("message", "2", "")]),
    ("comment", b": ping\ndata: x\n\n", [("message", "x", "")]),
    ("only comments", b": a\n: b\n\n", []),
    ("no colon field", b"data\n\n", [("message", "", "")]),
    ("empty data twice", b"data\ndata\n\n", [("message", "\n", "")]),
    ("one space stripped", b"data:  two\n\n", [("message", " two", "")]),
    ("no space", b"data:x\n\n", [("message", "x", "")]),
    ("colon in value", b"data: a: b\n\n", [("message", "a: b", "")]),
    ("id persists", b"id: 7\ndata: a\n\ndata: b\n\n", [("message", "a", "7"), ("message", "b", "7")]),
    ("id reset to empty", b"id: 7\ndata: a\n\nid\ndata: b\n\n", [("message", "a", "7"), ("message", "b", "")]),
    ("id with nul ignored", b"id: 1\n\nid: a\x00b\ndata: x\n\n", [("message", "x", "1")]),
    ("id not ascii", "id: événement-1-事件\ndata: x\n\n".encode(), [("message", "x", "événement-1-事件")]),
    ("id without data not dispatched", b"id: 3\n\n", []),
    ("event without data not dispatched", b"event: x\n\ndata: y\n\n", [("message", "y", "")]),
    ("unknown field ignored", b"foo: bar\ndata: x\n\n", [("message", "x", "")]),
    ("field name case sensitive", b"Data: x\ndata: y\n\n", [("message", "y", "")]),
    ("bom stripped", b"\xef\xbb\xbfdata: x\n\n", [("message", "x", "")]),
    ("only first bom", b"\xef\xbb\xbf\xef\xbb\xbfdata: x\n\n", []),
    ("utf8 multibyte", "data: héllo 世界 🎉\n\n".encode(), [("message", "héllo 世界 🎉", "")]),
    ("invalid utf8", b"data: a\xffb\xc3\n\n", [("message", "a\ufffdb\ufffd", "")]),
    ("unterminated final event discarded", b"data: a\n\ndata: b\n", [("message", "a", "")]),
    ("unterminated no newline", b"data: a\n\ndata: b", [("message", "a", "")]),
    ("json payload", b'data: {"a": 1}\n\n', [("message", '{"a": 1}', "")]),
    ("done sentinel", b"data: [DONE]\n\n", [("message", "[DONE]", "")]),
    ("blank lines only", b"\n\n\n\n", []),
    ("space field", b" data: x\n\ndata: y\n\n", [("message", "y", "")]),
]


@pytest.mark.parametrize("name,stream,expected", CASES, ids=[c[0] for c in CASES])
def test_conformance_at_every_byte_boundary(name, stream, expected):
    events, _ = parse_every_chunking(stream)
    assert events == expected


def test_retry_only_when_all_ascii_digits():
    _, p = parse_every_chunking(b"retry: 1500\n\n")
    assert p.retry == 1500
    _, p = parse_every_chunking(b"retry: 1500\nretry: 12a\nretry: \xd9\xa3\nretry: -1\nretry:\n\n")
    assert p.retry == 1500
    _, p = parse_every_chunking(b"data: x\n\n")
    assert p.retry is None


def test_crlf_split_across_reads_is_one_line_end():
    p = SSEParser()
    assert p.feed(b"data: a\r") == []
    # The LF completes the CR; only one line end so far, so nothing dispatched yet.
    assert p.feed(b"\n") == []
    assert triples(p.feed(b"\r\n")) == [("message", "a", "")]


def test_event_size_is_the_data_bytes():
    events = SSEParser().feed("data: ab\ndata: é\n\n".encode())
    assert events[0].size == len("ab\né".encode())


def test_max_event_size_is_a_protocol_error_not_unbounded_memory():
    p = SSEParser(max_event_bytes=100)
    p.feed(b"data: " + b"x" * 50 + b"\n")
    with pytest.raises(SSEProtocolError, match="max_event_bytes=100"):
        p.feed(b"data: " + b"y" * 60 + b"\n")


def test_max_event_size_catches_an_endless_line():
    p = SSEParser(max_event_bytes=1000)
    with pytest.raises(SSEProtocolError):
        for _ in range(100):
            p.feed(b"z" * 64)


def test_events_under_the_limit_are_fine_and_limit_resets_per_event():
    p = SSEParser(max_event_bytes=100)
    for _ in range(50):
        assert len(p.feed(b"data: " + b"x" * 80 + b"\n\n")) == 1


def test_many_events_in_one_read_all_dispatched_in_order():
    stream = b"".join(b"id: %d\ndata: %d\n\n" % (i, i) for i in range(1000))
    events = SSEParser().feed(stream)
    assert [e.data for e in events] == [str(i) for i in range(1000)]
    assert events[-1].id == "999"


# --- property tests: chunking never changes the result, errors are only ours ---

@settings(max_examples=300, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(min_value=0, max_value=200), max_size=8))
def test_any_chunking_gives_the_same_events(stream, cuts):
    whole, _ = parse(stream)
    cuts = sorted({c for c in cuts if 0 < c < len(stream)})
    assert parse(stream, cuts)[0] == whole


@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=400), cuts=st.lists(st.integers(0, 400), max_size=10))
def test_arbitrary_bytes_raise_only_protocol_error_and_memory_stays_bounded(data, cuts):
    p = SSEParser(max_event_bytes=64)
    last = 0
    try:
        for cut in sorted(set(c for c in cuts if 0 < c < len(data))) + [len(data)]:
            p.feed(data[last:cut])
            last = cut
            assert p._data_len + p._pending_len <= 64
    except SSEProtocolError:
        pass
