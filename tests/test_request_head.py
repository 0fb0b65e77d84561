"""What sseload sends is one well-formed HTTP/1.1 head, whatever its inputs hold (issue 28, item 4).

Header names, values and methods with CR, LF or NUL are refused before anything starts, with a
sentence naming the header and never its value (a value may be a secret); a secret read with a
trailing line end is trimmed and said once; a value HTTP/1.1 cannot carry is refused before the
run; a server's non-ASCII ``id:`` comes back as browsers send it, UTF-8, and every stream is recorded.
"""

from __future__ import annotations

import logging
import subprocess
import sys

import pytest

from sseload import cli
from sseload.auth.schemes import from_scenario
from sseload.protocol.feed import Feed
from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import StreamRules
from sseload.record.records import StreamRecord
from sseload.run.runinfo import read as runinfo_read
from sseload.scenario.flags import apply_request_flags
from sseload.scenario.load import default_scenario
from sseload.scenario.load import load as load_scenario
from sseload.scenario.model import Auth, ScenarioError, check_header
from sseload.transport.client import Endpoint, HeadError, PreparedRequest, SSEConnection
from tests import servers
from tests.conftest import LOCUSTFILE, serving, side_by_side, sseload_run, write_scenario
from tests.event_logs import BOTH
from tests.event_logs import run as run_log
from tests.servers import Conn, ScriptedServer, sse_event

SECRET = "s3cr3t-VALUE-9f2c"  # never in a message


class Flags:
    def __init__(self, **kw) -> None:
        self.__dict__.update({"path": None, "method": None, "header": None, "body": None, "body_file": None, **kw})


def refused_in_process(capsys, tmp_path, *argv: str) -> str:
    """`sseload run ARGV` in this process: exit 2, one sentence, no run folder; returns the sentence."""
    code = cli.main(["run", *argv, "--results-dir", str(tmp_path / "results"), "--no-report"])
    err = capsys.readouterr().err
    assert code == 2, err
    assert err.startswith("sseload: ") and err.count("\n") == 1, err
    assert not (tmp_path / "results").exists() or not any((tmp_path / "results").iterdir())
    return err


# --- refused where the scenario is compiled: the header named, its value never shown ---

@pytest.mark.unit
@pytest.mark.parametrize(("char", "said"), [("\r", "a carriage return (CR)"), ("\n", "a line feed (LF)"),
                                            ("\0", "a NUL"), ("\x1b", "the control character 0x1b")])
def test_a_header_value_with_a_control_character_is_refused_by_name(char, said):
    with pytest.raises(ScenarioError) as err:
        check_header("X-Token", f"{SECRET}{char}X-Evil: 1", "--header")
    assert str(err.value).startswith(f"--header X-Token: the value holds {said}")
    assert SECRET not in str(err.value) and "X-Evil" not in str(err.value)


@pytest.mark.unit
def test_a_tab_in_a_header_value_is_allowed():
    check_header("X-Note", "a\tb", "--header")


@pytest.mark.unit
@pytest.mark.parametrize("header", [f"X-A: {SECRET}\r\nX-Evil: 1", f"X-A: {SECRET}\nX-Evil: 1",
                                    f"X-A: {SECRET}\0tail", "X-A\r\nX-Evil: 1"])
def test_a_header_flag_that_would_inject_a_header_is_refused(header):
    with pytest.raises(ScenarioError) as err:
        apply_request_flags(default_scenario(), Flags(header=[header]))
    message = str(err.value)
    assert message.startswith("--header") and "X-A" in message and "\n" not in message and "\r" not in message
    assert SECRET not in message


@pytest.mark.unit
@pytest.mark.parametrize("method", ["GET\r\nX-Evil: 1", "GET\n", "GE T", "GET\0", ""])
def test_a_method_that_is_not_a_token_is_refused(method):
    with pytest.raises(ScenarioError) as err:
        apply_request_flags(default_scenario(), Flags(method=method))
    assert f"--method {method!r} is not an HTTP method" in str(err.value) and "\n" not in str(err.value)


@pytest.mark.unit
def test_a_header_flag_without_a_colon_is_refused_without_showing_it():
    with pytest.raises(ScenarioError) as err:
        apply_request_flags(default_scenario(), Flags(header=[f"Authorization Bearer {SECRET}"]))
    assert "is not 'Name: value'" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.unit
def test_a_scenario_header_with_a_line_break_is_refused_naming_file_table_and_header(tmp_path):
    path = write_scenario(tmp_path / "inject.toml", {"request": {"headers": {"X-Tenant": f"{SECRET}\r\nX-Evil: 1"}}})
    with pytest.raises(ScenarioError) as err:
        load_scenario(path)
    assert str(err.value).startswith(f"{path}: [request] headers X-Tenant: the value holds a carriage return")
    assert SECRET not in str(err.value)


@pytest.mark.unit
def test_a_scenario_method_and_header_name_must_be_tokens(tmp_path):
    with pytest.raises(ScenarioError, match=r"\[request\] method = 'GET /x' is not an HTTP method"):
        load_scenario(write_scenario(tmp_path / "m.toml", {"request": {"method": "GET /x"}}))
    with pytest.raises(ScenarioError, match=r"the header name 'X Tenant' is not a token"):
        load_scenario(write_scenario(tmp_path / "h.toml", {"request": {"headers": {"X Tenant": "t"}}}))


@pytest.mark.unit
def test_a_header_value_that_is_not_latin1_is_refused_before_the_run(tmp_path):
    with pytest.raises(ScenarioError) as err:
        load_scenario(write_scenario(tmp_path / "u.toml", {"request": {"headers": {"X-User": "用户"}}}))
    assert "[request] headers X-User: the value has a character HTTP/1.1 cannot send" in str(err.value)
    assert "用户" not in str(err.value)
    check_header("X-User", "café", "--header")  # Latin-1 is what HTTP/1.1 header bytes are: sent as is


@pytest.mark.unit
def test_a_header_from_an_env_reference_is_checked_too(monkeypatch):
    from sseload.scenario.load import request_headers

    scenario = default_scenario()
    scenario.request.headers = {"X-Key": "${X_KEY}"}
    monkeypatch.setenv("X_KEY", f"{SECRET}\n")  # a file's line end: trimmed (and said once)
    assert request_headers(scenario.request) == {"X-Key": SECRET}
    monkeypatch.setenv("X_KEY", f"{SECRET}\nX-Evil: 1")
    with pytest.raises(ScenarioError) as err:
        request_headers(scenario.request)
    assert "$X_KEY holds a line break" in str(err.value) and SECRET not in str(err.value)


# --- the same refusals from the command line, before any load, with a server that must hear nothing ---

@pytest.mark.parametrize("argv", [
    ["--header", f"X-A: {SECRET}\r\nX-Evil: 1"],
    ["--header", f"X-A\r\nX-Evil: {SECRET}"],
    ["--header", f"X-A: {SECRET}\0"],
    ["--header", f"X-User: {SECRET}用户"],
    ["--method", "GET / HTTP/1.1\r\nX-Evil: 1\r\n\r\nGET"],
], ids=["crlf-value", "crlf-name", "nul-value", "not-latin1", "crlf-method"])
def test_sseload_run_refuses_an_unsendable_flag_before_any_load(capsys, tmp_path, start_server, argv):
    srv = start_server(servers.paced_sse, events=1)
    err = refused_in_process(capsys, tmp_path, "-H", srv.url, "-u", "1", "-t", "1s", *argv)
    assert ("--header X-A" in err or "--header X-User" in err or "header name 'X-A" in err
            or "--method 'GET" in err), err
    assert SECRET not in err and "\r" not in err
    assert srv.connections == 0


def test_plain_locust_refuses_a_header_that_would_inject_one(tmp_path, start_server):
    srv = start_server(servers.paced_sse, events=1)
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(LOCUSTFILE), "--headless", "-u", "1",
         "-t", "1s", "-H", srv.url, "--results-dir", str(tmp_path / "results"),
         "--header", f"X-A: {SECRET}\r\nX-Evil: 1"],
        capture_output=True, text=True, timeout=60, cwd=tmp_path)
    assert proc.returncode == 2, proc.stderr[-2000:]
    assert "sseload: --header X-A: the value holds a carriage return (CR)" in proc.stderr
    assert SECRET not in proc.stderr + proc.stdout and srv.connections == 0
    assert not (tmp_path / "results").exists()


# --- secrets from the environment: one trailing line end trimmed, said once, by name ---

@pytest.mark.unit
@pytest.mark.parametrize("end", ["\n", "\r\n"])
def test_a_token_read_with_a_trailing_line_end_is_trimmed_and_said_once(caplog, end):
    from sseload.scenario import model as scenario_mod

    scenario_mod._TRIMMED_VARS.discard("T_TRIM")
    auth = Auth(method="token", token_env="T_TRIM")
    with caplog.at_level(logging.WARNING, logger="sseload"):
        for _ in range(3):  # built again (each user, each process start): said once
            headers, _ = from_scenario(auth, "http://h/", {"T_TRIM": SECRET + end}).headers("GET", "http://h/", {},
                                                                                          b"", None)
            assert headers["X-Auth-Token"] == SECRET
    said = [r.getMessage() for r in caplog.records if "T_TRIM" in r.getMessage()]
    assert said == ["sseload: $T_TRIM ended in a line break (as a value read from a file does); sseload removed it"]
    assert SECRET not in caplog.text


@pytest.mark.unit
@pytest.mark.parametrize("value", [f"{SECRET}\nX-Evil: 1", f"{SECRET}\r", f"{SECRET}\0x", "\n\n"])
def test_a_token_with_a_line_break_left_inside_is_refused_naming_the_variable(value):
    with pytest.raises(ScenarioError) as err:
        from_scenario(Auth(method="token", token_env="T_BAD"), "http://h/", {"T_BAD": value})
    assert "T_BAD" in str(err.value) and SECRET not in str(err.value)


@pytest.mark.unit
def test_a_header_secret_that_is_not_latin1_is_refused_but_a_password_sent_in_json_is_not():
    with pytest.raises(ScenarioError, match=r"the IAM token in \$T_U has a character HTTP/1.1 cannot send"):
        from_scenario(Auth(method="token", token_env="T_U"), "http://h/", {"T_U": "令牌"})
    env = {"SSELOAD_IAM_USER": "u", "SSELOAD_IAM_PASSWORD": "pässwörd-密码", "SSELOAD_IAM_DOMAIN": "d"}
    assert from_scenario(Auth(method="iam"), "http://h/", env, fetch=None).method == "iam"


@pytest.fixture(scope="module")
def server_runs(tmp_path_factory):
    """This module's runs against servers of tests/servers.py, side by side, each with a server of its own
    (what is checked is what was sent, recorded and said, not when): name -> (what the run gave, its server).
    Their runs: k8s_token_run, flaky_run, accented_feed_run."""
    plan = {"k8s_token": (k8s_token_run, lambda: servers.paced_sse(events=2)),
            "flaky": (flaky_run, lambda: servers.paced_sse(events=2)),
            "accented_feed": (accented_feed_run, accented_feed)}
    srvs = {name: server() for name, (_, server) in plan.items()}
    folders = {name: tmp_path_factory.mktemp(name) for name in plan}  # here: mktemp is not for threads
    with serving(srvs):
        yield side_by_side(plan, lambda name, job: (job[0](folders[name], srvs[name].url), srvs[name]))


def k8s_token_run(tmp_path, url: str):
    scenario = {"request": {"method": "GET"}, "auth": {"method": "token", "token_env": "K8S_TOKEN"},
                "stream": {"completion": "auto"}, "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    return sseload_run(tmp_path, "-H", url, "--workers", "2", scenario=scenario, run_id="k8s",
                       env={"K8S_TOKEN": SECRET + "\n"})


def test_a_token_file_with_a_trailing_newline_sends_an_intact_head_and_is_said_once(server_runs):
    """What a Kubernetes secret mounted into an env var does: the token ends in "\\n". It is sent
    trimmed (the head is not ended early), and said once for the whole run, not by each process."""
    result, srv = server_runs["k8s_token"]
    assert result.code == 0, result.stderr[-2000:]
    assert result.stderr.count("$K8S_TOKEN ended in a line break") == 1, result.stderr[-2000:]
    assert SECRET not in result.stderr + result.stdout
    assert srv.received and all(r.header("x-auth-token") == SECRET for r in srv.received)
    for req in srv.received:  # each head is one request: its headers and nothing after them
        assert req.head.count(b"\r\n\r\n") == 1 and b"\n\r\n" not in req.head[:-4]
        assert req.method == "GET" and req.body == b""
    assert set(result.streams["outcome"]) == {"ok"}


# --- headers made at send time: never able to break the head, and a stream that cannot be sent is recorded ---

def _connection(url: str, auth) -> SSEConnection:
    rules = StreamRules(completion="auto", max_event_bytes=1 << 20, connect_timeout_s=2, read_timeout_s=2,
                        deadline_s=5, limit_s=5)
    return SSEConnection(Endpoint.resolve(url), rules, auth)


@pytest.mark.unit
@pytest.mark.unit
@pytest.mark.parametrize("value", [f"{SECRET}\r\nX-Evil: 1", f"{SECRET}\0", f"{SECRET}令"])
def test_a_send_time_header_that_would_break_the_head_raises_naming_it(value):
    conn = _connection("http://127.0.0.1:9/", from_scenario(Auth(), "http://127.0.0.1:9/"))
    req = PreparedRequest.build("GET", "http://127.0.0.1:9/s", {"Accept": "text/event-stream"}, b"")
    with pytest.raises(HeadError) as err:
        conn._head(req, {**req.headers, "X-Auth-Token": value})
    assert "'X-Auth-Token'" in str(err.value) and SECRET not in str(err.value)


def test_a_stream_whose_signed_headers_cannot_be_sent_is_recorded_unsent(start_server):
    class BrokenToken:  # an authenticator whose credential (fetched at run time) holds a line break
        method = "token"

        def headers(self, method, url, headers, body, payload_hash):
            return {**headers, "X-Auth-Token": f"{SECRET}\r\nX-Evil: 1"}, 0.0

        def secrets(self):
            return [SECRET]

    srv = start_server(servers.paced_sse, events=1)
    conn = _connection(srv.url, BrokenToken())
    from sseload.record.records import EventBuffer

    record = conn.stream(PreparedRequest.build("GET", srv.url, {}, b""), EventBuffer())
    assert isinstance(record, StreamRecord) and record.outcome is Outcome.HARNESS_ERROR
    assert "not sent: the request header 'X-Auth-Token' holds a line break or NUL" in record.error
    assert SECRET not in record.error and srv.connections == 0


FLAKY_LOCUSTFILE = """
from sseload.transport.client import SSEConnection
from sseload.run.user import SSEUser

_stream, _calls = SSEConnection.stream, [0]


def every_other_raises(self, *args, **kwargs):  # a bug in a stream, every other time
    _calls[0] += 1
    if _calls[0] % 2:
        raise RuntimeError("a bug")
    return _stream(self, *args, **kwargs)


SSEConnection.stream = every_other_raises


class User(SSEUser):
    pass
"""


def flaky_run(tmp_path, url: str) -> tuple[subprocess.CompletedProcess, dict | None]:
    """Plain Locust with FLAKY_LOCUSTFILE: (the process, its run.json)."""
    (tmp_path / "flaky.py").write_text(FLAKY_LOCUSTFILE)
    proc = subprocess.run(
        [sys.executable, "-m", "locust", "-f", str(tmp_path / "flaky.py"), "--headless", "-u", "2", "-r", "10",
         "-t", "1s", "-H", url, "--results-dir", str(tmp_path / "results"), "--run-id", "flaky"],
        capture_output=True, text=True, timeout=90, cwd=tmp_path)
    return proc, runinfo_read(tmp_path / "results" / "flaky")


def test_a_stream_that_raises_is_recorded_as_harness_error_never_lost(server_runs):
    (proc, info), _ = server_runs["flaky"]
    assert info is not None, proc.stderr[-2000:]
    assert info["streams_started"] == info["streams_recorded"] > 4 and not info["partial"], info["partial_reason"]
    assert info["outcomes"]["harness_error"] >= 2 and info["outcomes"]["ok"] >= 2, info["outcomes"]
    assert proc.stderr.count("a stream raised instead of ending") == 1, proc.stderr[-2000:]


# --- a server's non-ASCII id: back as UTF-8, as browsers send it ---

@pytest.mark.unit
@pytest.mark.parametrize("cls", BOTH)
def test_both_parsers_keep_a_non_ascii_id_and_ignore_one_holding_nul(cls):
    stream = "id: événement-1-事件\ndata: x\n\nid: a\0b\ndata: y\n\n".encode()
    seen = run_log(cls, stream, range(1, len(stream)))  # at every byte boundary, inside a character too
    assert (seen.first_event_id, seen.last_event_id, seen.n) == ("événement-1-事件", "événement-1-事件", 2)


@pytest.mark.unit
def test_a_non_ascii_last_event_id_goes_out_as_its_utf8_bytes():
    feed = Feed(reconnect_ms=100)
    feed.last_event_id = "événement-1-事件"
    req = feed.request(PreparedRequest.build("GET", "http://h/feed", {}, b""))
    assert req.headers["Last-Event-ID"].encode("latin-1") == "événement-1-事件".encode()


@pytest.mark.unit
def test_ids_with_digits_python_counts_but_int_refuses_do_not_raise():
    from tests.conftest import connection_record, times_ns

    feed = Feed(reconnect_ms=100)
    feed.record(connection_record(1, 0, 10, Outcome.RESET), ("²", "²", None), times_ns(5), stopping=False)
    again = feed.record(connection_record(2, 200, 10, Outcome.RESET), ("³", "³", None), times_ns(205), stopping=False)
    assert again.missed_events == -1 and feed.last_event_id == "³"


def accented_feed(events_per_connection: int = 3, retry_ms: int = 50) -> ScriptedServer:
    """A feed whose ids are not ASCII (``id: événement-N-事件``), dropping each connection after
    ``events_per_connection`` events; it resumes from a Last-Event-ID read as UTF-8, as browsers send it.
    ``server.last_event_ids`` keeps each request's header as raw bytes (None when absent)."""
    srv: ScriptedServer

    def handle(conn: Conn) -> None:
        while (req := conn.read_request()) is not None:
            raw = next((line.split(b":", 1)[1].strip() for line in req.head.split(b"\r\n")
                        if line.lower().startswith(b"last-event-id:")), None)
            with srv._lock:
                srv.last_event_ids.append(raw)
            n = int(raw.decode("utf-8").split("-")[1]) + 1 if raw is not None else 0
            conn.start_chunked(200)
            conn.send_chunk(b"retry: %d\n\n" % retry_ms)
            for _ in range(events_per_connection):
                conn.send_chunk(f"id: événement-{n}-事件\n".encode() + sse_event(n))
                n += 1
            return  # dropped mid-stream: the feed reconnects

    srv = ScriptedServer(handle, name="accented-feed")
    srv.last_event_ids = []
    return srv


def accented_feed_run(tmp_path, url: str):
    scenario = {"request": {"method": "GET", "path": "/feed"}, "stream": {"reconnect": True},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "2s"}}
    return sseload_run(tmp_path, "-H", url, scenario=scenario, run_id="accented")


def test_a_feed_with_non_ascii_ids_resumes_by_utf8_last_event_id_and_records_every_stream(server_runs):
    result, srv = server_runs["accented_feed"]
    assert result.code == 0, result.stderr[-3000:]
    assert "Traceback" not in result.stderr and "harness_error" not in result.stdout, result.stderr[-3000:]
    sent = [raw for raw in srv.last_event_ids if raw is not None]
    assert len(sent) >= 6, srv.last_event_ids
    for raw in sent:  # the id the server sent last on that connection, as UTF-8 bytes
        text = raw.decode("utf-8")
        assert text.startswith("événement-") and text.endswith("-事件") and int(text.split("-")[1]) % 3 == 2
    info = result.info
    assert info["streams_started"] == info["streams_recorded"] == len(result.streams) and not info["partial"]
    assert set(result.streams["outcome"]) <= {"reconnected", "cancelled"}


@pytest.mark.unit
def test_a_path_with_spaces_or_non_ascii_is_percent_encoded_not_sent_raw():
    req = PreparedRequest.build("GET", "http://h/v1/a b/é?q=x y&ok=%2F", {}, b"")
    assert req.path == "/v1/a%20b/%C3%A9?q=x%20y&ok=%2F"
    assert req.url == "http://h" + req.path  # what is signed is what is sent
    plain = PreparedRequest.build("GET", "http://h/v1/chat/completions?x=1", {}, b"")
    assert plain.path == "/v1/chat/completions?x=1"
