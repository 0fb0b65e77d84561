"""The response's states and their one table (sseload.protocol.state): the table's own promises,
then the states a response walks through when fed the bytes of each kind of answer."""

import gzip
from collections import deque

import pytest

from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import Response, StreamRules
from sseload.protocol.sse import EventLog, PyEventLog
from sseload.protocol.state import TRANSITIONS, Got, State, next_state

pytestmark = pytest.mark.unit

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\n"
CHUNKED = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n"
READING = (State.HEAD, State.BODY, State.BODY_TO_CLOSE, State.ERROR_BODY)
RULES = StreamRules()


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n" % len(payload) + payload + b"\r\n"


def walk(reads, rules=RULES, eof=False, log_class=EventLog) -> tuple[Response, list[State]]:
    """The response fed ``reads`` (then the close, with ``eof``), and its state after each."""
    resp = Response(rules, log_class, 0)
    states = []
    for t, data in enumerate(reads, 1):
        resp.feed(t, data)
        states.append(resp.state)
    if eof:
        resp.feed_eof(len(reads) + 1)
        states.append(resp.state)
    return resp, states


# --- the table ---

def test_every_state_has_a_row_and_each_state_is_reached_from_head():
    assert set(TRANSITIONS) == set(State)
    seen, todo = {State.HEAD}, deque([State.HEAD])
    while todo:
        for after in TRANSITIONS[todo.popleft()].values():
            if after not in seen:
                seen.add(after)
                todo.append(after)
    assert seen == set(State)


def test_once_over_nothing_leads_back_to_reading():
    for state in State:
        if state.over:
            for got in Got:
                assert next_state(state, got, True).over, (state, got)


def test_a_failure_is_the_streams_only_while_it_is_still_being_read():
    """After the rule completed the stream, or once it is over, a failure only costs the connection."""
    for state in State:
        after = next_state(state, Got.FAILURE, True)
        assert (after is State.FAILED) == (state in READING or state is State.FAILED), state
        assert after.over


def test_only_the_bodys_end_makes_a_connection_reusable_and_only_where_the_head_keeps_it_alive():
    for state in State:
        for got in Got:
            if next_state(state, got, True) is State.DONE and state is not State.DONE:
                assert got is Got.BODY_END, (state, got)
            assert next_state(state, got, False) is not State.DONE or state is State.DONE


def test_the_over_states_are_done_must_close_and_failed():
    assert {s for s in State if s.over} == {State.DONE, State.MUST_CLOSE, State.FAILED}


# --- the walks, fed bytes ---

@pytest.mark.parametrize("log_class", [EventLog, PyEventLog])
def test_a_chunked_stream_completed_by_done_is_drained_to_its_end_and_reusable(log_class):
    resp, states = walk([CHUNKED[:20], CHUNKED[20:] + chunk(b"data: a\n\n"), chunk(b"data: [DONE]\n\n"),
                         b"0\r\n\r\n"], StreamRules(completion="done"), log_class=log_class)
    assert states == [State.HEAD, State.BODY, State.DRAINING, State.DONE]
    assert resp.verdict(10)[0] is Outcome.OK and resp.keep_alive(Outcome.OK) and resp.end_ns() == 3


def test_a_body_without_framing_ends_at_the_close_and_its_connection_goes():
    resp, states = walk([SSE_HEAD + b"\r\n", b"data: a\n\n"], eof=True)
    assert states == [State.BODY_TO_CLOSE, State.BODY_TO_CLOSE, State.MUST_CLOSE]
    assert resp.verdict(10)[0] is Outcome.OK and not resp.keep_alive(Outcome.OK)


def test_completion_in_a_body_without_framing_stops_reading_at_once():
    resp, states = walk([SSE_HEAD + b"\r\ndata: a\n\ndata: [DONE]\n\n"], StreamRules(completion="done"))
    assert states == [State.MUST_CLOSE] and resp.over() and not resp.drainable()
    assert resp.verdict(10)[0] is Outcome.OK


def test_a_framed_body_cut_by_the_close_stays_in_body_and_is_a_reset():
    resp, states = walk([CHUNKED + chunk(b"data: a\n\n")], eof=True)
    assert states == [State.BODY, State.BODY]
    assert resp.verdict(10)[:2] == (Outcome.RESET, "connection closed mid-stream")


def test_a_compressed_chunked_stream_is_drained_too():
    packed = gzip.compress(b"data: a\n\ndata: [DONE]\n\n")
    head = SSE_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n"
    resp, states = walk([head + chunk(packed), b"0\r\n\r\n"], StreamRules(completion="done"))
    assert states == [State.DRAINING, State.DONE] and resp.keep_alive(Outcome.OK)


def test_a_head_without_keep_alive_ends_in_must_close_not_done():
    for head in (SSE_HEAD + b"Connection: close\r\nContent-Length: 9\r\n\r\n",
                 b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: 9\r\n\r\n"):
        resp, states = walk([head + b"data: a\n\n"])
        assert states == [State.MUST_CLOSE] and resp.verdict(10)[0] is Outcome.OK
        assert not resp.keep_alive(Outcome.OK)


def test_an_error_answer_is_kept_to_its_end_or_to_its_first_kilobyte():
    small = b"HTTP/1.1 302 Found\r\nLocation: /there\r\nContent-Length: 2\r\n\r\n"
    resp, states = walk([small, b"ok"])
    assert states == [State.ERROR_BODY, State.DONE] and resp.keep_alive(Outcome.OK)  # a redirect may reuse it
    big = b"HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\n\r\n"
    resp, states = walk([big, b"x" * 1000, b"x" * 1000, b"x" * 1000])
    assert states == [State.ERROR_BODY, State.ERROR_BODY, State.MUST_CLOSE, State.MUST_CLOSE]
    assert len(resp.error_body) == 1024 and resp.verdict(10)[0] is Outcome.HTTP_ERROR


def test_a_1xx_head_leaves_the_response_in_head():
    resp, states = walk([b"HTTP/1.1 100 Continue\r\n\r\n", CHUNKED])
    assert states == [State.HEAD, State.BODY] and resp.status == 200


def test_an_event_error_is_read_on_and_a_later_failure_ends_the_stream_with_the_first():
    resp, states = walk([CHUNKED + chunk(b"event: error\ndata: overloaded\n\n"), b"zz\r\n"])
    assert states == [State.BODY, State.FAILED]
    outcome, error, _ = resp.verdict(10)
    assert outcome is Outcome.EVENT_ERROR and "overloaded" in error


def test_a_failure_while_draining_keeps_the_ok_and_closes_the_connection():
    resp, states = walk([CHUNKED + chunk(b"data: [DONE]\n\n")], StreamRules(completion="done"))
    assert states == [State.DRAINING]
    resp.fail_on(ConnectionResetError(), "read", "h")
    assert resp.state is State.MUST_CLOSE and resp.outcome is None
    assert resp.verdict(10)[0] is Outcome.OK and not resp.keep_alive(Outcome.OK)


def test_a_failure_before_the_body_ends_is_the_outcome():
    resp, states = walk([CHUNKED + chunk(b"data: a\n\n")], StreamRules(completion="done"))
    resp.timed_out(5)
    assert (resp.state, resp.verdict(10)[0]) == (State.FAILED, Outcome.TIMEOUT)
