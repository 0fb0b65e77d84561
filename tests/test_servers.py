"""Self-tests of the independent test servers in tests/servers.py, spoken to with raw sockets and http.client."""

from __future__ import annotations

import contextlib
import http.client
import json
import re
import socket
import ssl
import threading
import time

import pytest

from tests import servers
from tests.servers import (
    HTTP2_SETTINGS_FRAME,
    TLS_ALERT_UNEXPECTED_MESSAGE,
    buffering_proxy,
    close_on_accept,
    continue_then_sse,
    early_413,
    endless_head,
    garbage,
    http2_only,
    huge_head,
    keepalive_closer,
    openai_mock_server,
    parse_request,
    reconnecting_feed,
    rst_after_quiet,
    silent,
    sse_starlette_server,
    status_server,
    tls_server,
)

GET = b"GET /stream HTTP/1.1\r\nHost: t\r\nAccept: text/event-stream\r\n\r\n"


@pytest.fixture(autouse=True)
def no_thread_left_behind():
    before = set(threading.enumerate())
    yield
    deadline = time.monotonic() + 2
    while (left := [t for t in set(threading.enumerate()) - before if t.is_alive()]) and time.monotonic() < deadline:
        time.sleep(0.01)
    assert not left, left


def connect(srv, timeout: float = 5.0) -> socket.socket:
    return socket.create_connection((srv.host, srv.port), timeout=timeout)


def read_all(sock: socket.socket, limit: int = 1 << 30) -> bytes:
    """Everything until the peer closes (or ``limit`` bytes)."""
    out = b""
    while len(out) < limit:
        data = sock.recv(65536)
        if not data:
            break
        out += data
    return out


def read_head(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, bytes]:
    while b"\r\n\r\n" not in buf:
        data = sock.recv(65536)
        assert data, f"closed before the head ended: {buf[:200]!r}"
        buf += data
    end = buf.index(b"\r\n\r\n") + 4
    return buf[:end], buf[end:]


def read_chunked(sock: socket.socket, buf: bytes = b"") -> tuple[bytes, bool]:
    """A chunked body; (body, ended) where ended is False if the peer closed before the closing chunk."""
    body = b""
    while True:
        while b"\r\n" not in buf:
            data = sock.recv(65536)
            if not data:
                return body, False
            buf += data
        line, _, buf = buf.partition(b"\r\n")
        size = int(line, 16)
        while len(buf) < size + 2:
            data = sock.recv(65536)
            if not data:
                return body + buf[:size], False
            buf += data
        if size == 0:
            return body, True
        body, buf = body + buf[:size], buf[size + 2:]


def data_lines(body: bytes) -> list[str]:
    return [line[6:] for line in body.decode().replace("\r\n", "\n").split("\n") if line.startswith("data: ")]


def concurrently(fn, n: int, timeout_s: float) -> None:
    """Run ``fn`` in ``n`` threads at once and wait for them all."""
    threads = [threading.Thread(target=fn) for _ in range(n)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout_s)


def wait_for(cond, timeout: float = 2.0) -> None:
    deadline = time.monotonic() + timeout
    while not cond():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.01)


# ---------------------------------------------------------------------------------------------------------------
# sse-starlette under uvicorn (a child process: about a second to start, so not `unit`)


@pytest.fixture(scope="module")
def starlette():
    with sse_starlette_server(events=4, gap_s=0.01) as srv:
        yield srv
    assert srv.proc.poll() is not None  # the child is gone


def test_sse_starlette_streams_get_and_post_and_keeps_the_connection(starlette):
    conn = http.client.HTTPConnection(starlette.host, starlette.port, timeout=5)
    conn.request("GET", "/stream", headers={"Accept": "text/event-stream"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    assert resp.getheader("transfer-encoding") == "chunked"
    body = resp.read()
    assert b"\r\n\r\n" in body and b": ping" not in body  # sse-starlette's CRLF line ends, no pings
    assert [json.loads(d) for d in data_lines(body)] == [{"i": k} for k in range(4)]
    conn.request("POST", "/stream?x=1", body=b'{"q": 1}', headers={"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and len(data_lines(resp.read())) == 4
    client_port = conn.sock.getsockname()[1]
    conn.close()
    mine = [r for r in starlette.received if r.raw]
    assert [r.method for r in mine[-2:]] == ["GET", "POST"]
    assert mine[-1].target == "/stream?x=1" and mine[-1].body == b'{"q": 1}'
    assert mine[-1].raw.startswith(b"POST /stream?x=1 HTTP/1.1\r\n") and mine[-1].raw.endswith(b'\r\n\r\n{"q": 1}')
    assert [e["client"][1] for e in starlette.log[-2:]] == [client_port] * 2  # one connection, reused


def test_sse_starlette_serves_ten_streams_at_once(starlette):
    before = starlette.connections
    results: list[int] = []

    def one() -> None:
        conn = http.client.HTTPConnection(starlette.host, starlette.port, timeout=10)
        conn.request("GET", "/stream")
        results.append(len(data_lines(conn.getresponse().read())))
        conn.close()

    concurrently(one, 10, 15)
    assert results == [4] * 10
    assert starlette.connections == before + 10


# ---------------------------------------------------------------------------------------------------------------
# OpenAI-style chat completions


def test_openai_mock_streams_chat_completion_chunks_then_done():
    with openai_mock_server(chunks=["Hel", "lo"]) as srv:
        assert srv.url.endswith("/v1/chat/completions")
        sock = connect(srv)
        req = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]}).encode()
        sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Type: application/json\r\n"
                     b"Content-Length: %d\r\n\r\n%s" % (len(req), req))
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n")
        assert b"Transfer-Encoding: chunked\r\n" in head and b"Content-Type: text/event-stream\r\n" in head
        body, ended = read_chunked(sock, rest)
        assert ended
        datas = data_lines(body)
        assert datas[-1] == "[DONE]"
        chunks = [json.loads(d) for d in datas[:-1]]
        assert all(c["object"] == "chat.completion.chunk" and c["id"] == chunks[0]["id"] for c in chunks)
        assert chunks[0]["choices"][0]["delta"] == {"role": "assistant"}
        assert [c["choices"][0]["delta"].get("content") for c in chunks[1:-1]] == ["Hel", "lo"]
        assert chunks[-1]["choices"][0]["finish_reason"] == "stop"
        # keep-alive: a second request on the same connection, non-streaming this time
        sock.sendall(b'POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 16\r\n\r\n{"stream":false}')
        head, rest = read_head(sock)
        length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
        while len(rest) < length:
            rest += sock.recv(65536)
        assert json.loads(rest)["choices"][0]["message"]["content"] == "Hello"
        sock.close()
        assert srv.connections == 1 and len(srv.requests) == 2
        assert srv.requests[0].endswith(req) and srv.received[1].json() == {"stream": False}


def test_openai_mock_404_elsewhere_and_ten_concurrent_streams():
    with openai_mock_server(chunks=3, gap_s=0.01) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.request("POST", "/v1/other", body=b"{}")
        resp = conn.getresponse()
        assert resp.status == 404 and b"not found" in resp.read()
        conn.close()
        results = []

        def one() -> None:
            c = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
            c.request("POST", "/v1/chat/completions", body=b'{"stream": true}')
            results.append(data_lines(c.getresponse().read()))
            c.close()

        concurrently(one, 10, 10)
        assert len(results) == 10 and all(len(r) == 6 and r[-1] == "[DONE]" for r in results)
        assert srv.connections == 11 and not srv.errors


# ---------------------------------------------------------------------------------------------------------------
# Hostile and odd servers


def test_endless_head_never_ends_the_head_and_is_bounded():
    with endless_head(max_bytes=300_000) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        got = read_all(sock)  # the server stops at max_bytes and closes
        sock.close()
        assert got.startswith(b"HTTP/1.1 200 OK\r\n") and b"\r\n\r\n" not in got
        assert 300_000 <= len(got) < 320_000 and got.count(b"\r\nX-Junk: aaaa") > 250
        wait_for(lambda: srv.sent)
        assert srv.sent == [len(got)] and srv.requests == [GET]


def test_endless_head_one_unending_line_and_stops_when_the_client_leaves():
    with endless_head(line_bytes=None) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        got = b""
        while len(got) < 1_000_000:
            got += sock.recv(65536)
        sock.close()
        assert got.split(b"\r\n")[-1].startswith(b"X-Junk: aaaa") and got.count(b"\r\n") == 2
        wait_for(lambda: srv.sent)  # the handler ended by itself once the client was gone
        assert srv.sent[0] >= len(got)


def test_huge_head_then_a_normal_sse_body():
    with huge_head(200_000, events=2) as srv:
        sock = connect(srv)
        for _ in range(2):  # keep-alive
            sock.sendall(GET)
            head, rest = read_head(sock, b"")
            assert len(head) > 200_000 and re.search(rb"\r\nX-Huge: h{200000}\r\n", head)
            length = int(re.search(rb"Content-Length: (\d+)", head).group(1))
            while len(rest) < length:
                rest += sock.recv(65536)
            assert data_lines(rest) == ['{"i": 0}', '{"i": 1}']
        sock.close()
        assert srv.connections == 1 and srv.requests == [GET, GET]


def test_garbage_sends_random_non_http_bytes_then_closes():
    with garbage(1000, seed=1) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        got = read_all(sock)
        sock.close()
        assert got == srv.sent[0] and len(got) == 1000 and not got.startswith(b"HTTP")
        assert srv.requests == [GET]


def test_close_on_accept_closes_before_anything():
    with close_on_accept() as srv:
        for _ in range(3):
            sock = connect(srv)
            try:
                sock.sendall(GET)
                assert read_all(sock) == b""
            except (ConnectionResetError, BrokenPipeError):
                pass  # the request reached a closed socket: a reset is as good
            sock.close()
        wait_for(lambda: srv.connections == 3)
        assert srv.requests == []


def test_http2_only_answers_with_a_settings_frame_then_closes():
    with http2_only() as srv:
        sock = connect(srv)
        sock.sendall(GET)
        assert read_all(sock) == HTTP2_SETTINGS_FRAME
        sock.close()
        sock = connect(srv)  # an h2 client's preface gets the same
        sock.sendall(b"PRI * HTTP/2.0\r\n\r\nSM\r\n\r\n" + HTTP2_SETTINGS_FRAME)
        assert read_all(sock) == HTTP2_SETTINGS_FRAME
        sock.close()
        assert srv.requests[0] == GET and srv.received[1].method == "PRI"
    with http2_only(goaway=True) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        got = read_all(sock)
        sock.close()
        assert got.startswith(HTTP2_SETTINGS_FRAME) and got[HTTP2_SETTINGS_FRAME.__len__() + 3] == 7  # GOAWAY


def test_tls_server_streams_over_https_with_keepalive():
    with tls_server(events=3) as srv:
        assert srv.url.startswith("https://127.0.0.1:") and srv.ca_file.exists()
        conn = http.client.HTTPSConnection(srv.host, srv.port, timeout=5, context=srv.ssl_context())
        for _ in range(2):
            conn.request("GET", "/stream")
            resp = conn.getresponse()
            assert resp.status == 200 and data_lines(resp.read()) == [f'{{"i": {k}}}' for k in range(3)]
        conn.close()
        assert srv.connections == 1 and len(srv.requests) == 2 and srv.plain_requests == []
        with pytest.raises(ssl.SSLCertVerificationError):  # the CA is not trusted by default
            bad = http.client.HTTPSConnection(srv.host, srv.port, timeout=5, context=ssl.create_default_context())
            bad.request("GET", "/stream")
        bad.close()
        ca_file = srv.ca_file
    assert not ca_file.exists()


def test_tls_server_answers_plain_http_with_an_alert_or_a_close():
    for reply, expected in (("alert", TLS_ALERT_UNEXPECTED_MESSAGE), ("close", b"")):
        with tls_server(plain_reply=reply) as srv:
            sock = connect(srv)
            sock.sendall(GET)
            assert read_all(sock) == expected
            sock.close()
            assert srv.plain_requests == [GET] and srv.requests == []


def test_silent_accepts_records_and_never_answers():
    with silent() as srv:
        sock = connect(srv, timeout=0.3)
        sock.sendall(GET)
        with pytest.raises(TimeoutError):
            sock.recv(1)
        wait_for(lambda: srv.requests)
        assert srv.requests == [GET]
        sock.close()
    with silent(max_s=0.2) as srv:  # bounded: the server closes at max_s
        sock = connect(srv)
        t0 = time.monotonic()
        assert read_all(sock) == b""
        assert time.monotonic() - t0 > 0.15  # it waited (a sleep is never shorter); read_all bounds the wait
        sock.close()


def test_continue_then_sse():
    with continue_then_sse(events=2) as srv:
        sock = connect(srv)
        sock.sendall(b"POST /stream HTTP/1.1\r\nHost: t\r\nExpect: 100-continue\r\nContent-Length: 2\r\n\r\n")
        interim, rest = read_head(sock)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        sock.sendall(b"{}")
        head, rest = read_head(sock, rest)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"text/event-stream" in head
        body, ended = read_chunked(sock, rest)
        assert ended and data_lines(body) == ['{"i": 0}', '{"i": 1}']
        sock.sendall(GET)  # without Expect: the 100 comes all the same
        interim, rest = read_head(sock)
        assert interim == b"HTTP/1.1 100 Continue\r\n\r\n"
        head, rest = read_head(sock, rest)
        assert read_chunked(sock, rest)[1]
        sock.close()
        assert srv.requests[0].endswith(b"\r\n\r\n{}") and srv.requests[1] == GET and srv.connections == 1


def test_rst_after_quiet_resets_after_the_quiet():
    with rst_after_quiet(events=2, quiet_s=0.2) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        head, rest = read_head(sock)
        assert head.startswith(b"HTTP/1.1 200 OK\r\n") and b"chunked" in head
        t0 = time.monotonic()
        got = rest
        with pytest.raises(ConnectionResetError):
            while True:
                data = sock.recv(65536)
                assert data, "a FIN, not a reset"
                got += data
        assert time.monotonic() - t0 > 0.15
        assert data_lines(got) == ['{"i": 0}', '{"i": 1}'] and not got.endswith(b"0\r\n\r\n")
        sock.close()
        assert srv.requests == [GET]


def test_early_413_answers_before_the_body_and_closes():
    head = b"POST /stream HTTP/1.1\r\nHost: t\r\nContent-Length: 1000000\r\n\r\n"
    with early_413() as srv:
        sock = connect(srv)
        sock.sendall(head)  # the head only: the answer comes without the body
        got = read_all(sock)
        sock.close()
        status, _, body = got.partition(b"\r\n\r\n")
        assert status.startswith(b"HTTP/1.1 413 ") and b"Connection: close" in status
        err = json.loads(body)
        assert err["error_code"] == "APIG.0201" and err["error_msg"] == "Request entity too large."
        assert err["request_id"] == srv.request_ids[0] and srv.requests == [head]
    with early_413(linger_s=0.3) as srv:  # a lingering close: the answer survives a body sent at once
        sock = connect(srv)
        sock.sendall(head + b"x" * 100_000)
        got = read_all(sock)
        sock.close()
        assert got.startswith(b"HTTP/1.1 413 ") and b"APIG.0201" in got


def test_status_server_500_404_302():
    with status_server(500) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        ids = []
        for _ in range(2):
            conn.request("POST", "/stream", body=b"abc")
            resp = conn.getresponse()
            assert resp.status == 500
            err = json.loads(resp.read())
            assert err["error_code"] == "APIG.0201"
            ids.append(err["request_id"])
        conn.request("POST", "/stream", body=iter([b"ab", b"cd"]), encode_chunked=True)
        resp = conn.getresponse()
        assert resp.status == 500 and resp.read()
        conn.close()
        assert ids == srv.request_ids[:2] and ids[0] != ids[1] and srv.connections == 1
        assert parse_request(srv.requests[0]).body == b"abc"
        assert srv.requests[2].endswith(b"\r\n\r\n2\r\nab\r\n2\r\ncd\r\n0\r\n\r\n")  # as sent, chunked
        assert srv.received[2].body == parse_request(srv.requests[2]).body == b"abcd"
    with status_server(404, "no such route {request_id}", {"Content-Type": "text/plain"}) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.request("GET", "/x")
        resp = conn.getresponse()
        assert resp.status == 404 and resp.read().decode() == f"no such route {srv.request_ids[0]}"
        assert resp.getheader("content-type") == "text/plain"
        conn.close()
    with status_server(302, b"", {"Location": "/elsewhere"}) as srv:
        conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
        conn.request("GET", "/stream")
        resp = conn.getresponse()
        assert resp.status == 302 and resp.getheader("location") == "/elsewhere" and resp.read() == b""
        conn.close()


def test_keepalive_closer_drops_the_idle_connection():
    with keepalive_closer(events=2, idle_close_s=0.15) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        head, rest = read_head(sock)
        assert b"Connection: keep-alive" in head and b"Content-Length" in head
        t0 = time.monotonic()
        rest += read_all(sock)  # the body, then the server's close
        assert time.monotonic() - t0 > 0.1 and len(data_lines(rest)) == 2  # idle first, then closed
        sock.close()
        sock = connect(srv)  # a second request on the kept connection: read, never answered
        sock.sendall(GET)
        head, rest = read_head(sock)
        sock.sendall(GET)
        assert data_lines(rest + read_all(sock)) == ['{"i": 0}', '{"i": 1}']
        sock.close()
        assert srv.unanswered == [GET] and srv.requests == [GET] * 3 and srv.connections == 2


def test_buffering_proxy_sends_everything_in_one_late_write():
    with buffering_proxy(events=4, gap_s=0.05) as srv:
        sock = connect(srv)
        t_req = time.time_ns()
        sock.sendall(GET)
        first = sock.recv(65536)
        t_got = time.time_ns()
        assert t_got - t_req >= 0.19e9
        head, body = read_head(sock, first)
        assert len(body) == int(re.search(rb"Content-Length: (\d+)", head).group(1))  # all in one segment
        events = [json.loads(d) for d in data_lines(body)]
        assert [e["i"] for e in events] == [0, 1, 2, 3]
        sends = [e["t_send_ns"] for e in events]
        assert t_req <= sends[0] < t_req + 0.2e9
        assert all(b - a == 50_000_000 for a, b in zip(sends, sends[1:], strict=False))
        assert sends[-1] < t_got
        sock.sendall(GET)  # keep-alive
        head, body = read_head(sock)
        sock.close()
        assert srv.connections == 1 and srv.requests == [GET, GET]


def test_reconnecting_feed_drops_and_resumes_from_last_event_id():
    with reconnecting_feed(events_per_connection=3, retry_ms=250) as srv:
        sock = connect(srv)
        sock.sendall(GET)
        head, rest = read_head(sock)
        body, ended = read_chunked(sock, rest)
        sock.close()
        assert not ended and body.startswith(b"retry: 250\n\n")
        assert re.findall(rb"id: (\d+)\ndata: ", body) == [b"0", b"1", b"2"]
        sock = connect(srv)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 2\r\n\r\n")
        head, rest = read_head(sock)
        body, ended = read_chunked(sock, rest)
        sock.close()
        assert not ended and re.findall(rb"id: (\d+)\n", body) == [b"3", b"4", b"5"]
        assert srv.last_event_ids == [None, "2"] and srv.connections == 2
    with reconnecting_feed(events_per_connection=3, total_events=4) as srv:
        sock = connect(srv)
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 1\r\n\r\n")
        head, rest = read_head(sock)
        body, ended = read_chunked(sock, rest)
        assert ended and re.findall(rb"id: (\d+)\n", body) == [b"2", b"3"]  # the end of the feed: a clean end
        sock.sendall(b"GET /stream HTTP/1.1\r\nHost: t\r\nLast-Event-ID: 3\r\n\r\n")  # same connection
        head, rest = read_head(sock)
        body, ended = read_chunked(sock, rest)
        sock.close()
        assert ended and b"id:" not in body


# ---------------------------------------------------------------------------------------------------------------
# Life: bounded, stopped cleanly, usable as a fixture


def test_a_server_stops_by_itself_at_max_life_s_and_stop_wakes_blocked_handlers():
    srv = silent(max_life_s=0.3)
    sock = connect(srv)
    assert read_all(sock) == b""  # closed at max_life_s (read_all's own timeout would raise otherwise)
    sock.close()

    def refused() -> bool:
        try:
            connect(srv, timeout=0.5).close()
        except OSError:
            return True
        return False

    wait_for(refused)  # the listener is closed too
    srv.stop()
    srv = rst_after_quiet(events=1, quiet_s=30)  # a handler waiting 30 s is woken by stop()
    sock = connect(srv)
    sock.sendall(GET)
    read_head(sock)
    srv.stop(timeout=2)  # raises when a handler is still waiting: stop() woke it
    sock.close()


def test_the_start_server_fixture(start_server):
    srv = start_server(status_server, 204, b"")
    conn = http.client.HTTPConnection(srv.host, srv.port, timeout=5)
    conn.request("GET", "/")
    assert conn.getresponse().status == 204
    conn.close()


SERVERS_WITH_ARGS = [(servers.openai_mock_server, {}), (endless_head, {}), (huge_head, {"size_bytes": 10_000}),
                     (garbage, {}), (close_on_accept, {}), (http2_only, {}), (tls_server, {}), (silent, {}),
                     (continue_then_sse, {}), (rst_after_quiet, {"quiet_s": 30}), (early_413, {}),
                     (status_server, {}), (keepalive_closer, {}), (buffering_proxy, {"gap_s": 0.01}),
                     (reconnecting_feed, {}), (servers.paced_sse, {"first_delay_s": 0.01}),
                     (servers.compression_bomb, {}), (servers.never_reads_body, {}), (servers.idle_408, {})]


@pytest.mark.parametrize(("factory", "kw"), SERVERS_WITH_ARGS, ids=[f.__name__ for f, _ in SERVERS_WITH_ARGS])
def test_every_server_takes_ten_connections_at_once_and_stops_promptly(factory, kw):
    srv = factory(**kw)
    socks = [connect(srv) for _ in range(10)]
    for sock in socks:
        with contextlib.suppress(OSError):
            sock.sendall(b"POST /v1/chat/completions HTTP/1.1\r\nHost: t\r\nContent-Length: 2\r\n\r\n{}")
    wait_for(lambda: srv.connections == 10)
    time.sleep(0.05)  # each handler at work: streaming, waiting, sending junk
    srv.stop(timeout=2)  # raises when a handler is still at work: each was woken
    assert not srv.errors
    for sock in socks:
        sock.close()
