"""The response state machine, fed bytes: head, framing, completion rule and classification.

No process and no socket: each case is the bytes a server (or gateway) would send, split at
every boundary where that matters, and the outcome the gateway contract gives them.
"""

import gzip
import json
import ssl

import httptools
import pytest

from sseload.protocol.classify import DeadlineExceeded, classify_error
from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import Response, StreamRules
from sseload.protocol.sse import EventLog, PyEventLog
from sseload.protocol.state import State

pytestmark = pytest.mark.unit

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n"
EVENTS = b"data: one\n\ndata: two\n\n"


def chunked(payload: bytes, pieces: int = 2) -> bytes:
    step = max(1, len(payload) // pieces)
    out = b""
    for i in range(0, len(payload), step):
        part = payload[i:i + step]
        out += f"{len(part):x}\r\n".encode() + part + b"\r\n"
    return out + b"0\r\n\r\n"


DEFAULT_RULES = StreamRules()


def run(wire: bytes, rules: StreamRules = DEFAULT_RULES, eof: bool = False, split: int | None = None,
        log_class=EventLog, duration_ns: int = 1_000_000) -> tuple[Response, tuple]:
    """Feed ``wire`` in one read (or two, split at ``split``); the verdict after ``duration_ns``."""
    resp = Response(rules, log_class, 0)
    reads = [wire] if split is None else [wire[:split], wire[split:]]
    t = 0
    for data in reads:
        t += 1000
        if data and resp.feed(t, data):
            break
    else:
        if eof:
            resp.feed_eof(t + 1000)
    return resp, resp.verdict(duration_ns)


def error_answer(status: int, code: str, extra_headers: str = "") -> bytes:
    body = json.dumps({"error_code": code, "error_msg": "x", "request_id": "0123abcd"}).encode()
    return (f"HTTP/1.1 {status} X\r\nContent-Type: application/json\r\nContent-Length: {len(body)}\r\n"
            f"{extra_headers}\r\n").encode() + body


@pytest.mark.parametrize("log_class", [EventLog, PyEventLog])
def test_a_chunked_stream_ends_ok_at_its_last_chunk_and_may_be_reused(log_class):
    wire = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)
    for split in range(1, len(wire)):
        resp, (outcome, error, code) = run(wire, split=split, log_class=log_class)
        assert (outcome, error, code) == (Outcome.OK, "", ""), split
        assert len(resp.log) == 2 and resp.bytes_received() == len(wire)
        assert resp.keep_alive(outcome)


def test_a_content_length_body_and_a_close_delimited_body_end_ok():
    resp, verdict = run(SSE_HEAD + f"Content-Length: {len(EVENTS)}\r\n\r\n".encode() + EVENTS)
    assert verdict[0] is Outcome.OK and len(resp.log) == 2
    resp, verdict = run(SSE_HEAD + b"\r\n" + EVENTS, eof=True)
    assert verdict[0] is Outcome.OK and len(resp.log) == 2 and resp.state is State.MUST_CLOSE
    assert not resp.keep_alive(Outcome.OK)  # ended by the close: nothing to reuse


def test_a_body_cut_before_its_end_is_a_reset_unless_it_came_at_the_limit():
    wire = SSE_HEAD + b"Content-Length: 1000\r\n\r\n" + EVENTS
    rules = StreamRules(limit_s=2.0)
    assert run(wire, rules, eof=True)[1][0] is Outcome.RESET
    outcome, error, _ = run(wire, rules, eof=True, duration_ns=int(1.95e9))[1]
    assert outcome is Outcome.CUTOFF and "at the gateway limit of 2 s" in error


def test_the_completion_rule_decides_ok_or_incomplete():
    done = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS + b"data: [DONE]\n\n")
    named = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS + b"event: done\ndata: {}\n\n")
    plain = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)
    assert run(done, StreamRules(completion="done"))[1][0] is Outcome.OK
    assert run(named, StreamRules(completion="event:done"))[1][0] is Outcome.OK
    outcome, error, _ = run(plain, StreamRules(completion="event:done"))[1]
    assert outcome is Outcome.INCOMPLETE and "without its completion (event:done)" in error


def test_the_completion_event_ends_reading_before_the_body_ends():
    resp = Response(StreamRules(completion="done"), EventLog, 0)
    assert not resp.feed(1, SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)[:-5])
    # [DONE] completes the stream (its end is that read) but its body is read on, briefly, for reuse
    assert not resp.feed(2, chunked(b"data: [DONE]\n\n", 1)[:-5]) and resp.drainable()
    assert resp.feed(3, b"0\r\n\r\n") and resp.end_ns() == 2 and resp.keep_alive(Outcome.OK)
    assert resp.verdict(10)[0] is Outcome.OK


def test_nothing_after_completion_changes_the_verdict():
    resp = Response(StreamRules(completion="done"), EventLog, 0)
    resp.feed(1, SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"data: [DONE]\n\n")[:-5])
    resp.feed(2, chunked(b"event: error\ndata: late\n\n")[:-5])
    assert resp.verdict(5)[0] is Outcome.OK and resp.end_ns() == 1


def test_a_body_ending_at_the_close_or_an_http_1_0_answer_is_not_kept_alive():
    resp, verdict = run(SSE_HEAD + b"\r\n" + EVENTS, eof=True)
    assert verdict[0] is Outcome.OK and not resp.keep_alive(Outcome.OK)
    old = b"HTTP/1.0 200 OK\r\nContent-Type: text/event-stream\r\nContent-Length: %d\r\n\r\n" % len(EVENTS)
    resp, verdict = run(old + EVENTS)
    assert verdict[0] is Outcome.OK and not resp.keep_alive(Outcome.OK)


def test_101_switching_protocols_and_a_flood_of_1xx_heads_are_protocol_errors_not_crashes():
    resp, (outcome, error, _) = run(b"HTTP/1.1 101 Switching Protocols\r\nUpgrade: websocket\r\n"
                                    b"Connection: Upgrade\r\n\r\n")
    assert outcome is Outcome.PROTOCOL_ERROR and "switched protocols" in error
    resp, (outcome, error, _) = run(b"HTTP/1.1 100 Continue\r\n\r\n" * 5000)
    assert outcome is Outcome.PROTOCOL_ERROR and "head passed" in error


def test_event_error_is_recorded_and_the_stream_read_on():
    wire = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"event: error\ndata: model overloaded\n\n"
                                                                        + EVENTS)
    resp, (outcome, error, _) = run(wire)
    assert outcome is Outcome.EVENT_ERROR and "model overloaded" in error and len(resp.log) == 3


@pytest.mark.parametrize(("status", "code", "outcome"), [
    (504, "APIG.0201", Outcome.CUTOFF),
    (401, "APIG.0301", Outcome.AUTH_ERROR),
    (403, "APIG.0302", Outcome.AUTH_ERROR),
    (429, "APIG.0308", Outcome.THROTTLED),
    (413, "APIG.0201", Outcome.TOO_LARGE),
    (404, "APIG.0101", Outcome.HTTP_ERROR),
    (502, "APIG.0202", Outcome.HTTP_ERROR),
])
def test_gateway_answers_are_classified_by_status_and_error_code(status, code, outcome):
    resp, verdict = run(error_answer(status, code))
    assert verdict[0] is outcome and verdict[2] == code and resp.status == status
    assert verdict[1].startswith(f"HTTP {status}: ")
    assert not resp.keep_alive(verdict[0])


def test_the_start_of_an_error_body_is_kept_and_reading_stops_there():
    body = b"x" * 5000
    wire = b"HTTP/1.1 500 Oops\r\nContent-Length: 5000\r\n\r\n" + body
    resp = Response(StreamRules(), EventLog, 0)
    assert resp.feed(1, wire)
    outcome, error, _ = resp.verdict(10)
    assert outcome is Outcome.HTTP_ERROR and len(error) == len("HTTP 500: ") + 1024


def test_not_an_event_stream_is_a_protocol_error():
    resp, (outcome, error, _) = run(b"HTTP/1.1 200 OK\r\nContent-Type: application/json\r\nContent-Length: 2\r\n\r\n{}")
    assert outcome is Outcome.PROTOCOL_ERROR and "Content-Type is application/json" in error


def test_malformed_http_and_broken_chunking_are_protocol_errors():
    assert run(b"HTTP/1.1 abc\r\n\r\n")[1][0] is Outcome.PROTOCOL_ERROR
    outcome, error, _ = run(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\nzz\r\ndata: x\n\n\r\n")[1]
    assert outcome is Outcome.PROTOCOL_ERROR and "chunk-size" in error


def test_an_event_over_the_limit_is_a_protocol_error():
    wire = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(b"data: " + b"x" * 5000 + b"\n\n")
    outcome, error, _ = run(wire, StreamRules(max_event_bytes=1000))[1]
    assert outcome is Outcome.PROTOCOL_ERROR


def test_a_gzip_body_goes_through_httptools_and_zlib():
    packed = gzip.compress(EVENTS)
    wire = SSE_HEAD + b"Content-Encoding: gzip\r\n" + f"Content-Length: {len(packed)}\r\n\r\n".encode() + packed
    resp, verdict = run(wire, split=len(wire) - 7)
    assert verdict[0] is Outcome.OK and len(resp.log) == 2


def test_nothing_before_the_close_is_a_reset_before_a_response():
    resp = Response(StreamRules(), EventLog, 0)
    resp.feed_eof(5)
    outcome, error, _ = resp.verdict(5)
    assert outcome is Outcome.RESET and error.startswith("connection closed before a response: the server closed")


def test_times_come_from_the_reads():
    resp = Response(StreamRules(), EventLog, 100)
    resp.feed(2_000, SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n")
    resp.feed(3_000, chunked(EVENTS)[:-5])
    assert resp.t_headers_ns == 2_000 and resp.log.first_t_ns == 3_000 and resp.last_read_ns() == 3_000


def test_the_body_log_is_handed_over_once_the_head_is_read():
    seen = []
    resp = Response(StreamRules(), EventLog, 0, on_body_log=seen.append)
    resp.feed(1, SSE_HEAD + b"Transfer-Encoding: chunked")
    assert seen == []
    resp.feed(2, b"\r\n\r\n")
    assert seen == [resp.log]


@pytest.mark.parametrize(("exc", "phase", "outcome", "text"), [
    (DeadlineExceeded(), "read", Outcome.TIMEOUT, "harness deadline of 45 s"),
    (TimeoutError(), "connect", Outcome.CONNECT_ERROR, "connect to h:1 timed out after 10 s"),
    (TimeoutError(), "read", Outcome.TIMEOUT, "no bytes for 30 s"),
    (ConnectionRefusedError(), "connect", Outcome.CONNECT_ERROR, "connection refused by h:1"),
    (ConnectionResetError(), "read", Outcome.RESET, "connection reset during read"),
    (BrokenPipeError(), "send", Outcome.RESET, "connection broken during send"),
    (ssl.SSLError(1, "bad record"), "connect", Outcome.CONNECT_ERROR, "TLS error"),
    (OSError(113, "No route to host"), "connect", Outcome.CONNECT_ERROR, "connect failed: No route to host"),
    (httptools.HttpParserError("bad"), "read", Outcome.PROTOCOL_ERROR, "malformed HTTP response"),
    (KeyError("oops"), "read", Outcome.HARNESS_ERROR, "KeyError"),
])
def test_exceptions_are_classified_by_kind_and_phase(exc, phase, outcome, text):
    got, error = classify_error(exc, phase, StreamRules(), "h:1")
    assert got is outcome and text in error


def test_a_released_response_is_freed_without_the_cyclic_collector():
    """Load runs with the cyclic collector made rare: a stream's response, its parser and its log
    must go as soon as the stream is recorded, not pile up until a collection."""
    import gc

    gc.collect()  # other tests' responses, unreleased
    gc.disable()
    try:
        resp, _ = run(SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS))
        resp.release()
        del resp
        assert not [o for o in gc.get_objects() if type(o) is Response]
    finally:
        gc.enable()


def test_100_continue_before_the_real_response_is_skipped():
    wire = (b"HTTP/1.1 100 Continue\r\n\r\n" + SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS))
    for split in range(1, len(wire), 7):
        resp, verdict = run(wire, split=split)
        assert verdict[0] is Outcome.OK and resp.status == 200 and len(resp.log) == 2, split


def test_an_endless_head_is_refused_at_the_head_limit():
    resp = Response(StreamRules(max_head_bytes=4096), EventLog, 0)
    assert not resp.feed(1, b"HTTP/1.1 200 OK\r\nX-Junk: ")
    over = False
    for i in range(100):
        over = resp.feed(2 + i, b"a" * 1000)
        if over:
            break
    assert over and i < 10
    outcome, error, _ = resp.verdict(10)
    assert outcome is Outcome.PROTOCOL_ERROR and "head passed 4096 bytes without its end" in error


def test_a_head_that_never_completes_times_out_from_the_request_start():
    resp = Response(StreamRules(read_timeout_s=30), EventLog, 1_000)
    resp.feed(5_000, b"HTTP/1.1 200 OK\r\nX-Slow: a")
    assert resp.idle_since_ns() == 1_000  # bytes dripping in do not hold the timeout off
    resp.timed_out(31_000_000_000)
    outcome, error, _ = resp.verdict(resp.end_ns() - 1_000)
    assert outcome is Outcome.TIMEOUT and "no complete response head within 30 s" in error
    assert resp.end_ns() == 31_000_000_000  # the stream lasted as long as it waited


def test_a_timeout_mid_stream_lasts_until_it_fired():
    resp = Response(StreamRules(read_timeout_s=2), EventLog, 0)
    resp.feed(1_000, SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)[:-5])
    assert resp.idle_since_ns() == 1_000
    resp.timed_out(2_000_001_000)
    assert resp.verdict(resp.end_ns())[0] is Outcome.TIMEOUT and resp.end_ns() == 2_000_001_000


@pytest.mark.parametrize("status", [500, 503])
def test_a_5xx_with_a_cutoff_code_well_before_the_limit_is_an_http_error(status):
    wire = error_answer(status, "APIG.0201")
    assert run(wire, duration_ns=int(0.2e9))[1][0] is Outcome.HTTP_ERROR
    assert run(wire, StreamRules(limit_s=2.0), duration_ns=int(1.96e9))[1][0] is Outcome.CUTOFF
    assert run(error_answer(status, "ModelArts.4503"), duration_ns=int(0.2e9))[1][0] is Outcome.HTTP_ERROR


def test_a_reset_at_the_limit_after_a_quiet_spell_is_a_cutoff_lasting_to_the_reset():
    resp = Response(StreamRules(limit_s=2.0), EventLog, 0)
    resp.feed(int(0.1e9), SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)[:-5])
    resp.closed(int(1.99e9))  # the RST, after 1.9 s of silence
    assert resp.end_ns() == int(1.99e9)
    outcome, error, _ = resp.verdict(resp.end_ns())
    assert outcome is Outcome.CUTOFF and "1.99 s" in error


def test_auto_completion_takes_a_clean_end_or_done():
    plain = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS)
    done = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + chunked(EVENTS + b"data: [DONE]\n\n")[:-5]
    assert run(plain, StreamRules(completion="auto"))[1][0] is Outcome.OK
    resp, verdict = run(done, StreamRules(completion="auto"))
    assert verdict[0] is Outcome.OK and resp.drainable()  # the rest of the body may be read for reuse
    resp.feed(10_000, b"0\r\n\r\n")
    assert resp.state is State.DONE and resp.keep_alive(Outcome.OK)
    cut = SSE_HEAD + b"Content-Length: 500\r\n\r\n" + EVENTS
    assert run(cut, StreamRules(completion="auto"), eof=True)[1][0] is Outcome.RESET


@pytest.mark.parametrize(("first", "hint"), [
    (b"\x15\x03\x03\x00\x02\x02\x0a", "the server speaks TLS on this port: use https://"),
    (b"\x00\x00\x00\x04\x00\x00\x00\x00\x00", "HTTP/2 only"),
    (b"\x00\xffgarbage-garbage", "did not answer in HTTP/1.x"),
])
def test_a_server_that_does_not_speak_http_1_is_named(first, hint):
    resp = Response(StreamRules(), EventLog, 0)
    assert resp.feed(1, first)  # llhttp refuses the first byte that cannot start "HTTP/"
    outcome, error, _ = resp.verdict(3)
    assert outcome is Outcome.PROTOCOL_ERROR and error.startswith("malformed HTTP response: ") and hint in error, error


def test_a_close_inside_a_head_that_looks_like_http_is_a_reset():
    resp = Response(StreamRules(), EventLog, 0)
    assert not resp.feed(1, b"HTTP/1.1 200")
    resp.feed_eof(2)
    assert resp.verdict(3) == (Outcome.RESET, "connection closed before a whole response head", "")


@pytest.mark.parametrize("version", ["1.1", "1.0"])
def test_the_status_line_gives_the_responses_http_version(version):
    resp, _ = run(f"HTTP/{version} 200 OK\r\nContent-Type: text/event-stream\r\n\r\n".encode() + EVENTS, eof=True)
    assert resp.http_version == version


def test_a_response_cut_inside_its_head_has_no_http_version():
    resp, _ = run(SSE_HEAD, eof=True)  # the head's blank line never came
    assert resp.http_version == "" and resp.status == 0


@pytest.mark.parametrize("coding", ["GZIP", "Gzip", "x-gzip", " gzip "])
def test_a_content_coding_is_named_whatever_its_case(coding):
    packed = gzip.compress(EVENTS)
    wire = SSE_HEAD + f"Content-Encoding: {coding}\r\nContent-Length: {len(packed)}\r\n\r\n".encode() + packed
    resp, verdict = run(wire)
    assert verdict[0] is Outcome.OK and len(resp.log) == 2


@pytest.mark.parametrize("coding", ["br", "zstd", "compress", "gzip, br"])
def test_a_content_coding_sseload_cannot_decode_is_a_protocol_error_naming_it(coding):
    wire = SSE_HEAD + f"Content-Encoding: {coding}\r\nContent-Length: 4\r\n\r\n\x8b\x00\x01\x02".encode()
    resp, (outcome, error, _) = run(wire)
    assert outcome is Outcome.PROTOCOL_ERROR and f"Content-Encoding {coding}" in error


def test_a_transfer_coding_under_the_chunks_is_a_protocol_error_naming_it():
    packed = gzip.compress(EVENTS)
    wire = SSE_HEAD + b"Transfer-Encoding: gzip, chunked\r\n\r\n" + chunked(packed)
    resp, (outcome, error, _) = run(wire)
    assert outcome is Outcome.PROTOCOL_ERROR and "Transfer-Encoding gzip" in error
