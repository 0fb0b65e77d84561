"""The client against a scripted server: however the head and the body are framed and split, the same record.

The response head goes to httptools and a framed SSE body straight to the event log
(sseload.transport.client), so the place where the head ends, the body's framing and the reads it comes
in are what these tests vary.
"""

from __future__ import annotations

import zlib

import gevent
import pytest
from gevent.server import StreamServer

from sseload.auth.schemes import Authenticator
from sseload.record.records import EventBuffer
from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules
from sseload.transport.reactor import reactor

SSE_HEAD = b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n"
EVENTS = [b'data: {"t_send_ns":%d,"seq":%d}\n\n' % (1_000 + i, i) for i in range(5)]
DONE = b"event: done\ndata: {}\n\n"


def chunk(payload: bytes) -> bytes:
    return b"%x\r\n%s\r\n" % (len(payload), payload)


def serve_and_stream(pieces: list[bytes], completion: str = "event:done", gap_s: float = 0.01,
                     framed_by_log: bool = False, read_timeout_s: float = 5):
    """Answer one request with ``pieces`` (a read each, as far as the network keeps them apart), then close."""

    def handle(sock, _addr):
        sock.recv(65536)
        for piece in pieces:
            sock.sendall(piece)
            gevent.sleep(gap_s)
        sock.close()

    server = StreamServer(("127.0.0.1", 0), handle)
    server.start()
    try:
        url = f"http://127.0.0.1:{server.server_port}/v1/stream"
        conn = SSEConnection(Endpoint.resolve(url), StreamRules(completion=completion, read_timeout_s=read_timeout_s,
                                                                deadline_s=10), Authenticator())
        if framed_by_log:  # the body must reach the log without httptools' per-chunk callback
            conn.on_body = lambda body: 1 / 0
        events = EventBuffer()
        record = conn.stream(PreparedRequest.build("POST", url, {}, b"{}"), events)
        conn.close()
    finally:
        server.stop()
    return record, events


def check_ok(record, events, n=None):
    n = len(EVENTS) if n is None else n
    assert (record.outcome, record.error) == ("ok", "")
    assert record.events == len(events) == n
    assert list(events.server_ns)[:len(EVENTS)] == [1_000 + i for i in range(min(n, len(EVENTS)))]
    assert all(b >= a for a, b in zip(events.t_ns, events.t_ns[1:], strict=False))


def chunked_response() -> bytes:
    return SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(map(chunk, EVENTS + [DONE])) + b"0\r\n\r\n"


@pytest.mark.parametrize("split", [len(SSE_HEAD) + 27, len(SSE_HEAD) + 28, len(SSE_HEAD) + 29, len(SSE_HEAD) + 30,
                                   len(SSE_HEAD) + 31, len(SSE_HEAD) + 40, 5])
def test_a_chunked_stream_is_whole_wherever_the_head_ends_in_the_reads(split):
    response = chunked_response()
    record, events = serve_and_stream([response[:split], response[split:]], framed_by_log=True)
    check_ok(record, events, len(EVENTS) + 1)
    assert record.response_bytes == len(response)


def test_a_chunked_stream_in_one_read_or_a_byte_a_read():
    response = chunked_response()
    check_ok(*serve_and_stream([response], framed_by_log=True), len(EVENTS) + 1)
    record, events = serve_and_stream([response[i:i + 1] for i in range(len(response))], gap_s=0.0005,
                                      framed_by_log=True)
    check_ok(record, events, len(EVENTS) + 1)


def test_a_content_length_body_ends_at_its_length():
    body = b"".join(EVENTS)
    response = SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    record, events = serve_and_stream([response[:60], response[60:]], completion="close", framed_by_log=True)
    check_ok(record, events)


def test_a_body_without_framing_ends_with_the_connection():
    response = SSE_HEAD + b"\r\n" + b"".join(EVENTS)
    check_ok(*serve_and_stream([response[:70], response[70:]], completion="close"))
    record, events = serve_and_stream([response], completion="event:done")
    assert record.outcome == "incomplete" and len(events) == len(EVENTS)


def test_a_chunked_body_cut_before_its_last_chunk_is_a_reset_with_its_events():
    response = chunked_response()
    cut = response.index(b"0\r\n\r\n")
    record, events = serve_and_stream([response[:cut]], completion="close")
    assert record.outcome == "reset" and len(events) == len(EVENTS) + 1


def test_broken_chunk_framing_is_a_protocol_error_with_the_events_before_it():
    good = SSE_HEAD + b"Transfer-Encoding: chunked\r\n\r\n" + b"".join(map(chunk, EVENTS[:2]))
    record, events = serve_and_stream([good, b"zz\r\n" + EVENTS[2] + b"\r\n"])
    assert record.outcome == "protocol_error"
    assert "malformed chunked body: a bad chunk-size line" in record.error
    assert len(events) == 2 == record.events


def test_a_compressed_body_still_goes_through_httptools():
    gz = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    body = gz.compress(b"".join(EVENTS + [DONE])) + gz.flush()
    response = SSE_HEAD + b"Content-Encoding: gzip\r\nTransfer-Encoding: chunked\r\n\r\n" + chunk(body) + b"0\r\n\r\n"
    check_ok(*serve_and_stream([response[:80], response[80:]]), len(EVENTS) + 1)


def test_a_compressed_body_without_framing_ends_with_the_connection():
    """gzip, neither a length nor chunks: the close ends the body (RFC 9112 section 6.3), so `close` is ok."""
    gz = zlib.compressobj(wbits=16 + zlib.MAX_WBITS)
    body = gz.compress(b"".join(EVENTS)) + gz.flush()
    response = SSE_HEAD + b"Content-Encoding: gzip\r\n\r\n" + body
    check_ok(*serve_and_stream([response[:80], response[80:]], completion="close"))
    record, events = serve_and_stream([response], completion="event:done")  # the close came, not the event
    assert record.outcome == "incomplete" and len(events) == len(EVENTS)


def test_an_error_answer_keeps_its_body_and_status():
    text = b'{"error_code":"APIG.0201","error_msg":"Backend timeout"}'
    response = (b"HTTP/1.1 504 Gateway Timeout\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n%s"
                % (len(text), text))
    record, events = serve_and_stream([response[:50], response[50:]])
    assert record.status == 504 and record.error_code == "APIG.0201" and len(events) == 0



# --- the native reader feeding the body's log itself (reactor.route_body) ---

@pytest.fixture(params=["routed", "on_read"])
def routing(request, monkeypatch):
    """Both ways a read reaches the log; yields the reads on_read saw (data of each)."""
    io = reactor()
    if not hasattr(io, "route"):
        pytest.skip("the native reader was not built: every read goes through on_read")
    if request.param == "routed" and not io.route:
        pytest.skip("the compiled event log was not built")
    monkeypatch.setattr(io, "route", request.param == "routed")
    seen = []
    on_read = SSEConnection.on_read

    def spy(self, t_ns, data, err):
        seen.append(data)
        return on_read(self, t_ns, data, err)

    monkeypatch.setattr(SSEConnection, "on_read", spy)
    yield request.param, seen


@pytest.mark.parametrize("framing", ["chunked", "length", "close"])
def test_routed_or_not_the_same_record_and_every_byte_counted(routing, framing):
    mode, seen = routing
    body = b"".join(EVENTS + [DONE])
    if framing == "chunked":
        response = chunked_response()
    elif framing == "length":
        response = SSE_HEAD + b"Content-Length: %d\r\n\r\n" % len(body) + body
    else:
        response = SSE_HEAD + b"\r\n" + body
    head_end = response.index(b"\r\n\r\n") + 4
    pieces = [response[:head_end + 5]] + [response[i:i + 40] for i in range(head_end + 5, len(response), 40)]
    record, events = serve_and_stream(pieces, completion="close" if framing == "close" else "event:done")
    check_ok(record, events, len(EVENTS) + 1)
    assert record.response_bytes == len(response)
    body_only = [data for data in seen if data and not data.startswith(b"HTTP/1.1")]
    if mode == "routed":  # Python saw the head's read and the EOF, no read of the body alone
        assert body_only == []
    else:
        assert body_only


def test_a_routed_stream_longer_than_the_read_timeout_is_not_timed_out_while_events_flow(routing):
    """The watchdog asks the log when the last read came: routed reads never touch the connection."""
    events_every_s, timeout_s = 0.1, 0.45
    pieces = [chunked_response().split(b"\r\n\r\n", 1)[0] + b"\r\n\r\n"]
    pieces += [chunk(ev) for ev in EVENTS * 3] + [chunk(DONE), b"0\r\n\r\n"]
    record, events = serve_and_stream(pieces, gap_s=events_every_s, read_timeout_s=timeout_s)
    check_ok(record, events, 3 * len(EVENTS) + 1)
    assert record.duration_ns > 3 * timeout_s * 1e9
