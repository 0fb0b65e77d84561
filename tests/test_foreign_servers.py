"""sseload against servers nobody here wrote: a popular SSE library, an OpenAI-style mock, and
hostile or odd ones (tests/servers.py). Each asserts the verdict a user of that service would
expect, and what the server saw."""

from __future__ import annotations

import json
import time

import pytest

from sseload.auth.schemes import Authenticator
from sseload.protocol.outcomes import Outcome
from sseload.record.records import EventBuffer
from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules
from tests import servers
from tests.conftest import sseload_run


def stream(conn: SSEConnection, url: str, method: str = "POST", body: bytes = b"{}",
           headers: dict | None = None):
    events = EventBuffer()
    record = conn.stream(PreparedRequest.build(method, url, headers or {}, body), events)
    return record, events


def connection(url: str, **rules) -> SSEConnection:
    rules.setdefault("deadline_s", 20)
    rules.setdefault("read_timeout_s", 5)
    return SSEConnection(Endpoint.resolve(url), StreamRules(**rules), Authenticator())


# --- sseload run -H URL, no scenario ---

def test_a_third_party_sse_server_with_no_scenario_is_all_ok(tmp_path, start_server):
    srv = start_server(servers.sse_starlette_server, events=5, gap_s=0.01)
    result = sseload_run(tmp_path, "-H", srv.url, "-u", "2", "-t", "1s", "--no-report", run_id="foreign")
    assert result.code == 0, result.stderr[-2000:]
    streams = result.streams
    assert len(streams) > 5 and set(streams["outcome"]) == {"ok"}
    assert (streams["events"] == 5).all()
    info = result.info
    assert info["scenario"]["stream"]["completion"] == "auto" and "with no scenario" in info["scenario"]["description"]
    assert info["target_url"] == srv.url  # -H's path is the request's
    assert {r.split(b" ")[1] for r in srv.requests} == {b"/stream"}
    assert all(r.startswith(b"GET ") and b"content-length" not in r.lower() for r in srv.requests)


def test_the_run_is_named_after_the_host_and_request_flags_shape_the_request(tmp_path, start_server):
    srv = start_server(servers.openai_mock_server, chunks=4)
    body = json.dumps({"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]})
    result = sseload_run(tmp_path, "-H", srv.base_url, "--path", "/v1/chat/completions", "--body", body,
                         "--header", "Accept: text/event-stream; q=1", "--header", "X-Trace: 7",
                         "-u", "1", "-t", "1s", "--no-report", run_id="named")
    assert result.code == 0, result.stderr[-2000:]
    assert set(result.streams["outcome"]) == {"ok"}  # data: [DONE] completes it
    got = srv.received[0]
    assert (got.method, got.target, got.body) == ("POST", "/v1/chat/completions", body.encode())
    assert result.info["scenario"]["name"] == f"127.0.0.1-{srv.port}"  # what a run without --run-id is named
    assert got.header("x-trace") == "7"
    assert [v for k, v in got.headers if k.lower() == "accept"] == ["text/event-stream; q=1"]  # replaced, not repeated
    # [DONE] ended each stream before its body: the rest is read, so the connection carries the next
    assert srv.connections <= 2 and len(srv.received) > 3


APIG_500 = {"error_code": "APIG.0201", "error_msg": "Backend error.", "request_id": "{request_id}"}


def test_a_failure_storm_stops_early_with_the_cause(tmp_path, start_server):
    srv = start_server(servers.status_server, 500, APIG_500)
    result = sseload_run(tmp_path, "-u", "2", "-t", "30s", "--no-report", run_id="storm",  # backoff short: quick
                         scenario={"request": {"url": srv.url, "method": "GET"}, "load": {"failure_backoff_s": 0.01}})
    assert result.code == 2
    assert "the first 20 streams all failed the same way, http_error 500 APIG.0201" in result.stderr
    streams = result.streams
    assert 20 <= len(streams) <= 30 and set(streams["outcome"]) == {"http_error"}  # not a cutoff: well before the limit
    assert result.info["partial"] and "failed the same way" in result.info["partial_reason"]


def test_a_run_where_nothing_succeeded_fails_names_the_cause_once_and_never_spins(tmp_path, start_server):
    srv = start_server(servers.status_server, 500, APIG_500)
    result = sseload_run(tmp_path, "-u", "2", "-t", "3s", "--no-report", run_id="fail",
                         scenario={"request": {"url": srv.url, "method": "GET"}, "load": {"stop_after_failures": 0}})
    assert result.code == 1
    assert "no stream succeeded" in result.stderr
    lines = [line for line in result.stdout.splitlines() if "http_error 500 APIG.0201" in line]
    assert len(lines) == 1 and '"request_id": "<id>"' in lines[0], result.stdout  # grouped, not one per request id
    assert len(result.streams) < 40  # two users backing off, not thousands of streams a second


# --- the client against odd servers ---

def test_100_continue_then_a_stream_is_ok(start_server):
    srv = start_server(servers.continue_then_sse, events=3)
    conn = connection(srv.url)
    record, events = stream(conn, srv.url)
    conn.close()
    assert (record.outcome, record.status, record.events) == (Outcome.OK, 200, 3)


def test_an_endless_head_is_a_protocol_error_at_the_head_limit(start_server):
    srv = start_server(servers.endless_head)
    conn = connection(srv.url)
    record, _ = stream(conn, srv.url)
    conn.close()
    assert record.outcome is Outcome.PROTOCOL_ERROR and "without its end" in record.error
    assert record.response_bytes <= (64 + 64 + 1) * 1024  # stopped reading at the limit, plus one read


def test_a_reset_after_a_quiet_spell_lasts_until_the_reset(start_server):
    srv = start_server(servers.rst_after_quiet, events=3, quiet_s=0.6)
    conn = connection(srv.url)
    record, events = stream(conn, srv.url)
    conn.close()
    assert record.outcome is Outcome.RESET and record.events == 3
    assert record.duration_ns >= 0.55e9  # to the read that broke, not the last event


def test_a_413_sent_while_the_body_goes_up_is_too_large(start_server):
    srv = start_server(servers.early_413, linger_s=0.5)
    conn = connection(srv.url)
    record, _ = stream(conn, srv.url, body=b"x" * (8 << 20))
    conn.close()
    assert (record.outcome, record.status, record.error_code) == (Outcome.TOO_LARGE, 413, "APIG.0201")
    assert record.duration_ns >= 0


def test_a_keep_alive_connection_the_server_closed_while_idle_is_seen_before_a_request_goes_on_it(start_server):
    srv = start_server(servers.keepalive_closer, events=2, idle_close_s=0.05)
    conn = connection(srv.url)
    first, _ = stream(conn, srv.url)
    time.sleep(0.3)  # the server closes the idle connection
    second, _ = stream(conn, srv.url)
    conn.close()
    assert first.outcome is second.outcome is Outcome.OK
    assert not second.reused and not second.retried and second.connect_ns >= 0  # a fresh connection: nothing lost
    assert len(srv.received) == 2 and not srv.unanswered  # one request the server saw per row


def test_a_timed_out_stream_lasts_as_long_as_it_waited(start_server):
    srv = start_server(servers.silent, max_s=10)
    conn = connection(srv.url, read_timeout_s=1.0)
    record, _ = stream(conn, srv.url)
    conn.close()
    assert record.outcome is Outcome.TIMEOUT and "no complete response head within 1 s" in record.error
    assert 0.9e9 <= record.duration_ns <= 2.5e9


# --- broken servers: the likely cause, named ---

@pytest.mark.parametrize(("factory", "outcome", "hint"), [
    (servers.garbage, Outcome.PROTOCOL_ERROR, "did not answer in HTTP/1.x"),
    (servers.close_on_accept, Outcome.RESET, "the server closed without answering"),
    (servers.http2_only, Outcome.PROTOCOL_ERROR, "HTTP/2 only"),
])
def test_a_server_that_does_not_speak_http_1_is_named(start_server, factory, outcome, hint):
    srv = start_server(factory)
    conn = connection(srv.url)
    record, _ = stream(conn, srv.url)
    conn.close()
    assert record.outcome is outcome and hint in record.error, record.error


def test_plain_http_to_a_tls_port_says_use_https(start_server):
    srv = start_server(servers.tls_server)
    url = srv.url.replace("https://", "http://")
    conn = connection(url)
    record, _ = stream(conn, url)
    conn.close()
    assert record.outcome in (Outcome.PROTOCOL_ERROR, Outcome.RESET) and "use https://" in record.error, record.error


@pytest.mark.parametrize("version", ["TLSv1_2", "TLSv1_3"])
def test_a_tls_reconnect_resumes_the_session_instead_of_a_full_handshake(start_server, version):
    """A server that closes after every response: each stream reconnects, and resumes the last session."""
    import ssl

    srv = start_server(servers.tls_server, close_each=True)
    ctx = srv.ssl_context()
    ctx.maximum_version = ctx.minimum_version = getattr(ssl.TLSVersion, version)
    conn = SSEConnection(Endpoint.resolve(srv.url), StreamRules(deadline_s=20, read_timeout_s=5), Authenticator(),
                         tls=ctx)
    outcomes = [stream(conn, srv.url)[0].outcome for _ in range(4)]
    conn.close()
    assert outcomes == [Outcome.OK] * 4
    assert srv.tls_resumed == [False, True, True, True], srv.tls_resumed


@pytest.mark.parametrize(("resume", "handshakes"), [(True, [False, True, True]), (False, [False, False, False])],
                         ids=["resumed", "full"])
def test_a_connection_per_stream_when_the_scenario_asks_with_or_without_resumption(start_server, resume, handshakes):
    """[stream] connection = "new": each stream on its own connection (Connection: close), though the
    server would keep it alive; tls_resume = false: a full handshake for each."""
    srv = start_server(servers.tls_server)
    rules = StreamRules(deadline_s=20, read_timeout_s=5, new_connection=True, tls_resume=resume)
    conn = SSEConnection(Endpoint.resolve(srv.url), rules, Authenticator(), tls=srv.ssl_context())
    records = [stream(conn, srv.url)[0] for _ in range(3)]
    conn.close()
    assert [(r.outcome, r.reused, r.connect_ns > 0) for r in records] == [(Outcome.OK, False, True)] * 3
    assert srv.tls_resumed == handshakes, srv.tls_resumed
    assert all(b"\r\nconnection: close\r\n" in r.lower() for r in srv.requests)


def _insecure():
    import ssl

    ctx = ssl.create_default_context()
    ctx.check_hostname = False
    ctx.verify_mode = ssl.CERT_NONE
    return ctx


def test_https_to_a_port_that_never_answers_the_handshake_says_so(start_server):
    srv = start_server(servers.silent, max_s=10)
    url = srv.url.replace("http://", "https://")
    conn = SSEConnection(Endpoint.resolve(url), StreamRules(connect_timeout_s=0.5, deadline_s=10), Authenticator(),
                         tls=_insecure())
    record, _ = stream(conn, url)
    conn.close()
    assert record.outcome is Outcome.CONNECT_ERROR and "the TLS handshake with" in record.error, record.error


def test_https_to_a_plain_http_server_says_use_http(start_server):
    srv = start_server(servers.status_server, 404, "nope")
    url = srv.url.replace("http://", "https://")
    conn = SSEConnection(Endpoint.resolve(url), StreamRules(deadline_s=10), Authenticator(), tls=_insecure())
    record, _ = stream(conn, url)
    conn.close()
    assert record.outcome is Outcome.CONNECT_ERROR and "http://" in record.error, record.error


def test_a_huge_body_that_is_skipped_is_never_built_and_the_run_says_so(tmp_path, start_server):
    srv = start_server(servers.sse_starlette_server, events=2)
    result = sseload_run(tmp_path, "-u", "2", "-t", "3s", "--no-report", run_id="huge", timeout=60,
                         scenario={"request": {"url": srv.url}, "body": {"size_bytes": 10_000_000_000}})
    # 10 GB was never built: the run ends (within sseload_run's timeout) without a MemoryError
    assert result.code == 1 and "no stream succeeded" in result.stderr, result.stderr[-2000:]
    assert "too_large: body of 10000000000 bytes is over the gateway limit" in result.stdout
    assert len(result.streams) < 40  # backing off, not spinning
    assert set(result.streams["outcome"]) == {"too_large"} and (result.streams["body_bytes"] == 10_000_000_000).all()
    assert not srv.requests  # nothing was sent


@pytest.mark.unit
def test_a_body_too_large_to_send_is_refused_when_the_scenario_loads():
    from sseload.scenario.load import from_dict
    from sseload.scenario.model import ScenarioError

    with pytest.raises(ScenarioError, match="too large to build and send"):
        from_dict({"body": {"size_bytes": 2 << 30, "over_limit": "send"}}, "big.toml")
    from_dict({"body": {"size_bytes": 2 << 30}}, "skip.toml")  # skipped unsent: fine


def test_a_buffering_proxy_is_named_and_its_delay_is_not_blamed_on_the_harness(tmp_path, start_server):
    srv = start_server(servers.buffering_proxy, events=5, gap_s=0.05)
    result = sseload_run(tmp_path, "-H", srv.url, "-u", "2", "-t", "1s", run_id="buffered")
    assert result.code == 0, result.stderr[-2000:]
    streams = len(result.streams)
    assert f"note: {streams} of {streams} streams arrived all at once" in result.stdout, result.stdout
    assert "delivery delay (network, proxies and harness): event lateness" in result.stdout
    assert "harness error" not in result.stdout
    assert result.info["buffered_streams"] == streams  # run.json says so too (written as the batches were)
    assert not (result.run_dir / "summary.json").exists()  # (no report asked for: run.json alone)


def test_a_service_s_own_send_times_measure_its_delivery_delay(tmp_path, start_server):
    """A service that embeds its send time under its own name and unit: the scenario says which."""

    def handle(conn):
        def respond(conn, _req):
            conn.start_chunked(200)
            for k in range(5):
                conn.wait(0.02)
                sent_us = time.time_ns() // 1000
                conn.send_chunk(b'data: {"k": %d, "sent_us": %d}\n\n' % (k, sent_us))
            conn.end_chunked()
            return True

        servers.serve_keepalive(conn, respond)

    srv = start_server(servers.ScriptedServer, handle, name="own-send-times")
    result = sseload_run(tmp_path, "-u", "2", "-t", "2s", "--no-report", run_id="own",
                         scenario={"request": {"url": srv.url, "method": "GET"},
                                   "stream": {"send_time_key": "sent_us", "send_time_unit": "us"}})
    assert result.code == 0, result.stderr[-2000:]
    late = result.events["lateness_ms"]
    assert late.notna().all() and late.abs().median() < 5, late.describe()  # microseconds, not 1000x off
    assert "delivery delay (network, proxies and harness): event lateness" in result.stdout


@pytest.mark.unit
def test_a_send_time_key_or_unit_that_cannot_be_read_is_refused():
    from sseload.scenario.load import from_dict
    from sseload.scenario.model import ScenarioError

    with pytest.raises(ScenarioError, match="send_time_unit = 's'; use ns, us or ms"):
        from_dict({"stream": {"send_time_unit": "s"}}, "x.toml")
    with pytest.raises(ScenarioError, match="send_time_key"):
        from_dict({"stream": {"send_time_key": 'a":"b'}}, "x.toml")


def test_the_open_model_dispatches_each_arrival_to_any_free_user(tmp_path, start_server):
    """40 users, Poisson arrivals at 20/s, streams of about 0.8 s: some 16 users are busy at a time,
    so an arrival should never wait. (Each user running its own share of the schedule made a third
    of them wait for their own user: coordinated omission by the harness.)"""
    arrived: list[float] = []

    def handle(conn):
        def respond(conn, _req):
            arrived.append(time.time())
            servers.send_sse(conn, 5, 0.2)
            return True

        servers.serve_keepalive(conn, respond)

    srv = start_server(servers.ScriptedServer, handle, name="arrival-log")
    result = sseload_run(tmp_path, "--no-report", run_id="open",
                         scenario={"request": {"url": srv.url, "method": "GET"},
                                   "load": {"arrival": "poisson", "rate_per_s": 20.0, "users": 40,
                                            "spawn_rate": 400, "run_time": "4s"}})
    assert result.code == 0, result.stderr[-2000:]
    streams = result.streams
    lag = streams["schedule_lag_ms"]
    assert lag.notna().all() and lag.quantile(0.9) < 20, lag.describe()
    assert 45 <= len(streams) <= 125 and len(arrived) == len(streams)  # about 20/s for 4 s, each one sent
    starts_s = (streams["start_ns"] - streams["start_ns"].min()) / 1e9
    assert starts_s.max() < 4.0  # no stream starts after the run time


def redirecting_server(location: str):
    def handle(conn):
        def respond(conn, req):
            if req.target == "/old":
                conn.send_response(302, b"moved", {"Location": location})
            else:
                servers.send_sse(conn, 3, 0.01)
            return True

        servers.serve_keepalive(conn, respond)

    return servers.ScriptedServer(handle, name="redirect")


def test_a_redirect_on_the_same_host_is_followed_and_recorded(start_server):
    srv = start_server(redirecting_server, "/new")
    url = srv.base_url + "/old"
    conn = connection(url)
    record, events = stream(conn, url, method="GET", body=b"")
    conn.close()
    assert (record.outcome, record.status, record.events, record.redirects) == (Outcome.OK, 200, 3, 1)
    assert [r.target for r in srv.received] == ["/old", "/new"]
    assert record.ttfe_ns > 0 and record.duration_ns >= record.ttfe_ns  # from the first request
    (moved,) = conn.take_attempts()  # the 302 is a row of its own: rows are the requests the server saw
    assert (moved.outcome, moved.status, moved.redirects, moved.events) == (Outcome.REDIRECTED, 302, 0, 0)
    assert moved.error == f"redirected to {srv.base_url}/new" and moved.stream_id != record.stream_id
    assert moved.t0_perf_ns == record.t0_perf_ns and moved.reused is False and record.reused is True
    assert 0 < moved.duration_ns <= record.ttfe_ns  # the redirect came before the stream it led to


def test_every_request_of_a_run_that_follows_redirects_is_a_row(tmp_path, start_server):
    srv = start_server(redirecting_server, "/new")
    run = sseload_run(tmp_path, "-H", srv.base_url + "/old", "-u", "2", "-t", "2s", timeout=60)
    assert run.code == 0, run.stderr[-2000:]
    streams = run.streams
    outcomes = streams["outcome"].value_counts().to_dict()
    assert len(streams) == len(srv.received) and outcomes["redirected"] == outcomes["ok"] >= 2 * 2, outcomes
    assert set(streams.loc[streams["outcome"] == "redirected", "status"]) == {302}
    assert run.info["streams_recorded"] == len(streams)


def test_a_redirect_elsewhere_is_not_followed_and_names_the_location(start_server):
    srv = start_server(redirecting_server, "https://other.example/stream")
    url = srv.base_url + "/old"
    conn = connection(url)
    record, _ = stream(conn, url, method="GET", body=b"")
    conn.close()
    assert record.outcome is Outcome.HTTP_ERROR and record.redirects == 0
    assert "redirected to https://other.example/stream, not followed" in record.error


def test_a_service_demanding_auth_the_scenario_does_not_give_says_so(tmp_path, start_server):
    srv = start_server(servers.status_server, 401, {"error_code": "APIG.0301", "error_msg": "token is missing",
                                                    "request_id": "{request_id}"})
    result = sseload_run(tmp_path, "-H", srv.url, "-u", "1", "-t", "20s", "--no-report", run_id="auth")
    assert result.code == 2
    assert "the service demands authentication the scenario does not give: set [auth] method" in result.stderr
    assert set(result.streams["outcome"]) == {"auth_error"} and len(result.streams) <= 6


def test_a_stream_completed_by_done_before_its_body_ends_keeps_its_connection(start_server):
    """The body's end comes 50 ms after [DONE]: it is read (in the reader, not dropped), the
    connection carries the next stream, and each stream's duration stops at its [DONE]."""

    def handle(conn):
        def respond(conn, _req):
            conn.start_chunked(200)
            conn.send_chunk(b"data: {}\n\n")
            conn.send_chunk(b"data: [DONE]\n\n")
            conn.wait(0.05)
            conn.end_chunked()
            return True

        servers.serve_keepalive(conn, respond)

    srv = start_server(servers.ScriptedServer, handle, name="late-terminator")
    conn = connection(srv.url, completion="done")
    records = [stream(conn, srv.url, method="GET", body=b"")[0] for _ in range(10)]
    conn.close()
    assert all(r.outcome is Outcome.OK for r in records)
    assert srv.connections == 1 and sum(r.reused for r in records) == 9
    assert max(r.duration_ns for r in records) < 40e6  # to the [DONE], not to the body's end 50 ms later


def test_a_feed_reconnects_as_eventsource_does_and_records_each_reconnect(tmp_path, start_server):
    """Reconnect mode against a feed (not the reference target) that drops every connection after
    3 events with `retry: 100`: each connection is `reconnected`, resumes by Last-Event-ID with no
    event missed, waits the server's retry (not the 3 s default), and the gap across it is measured."""
    srv = start_server(servers.reconnecting_feed, events_per_connection=3, retry_ms=100, gap_s=0.02)
    scenario = {"request": {"method": "GET", "path": "/feed"}, "stream": {"reconnect": True},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "2s"}}
    result = sseload_run(tmp_path, "-H", srv.url, scenario=scenario, run_id="feed")
    assert result.code == 0, result.stderr[-2000:]
    s = result.streams
    assert set(s["outcome"]) <= {"reconnected", "cancelled"} and (s["outcome"] == "reconnected").sum() >= 10
    assert s["feed_id"].nunique() == 2  # one feed per user, for the whole run
    reconnects = s[s["reconnect_ms"].notna()]
    assert len(reconnects) == len(s) - 2  # every connection but each feed's first
    assert reconnects["reconnect_ms"].between(100, 160).all(), reconnects["reconnect_ms"].describe()
    resumed = reconnects[reconnects["events"] > 0]  # (a connection the stop cancelled may have none)
    assert len(resumed) >= len(reconnects) - 2 and (resumed["missed_events"] == 0).all()
    assert (resumed["feed_gap_ms"] > resumed["reconnect_ms"]).all()  # the retry wait, then the new TTFE
    # the server saw each reconnect resume after the last id it had sent on that feed
    ids = [i for i in srv.last_event_ids if i is not None]
    assert len(ids) >= len(reconnects) and all(int(i) % 3 == 2 for i in ids), ids
    assert "feeds: 2, reconnects" in result.stdout and "events missed across reconnects 0" in result.stdout
    assert result.info["outcomes"].get("reconnected", 0) >= 10


def test_a_feed_the_server_refuses_ends_and_does_not_spin(tmp_path, start_server):
    """An HTTP error ends a feed as it fails an EventSource: no reconnect, the user's usual backoff."""
    srv = start_server(servers.status_server, status=503)
    scenario = {"request": {"method": "GET"}, "stream": {"reconnect": True},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s", "stop_after_failures": 0}}
    result = sseload_run(tmp_path, "-H", srv.url, scenario=scenario, run_id="refused")
    assert result.code == 1
    s = result.streams
    assert set(s["outcome"]) == {"http_error"} and s["reconnect_ms"].isna().all()
    assert len(s) < 40  # backed off, not thousands a second


# --- the whole tool against hostile servers: exits by itself, leaves nothing, stays small, says why ---

HOSTILE = [  # (server, its arguments, exit code, what the console must say)
    (servers.endless_head, {}, 1, "without its end"),
    (servers.garbage, {}, 1, "did not answer in HTTP/1.x"),
    (servers.close_on_accept, {}, 1, "the server closed without answering"),
    (servers.http2_only, {}, 1, "HTTP/2 only"),
    (servers.tls_server, {}, 1, "use https://"),
    (servers.continue_then_sse, {"events": 3}, 0, "outcomes: ok"),
    (servers.silent, {"max_s": 30}, 1, "no complete response head within 1 s"),
]


@pytest.mark.parametrize(("factory", "kw", "code", "said"), HOSTILE, ids=[h[0].__name__ for h in HOSTILE])
def test_sseload_run_against_a_hostile_server_ends_alone_small_and_says_why(tmp_path, start_server, factory, kw,
                                                                          code, said):
    import subprocess
    import sys

    import psutil

    srv = start_server(factory, **kw)
    url = srv.url.replace("https://", "http://")  # the TLS server asked in plain HTTP
    scenario = {"request": {"method": "GET"}, "stream": {"read_timeout_s": 1.0, "grace_s": 1.0},
                "gateway": {"limit_s": 3.0}, "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    path = tmp_path / "hostile.toml"
    from tests.conftest import write_scenario

    write_scenario(path, scenario)
    proc = subprocess.Popen([sys.executable, "-m", "sseload", "run", str(path), "-H", url, "--no-report",
                             "--results-dir", str(tmp_path / "results"), "--run-id", "h"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, cwd=tmp_path)
    top = psutil.Process(proc.pid)
    started, peak_rss, family = time.monotonic(), 0, set()
    while proc.poll() is None and time.monotonic() - started < 60:
        try:
            tree = [top, *top.children(recursive=True)]
            family.update(tree)
            peak_rss = max(peak_rss, sum(p.memory_info().rss for p in tree))
        except psutil.Error:
            pass
        time.sleep(0.1)
    took = time.monotonic() - started
    killed_by_test = proc.poll() is None
    if killed_by_test:
        proc.kill()
    out, err = proc.communicate(timeout=30)
    assert not killed_by_test, f"still running after {took:.0f} s: it did not stop by itself"
    assert proc.returncode == code, err[-2000:]
    gone, alive = psutil.wait_procs([p for p in family if p.pid != proc.pid], timeout=10)
    for p in alive:
        p.kill()
    assert not alive, [p.cmdline() for p in alive]
    assert peak_rss < 600 << 20, f"{peak_rss >> 20} MiB"  # sseload, its Locust and the reader: bounded
    assert said in out + err, (out + err)[-2000:]
    assert "Traceback" not in err
    info = json.loads((tmp_path / "results" / "h" / "run.json").read_text())
    assert info["streams_started"] == info["streams_recorded"] > 0  # no recorded stream is lost
