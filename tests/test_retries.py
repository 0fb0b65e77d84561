"""Every request that reached the wire is a row (issue 32): a request a kept-alive connection lost is
recorded, and sent again on a fresh connection (its own row, marked ``retried``) only where HTTP lets
a client do so unasked, for an idempotent method; a POST is never sent twice. A connection the
server closed while idle is seen before a request goes on it. So the rows are the requests the
server saw, counted on the server's side (tests/servers.py)."""

from __future__ import annotations

import socket
import time

import pytest

from sseload.auth.schemes import Authenticator
from sseload.protocol.outcomes import Outcome
from sseload.record.records import EventBuffer
from sseload.transport.attempts import lost_text, may_send_again
from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules
from sseload.transport.sending import closed_while_idle
from tests import servers
from tests.conftest import serving, side_by_side, sseload_run


def connection(url: str) -> SSEConnection:
    return SSEConnection(Endpoint.resolve(url), StreamRules(deadline_s=20, read_timeout_s=5), Authenticator())


def stream(conn: SSEConnection, url: str, method: str):
    return conn.stream(PreparedRequest.build(method, url, {}, b"{}" if method == "POST" else b""), EventBuffer())


@pytest.mark.unit
def test_only_an_idempotent_method_is_sent_again_and_the_row_says_which_it_was():
    assert may_send_again("GET") and may_send_again("put") and not may_send_again("POST")
    assert not may_send_again("PATCH")
    assert "sent again on a fresh connection (GET is idempotent)" in lost_text("GET", True)
    assert "not sent again: POST is not idempotent" in lost_text("POST", False)


@pytest.mark.unit
@pytest.mark.parametrize("timeout_s", [0.0, 5.0, None], ids=["non-blocking", "timeout", "blocking"])
def test_a_look_at_an_idle_connection_takes_nothing_never_waits_and_sees_a_close(timeout_s):
    ours, theirs = socket.socketpair()
    ours.settimeout(timeout_s)
    assert not closed_while_idle(ours, tls=False)  # idle: open
    theirs.sendall(b"HTTP/1.1 408 Request Timeout\r\n")  # bytes nobody asked for
    assert closed_while_idle(ours, tls=False) and not closed_while_idle(ours, tls=True)  # (TLS: a ticket?)
    assert ours.recv(64).startswith(b"HTTP/1.1 408")  # the look took nothing
    theirs.sendall(b"\x15\x03\x03")  # a TLS alert record: close_notify
    assert closed_while_idle(ours, tls=True)
    ours.recv(64)
    theirs.close()
    assert closed_while_idle(ours, tls=False) and closed_while_idle(ours, tls=True)
    assert ours.gettimeout() == timeout_s
    ours.close()


def test_a_get_the_server_closed_its_connection_under_is_a_row_and_is_sent_again_as_the_next(start_server):
    srv = start_server(servers.keepalive_closer, events=2, idle_close_s=0.3)
    conn = connection(srv.url)
    first = stream(conn, srv.url, "GET")
    second = stream(conn, srv.url, "GET")  # at once, on the kept-alive connection: read, then closed unanswered
    lost = conn.take_attempts()
    conn.close()
    assert first.outcome is Outcome.OK and [r.outcome for r in lost] == [Outcome.RESET]
    assert lost[0].reused and not lost[0].retried and "sent again on a fresh connection" in lost[0].error
    assert lost[0].upload_ns >= 0 and lost[0].duration_ns >= 0.25e9  # it went out, and waited for the close
    assert second.outcome is Outcome.OK and second.retried and not second.reused
    assert len(srv.received) == 3 and len(srv.unanswered) == 1  # three rows, three requests


def test_a_post_the_server_closed_its_connection_under_is_a_row_and_never_sent_twice(start_server):
    srv = start_server(servers.keepalive_closer, events=2, idle_close_s=0.3)
    conn = connection(srv.url)
    first = stream(conn, srv.url, "POST")
    second = stream(conn, srv.url, "POST")
    assert conn.take_attempts() == []
    third = stream(conn, srv.url, "POST")  # on a fresh connection
    conn.close()
    assert first.outcome is third.outcome is Outcome.OK and not third.reused and not third.retried
    assert second.outcome is Outcome.RESET and second.reused and not second.retried
    assert "not sent again: POST is not idempotent" in second.error
    assert len(srv.received) == 3  # three rows, three requests


def test_a_connection_the_server_timed_out_with_a_408_nobody_asked_for_carries_no_request(start_server):
    srv = start_server(servers.idle_408, events=2, idle_s=0.05)
    conn = connection(srv.url)
    first = stream(conn, srv.url, "POST")
    time.sleep(0.3)  # the server sends its 408 and closes
    second = stream(conn, srv.url, "POST")
    conn.close()
    assert first.outcome is second.outcome is Outcome.OK  # not the 408 taken for the answer
    assert not second.reused and second.status == 200
    assert len(srv.received) == 2 and not srv.unanswered


@pytest.mark.parametrize("tls_version", ["TLSv1_2", "TLSv1_3"])
def test_a_tls_connection_the_server_closed_cleanly_while_idle_carries_no_request(start_server, tls_version):
    """TLS 1.3 sends its close_notify as application data, as it sends session tickets: the look at the
    socket cannot tell them apart, so the records waiting are taken through TLS before a request goes."""
    import ssl

    srv = start_server(servers.tls_server, 2, close_idle_s=0.2)
    tls = srv.ssl_context()
    tls.maximum_version = tls.minimum_version = getattr(ssl.TLSVersion, tls_version)
    conn = SSEConnection(Endpoint.resolve(srv.url), StreamRules(deadline_s=20, read_timeout_s=5), Authenticator(),
                         tls)
    first = stream(conn, srv.url, "POST")
    time.sleep(0.6)  # the server's close_notify, then its FIN after waiting 0.2 s for ours
    second = stream(conn, srv.url, "POST")
    third = stream(conn, srv.url, "POST")  # at once: on the kept-alive connection, a ticket or two on it
    conn.close()
    assert conn.take_attempts() == []
    assert [r.outcome for r in (first, second, third)] == [Outcome.OK] * 3
    assert not second.reused and third.reused  # a fresh connection after the close, then kept alive
    assert len(srv.received) == 3 and not srv.unanswered


def test_a_close_notify_right_after_a_response_ends_it_and_the_connection(start_server):
    """ssl reads a close_notify as b"", which is no data: taken for a read of nothing it spun the
    decrypting loop for ever."""
    import faulthandler

    srv = start_server(servers.tls_server, 3, close_each=True, close_notify=True)
    conn = SSEConnection(Endpoint.resolve(srv.url), StreamRules(deadline_s=5, read_timeout_s=2), Authenticator(),
                         srv.ssl_context())
    faulthandler.dump_traceback_later(60, exit=True)  # a spin holds the hub: no timeout of gevent's can end it
    try:
        records = [stream(conn, srv.url, "GET") for _ in range(3)]
    finally:
        faulthandler.cancel_dump_traceback_later()
    conn.close()
    assert [(r.outcome, r.events, r.reused) for r in records] == [(Outcome.OK, 3, False)] * 3
    assert len(srv.received) == 3


@pytest.fixture(scope="module")
def closer_runs(tmp_path_factory):
    """A GET run and a POST run, each against a server of its own that never answers a second request on
    a connection, side by side (what is checked is which requests were recorded and sent again, not when):
    method -> (RunResult, its server)."""
    srvs = {method: servers.keepalive_closer(events=3, idle_close_s=0.3) for method in ("GET", "POST")}
    folders = {method: tmp_path_factory.mktemp(method) for method in srvs}  # here: mktemp is not for threads

    def run(method, srv):
        flags = ("--method", "POST", "--body", "{}") if method == "POST" else ()
        return sseload_run(folders[method], "-H", srv.url, *flags, "-u", "2", "-t", "3s", run_id=method), srv

    with serving(srvs):
        yield side_by_side(srvs, run)


@pytest.mark.parametrize("method", ["GET", "POST"])
def test_the_streams_recorded_are_the_requests_the_server_saw(closer_runs, method):
    run, srv = closer_runs[method]
    streams = run.streams
    assert run.info["streams_recorded"] == len(streams) == len(srv.received), streams.to_string()
    lost = streams[streams["error"].str.contains("closed the kept-alive connection after the request went out")]
    assert len(lost) >= 2 and set(lost["outcome"]) == {"reset"}
    if method == "GET":  # each lost request sent again: the next row of its user, marked retried
        assert lost["error"].str.contains("sent again on a fresh connection").all()
        assert streams["retried"].sum() >= len(lost) - 2  # (the run's stop may cancel a retry's turn)
        assert set(streams[streams["retried"]]["outcome"]) <= {"ok", "cancelled"}
    else:
        assert lost["error"].str.contains("not sent again: POST is not idempotent").all()
        assert not streams["retried"].any()
    assert run.code == 0, run.stderr[-2000:]  # some streams succeeded; the resets are errors in the summary

