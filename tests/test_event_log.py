"""The event log (the harness's per-event hot path): its Python definition and its compiled twin.

sseload.protocol.sse.PyEventLog is specified here by what it records; sseload._sse.EventLog must give
the same results byte for byte, at every split of every stream, errors included.
"""

from __future__ import annotations

import sys

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.protocol import sse
from sseload.protocol.dialects import BUILT_IN, OPENAI, OUTPUT_KINDS, program
from sseload.protocol.sse import PyEventLog, SSEEvent, SSEProtocolError
from tests.event_logs import BOTH, KEY, CEventLog, Seen, ints, needs_c, observe, run  # noqa: F401
from tests.sse_streams import streams

pytestmark = pytest.mark.unit


@pytest.mark.parametrize("cls", BOTH)
def test_records_every_event_and_returns_only_typed_or_sentinel_ones(cls):
    stream = (b'id: 7\ndata: {"t_send_ns":123,"seq":1}\n\n'
              b"data: [DONE]\n\n"
              b"event: done\ndata: {}\n\n")
    notable, t_ns, size, server, malformed, _, _, n, first, error, *_ = run(
        cls, stream, cuts=[10, 45], truth_key=KEY, sentinel=b"[DONE]")
    assert notable == [SSEEvent("message", "[DONE]", "7", 6), SSEEvent("done", "{}", "7", 2)]
    assert (t_ns, size, server) == ([1, 2, 2], [25, 6, 2], [123, 0, 0])
    assert (n, first, error, malformed) == (3, 1, None, 0)


@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("data,expected", [
    (b'{"t_send_ns":1764000000123456789}', 1764000000123456789),
    ('{"t_send_ns":1764000000123456789\u0661}'.encode(), 1764000000123456789),  # ASCII digits only
    ('{"t_send_ns":\u0661\u0662}'.encode(), 0),
    (b'{"t_send_ns": \t42,"x":1}', 42),
    (b'{"t_send_ns":"42"}', 0),  # not a number
    (b'{"t_send_ns":-42}', 0),
    (b'{"t_send_ns":9223372036854775808}', 0),  # past int64
    (b'{"t_send_ns":99999999999999999999}', 0),
    (b'{"seq":1}', 0),
    (b'\xff{"t_send_ns":5}', 5),  # invalid UTF-8 elsewhere does not hide the number
])
def test_send_time_is_the_number_after_the_key(cls, data, expected):
    _, _, _, server, *_ = run(cls, b"data: " + data + b"\n\n", truth_key=KEY)
    assert server == [expected]


@pytest.mark.parametrize("cls", BOTH)
def test_without_a_key_no_send_times(cls):
    _, _, _, server, *_ = run(cls, b'data: {"t_send_ns":5}\n\n')
    assert server == [0]


@pytest.mark.parametrize("cls", BOTH)
def test_a_read_that_overflows_records_none_of_its_events(cls):
    stream = b"data: ok\n\n" + b"data: " + b"x" * 200 + b"\n\n"
    seen = run(cls, stream, cuts=[10], max_event_bytes=100)
    assert seen.t_ns == [0]  # the first read's event stays
    assert "max_event_bytes=100" in seen.error


@pytest.mark.parametrize("cls", BOTH)
def test_absurd_retry_is_malformed_not_a_crash(cls):
    seen = run(cls, b"retry: " + b"9" * 5000 + b"\nretry: 250\n")
    assert (seen.malformed, seen.retry, seen.error) == (1, 250, None)


@pytest.mark.parametrize("cls", BOTH)
def test_the_log_counts_every_byte_and_the_time_of_every_read_fed(cls):
    log = cls(max_event_bytes=100)
    assert (log.bytes_in, log.last_t_ns) == (0, -1)
    log.feed(b"data: a\n", 10)
    log.feed(b"", 11)
    assert (log.bytes_in, log.last_t_ns) == (8, 11)
    with pytest.raises(SSEProtocolError):
        log.feed(b"data: " + b"x" * 200 + b"\n\n", 12)  # refused, but it arrived
    assert (log.bytes_in, log.last_t_ns) == (8 + 208, 12)


# --- the twin against its definition ---

@needs_c
@settings(max_examples=600, deadline=None)
@given(stream=streams(), cuts=st.lists(st.integers(0, 400), max_size=12),
       limit=st.sampled_from([1 << 20, 40, 12]), sentinel=st.sampled_from([None, b"[DONE]", b""]),
       dialect=st.sampled_from([None, *BUILT_IN.values()]), keep_output=st.booleans(),
       output_kinds=st.integers(1, 7), done_event=st.sampled_from([None, "done", "error"]))
def test_compiled_twin_matches_the_definition(stream, cuts, limit, sentinel, dialect, keep_output, output_kinds,
                                              done_event):
    kw = {"max_event_bytes": limit, "truth_key": KEY, "sentinel": sentinel,
          "program": program(dialect) if dialect else None, "keep_output": keep_output,
          "output_kinds": output_kinds, "done_event": done_event}
    compiled, defined = CEventLog(**kw), PyEventLog(**kw)
    assert observe(compiled, stream, cuts) == observe(defined, stream, cuts)
    assert (compiled.bytes_in, compiled.last_t_ns) == (defined.bytes_in, defined.last_t_ns)


@needs_c
@settings(max_examples=300, deadline=None)
@given(data=st.binary(max_size=64))
def test_compiled_twin_judges_utf8_as_python_does(data):
    body = b"data: " + data.replace(b"\n", b"").replace(b"\r", b"") + b"\n\n"
    assert run(CEventLog, body) == run(PyEventLog, body)


@needs_c
@pytest.mark.parametrize("seq,valid", [
    (b"\xc2\x80", True), (b"\xc1\xbf", False), (b"\xe0\xa0\x80", True), (b"\xe0\x9f\xbf", False),
    (b"\xed\x9f\xbf", True), (b"\xed\xa0\x80", False), (b"\xef\xbf\xbf", True),
    (b"\xf0\x90\x80\x80", True), (b"\xf0\x8f\xbf\xbf", False), (b"\xf4\x8f\xbf\xbf", True),
    (b"\xf4\x90\x80\x80", False), (b"\xf5\x80\x80\x80", False), (b"\xe2\x82", False),
    (b"\xe2\x82\x41", False), (b"\x80", False), (b"abcdefgh\xc3\xa9", True),
])
def test_compiled_twin_counts_each_utf8_edge_as_python_does(seq, valid):
    for body in (seq, b"x" * 13 + seq, seq + b"y"):
        assert run(CEventLog, b"data: " + body + b"\n\n")[4] == (not valid)
        assert run(PyEventLog, b"data: " + body + b"\n\n")[4] == (not valid)


@needs_c
def test_compiled_twin_matches_at_every_split_of_a_mixed_stream():
    stream = (b"\xef\xbb\xbf: hello\r\nid: 1\r\nevent: tick\ndata: a\r\ndata: \xc3\xa9\r\r"
              b'retry: 300\ndata: {"t_send_ns":1234}\n\ndata: [DONE]\n\nfield: x\ndata\n\n')
    kw = {"truth_key": KEY, "sentinel": b"[DONE]"}
    for i in range(len(stream) + 1):
        assert run(CEventLog, stream, [i], **kw) == run(PyEventLog, stream, [i], **kw), i
    assert run(CEventLog, stream, range(len(stream)), **kw) == run(PyEventLog, stream, range(len(stream)), **kw)


def test_event_log_is_the_compiled_one_where_built():
    assert sse.EventLog is (CEventLog or PyEventLog)
    assert sys.modules.get("sseload._sse") is None or CEventLog is not None


@pytest.mark.parametrize("cls", BOTH)
def test_the_limit_counts_the_data_not_the_field_names_nor_line_ends(cls):
    limit = 1 << 20
    fits = b"data: " + b"x" * limit + b"\n\n"  # a 1 MiB data line: a common test fixture
    two_lines = b"data: " + b"x" * (limit // 2) + b"\ndata: " + b"y" * (limit // 2 - 1) + b"\n\n"
    for body in (fits, two_lines):
        for cuts in ([], [3], [6], [len(body) - 2], list(range(0, 12))):
            assert run(cls, body, cuts, max_event_bytes=limit).error is None, cuts
    over = b"data: " + b"x" * (limit + 1) + b"\n\n"
    for cuts in ([], [3], [6], [len(over) - 2]):
        assert "max_event_bytes=1048576" in str(run(cls, over, cuts, max_event_bytes=limit).error), cuts
    assert cls().max_event_bytes == 16 << 20  # the default: generous, and still a bound


@pytest.mark.parametrize("cls", BOTH)
def test_the_log_keeps_the_id_in_effect_at_the_first_event_where_a_feed_resumed(cls):
    stream = b"retry: 100\n\nid: 41\ndata: a\n\nid: 42\ndata: b\n\n"
    seen = run(cls, stream)
    assert (seen.error, seen.first_event_id) == (None, "41")
    assert run(cls, b"data: no id\n\nid: 7\ndata: x\n\n").first_event_id == ""
    assert run(cls, b"id: 3\n").first_event_id == ""  # no event yet


@pytest.mark.parametrize("cls", BOTH)
def test_openai_mode_hands_back_the_chunks_that_end_a_choice_or_report_an_error(cls):
    stream = (b'data: {"choices":[{"delta":{"role":"assistant","content":""},"finish_reason":null}]}\n\n'
              b'data: {"choices":[{"delta":{"reasoning_content":"hmm"}}]}\n\n'
              b'data: {"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}\n\n'
              b'data: {"choices":[{"delta":{},"finish_reason":"length"}]}\n\n'
              b'data: {"error":{"message":"overloaded"}}\n\n'
              b'data: [DONE]\n\n')
    seen = run(cls, stream, sentinel=b"[DONE]", program=program(OPENAI), keep_output=True)
    assert [e.data[:30] for e in seen.notable] == ['{"choices":[{"delta":{"role":"', '{"choices":[{"delta":{},"finis',
                                                   '{"error":{"message":"overloade', "[DONE]"]  # the first: its id
    assert [v % 8 for v in seen.llm] == [0, 2, 1, 0, 0, 0]  # reasoning, then the answer
    assert seen.outputs == ['{"choices":[{"delta":{"reasoning_content":"hmm"}}]}',
                            '{"choices":[{"delta":{"content":"Hi"},"finish_reason":null}]}']
    content_only = run(cls, stream, sentinel=b"[DONE]", program=program(OPENAI), output_kinds=OUTPUT_KINDS["content"])
    assert [v % 8 for v in content_only.llm] == [0, 0, 1, 0, 0, 0]  # reasoning does not count: TTFT is the answer's
    assert content_only.outputs == []  # nothing kept unless asked


# --- spilling: the recorder takes a long stream's events while it is open ---

@pytest.mark.parametrize("cls", BOTH)
@pytest.mark.parametrize("dialect", [None, OPENAI], ids=["plain", "openai"])
@settings(max_examples=60, deadline=None)
@given(reads=st.lists(st.integers(0, 5), min_size=1, max_size=30), spills=st.sets(st.integers(0, 30)))
def test_events_spilled_and_held_are_the_events_of_a_log_that_never_spilled(cls, dialect, reads, spills):
    kw = {"truth_key": KEY, "program": program(dialect) if dialect else None}
    whole, spilling = cls(**kw), cls(**kw)
    taken: list[tuple[bytes, ...]] = []
    for t, events in enumerate(reads, start=1):
        chunk = b"".join(b'id: %d\ndata: {"t_send_ns":%d,"choices":[{"delta":{"content":"w"}}],"usage":'
                         b'{"completion_tokens":%d}}\n\n' % (t, t * 10 + k, t * 10 + k) for k in range(events))
        assert whole.feed(chunk, t) == spilling.feed(chunk, t)  # (the first event is acted on once)
        if t in spills:
            taken.append(spilling.spill())
        n = len(whole)
        assert (len(spilling), spilling.held + spilling.spilled) == (n, n)
        assert (spilling.first_t_ns, spilling.last_event_t_ns) == (whole.first_t_ns, whole.last_event_t_ns)
        assert spilling.first_event_id == whole.first_event_id
        for start in (0, spilling.spilled - 1, spilling.spilled, n - 1):  # times(k): those held from event k
            assert ints(spilling.times(start)) == ints(whole.times(max(start, spilling.spilled)))
            assert ints(spilling.llm(start)) == ints(whole.llm(max(start, spilling.spilled)))
    taken.append((*spilling.arrays(), spilling.llm()))
    for k in range(4):
        assert ints(b"".join(part[k] for part in taken)) == ints((*whole.arrays(), whole.llm())[k])
    assert spilling.prompt_tokens == whole.prompt_tokens


@pytest.mark.parametrize("cls", BOTH)
def test_a_log_that_spilled_everything_holds_nothing_and_keeps_its_first_and_last_times(cls):
    log = cls()
    assert (log.first_t_ns, log.last_event_t_ns, log.held, log.spilled) == (-1, -1, 0, 0)
    log.feed(b"data: a\n\ndata: b\n\n", 5)
    log.feed(b"data: c\n\n", 9)
    t_ns, size, _, llm = log.spill()
    assert (ints(t_ns), ints(size), llm) == ([5, 5, 9], [1, 1, 1], b"")
    assert log.spill() == (b"", b"", b"", b"")  # nothing held: nothing taken, nothing changed
    assert (len(log), log.held, log.spilled, log.first_t_ns, log.last_event_t_ns) == (3, 0, 3, 5, 9)
    assert log.arrays() == (b"", b"", b"") and log.times(0) == b""
    log.feed(b"data: d\n\n", 12)
    assert (len(log), ints(log.times(0)), log.first_t_ns, log.last_event_t_ns) == (4, [12], 5, 12)
