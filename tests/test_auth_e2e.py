"""Signed streams end to end: each auth method against the reference target, right and wrong."""

from __future__ import annotations

import json
import time
import urllib.error
import urllib.request
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from sseload.auth.apig import sign
from sseload.auth.iam import token_request_body
from tests.conftest import side_by_side, sseload_run, stopped_early

AK, SK = "HPUAEXAMPLEAK0000001", "ExampleSecretKey0123456789abcdefghijklmn"
PATH = "/v1/infers/00000000-0000-4000-8000-000000000000/v1/stream"


def post(url: str, headers: dict[str, str], body: bytes = b"{}") -> tuple[int, dict, bytes]:
    req = urllib.request.Request(url, data=body, headers=headers, method="POST")
    try:
        with urllib.request.urlopen(req, timeout=10) as resp:
            return resp.status, dict(resp.headers), resp.read()
    except urllib.error.HTTPError as err:
        return err.code, dict(err.headers), err.read()


def signed(url: str, key: str = AK, secret: str = SK, when: datetime | None = None, body: bytes = b"{}"):
    return sign("POST", url, {"Content-Type": "application/json"}, body, key, secret, when)


def code_of(body: bytes) -> str:
    doc = json.loads(body)
    assert set(doc) == {"error_code", "error_msg", "request_id"} and len(doc["request_id"]) == 32
    return doc["error_code"]


# --- the target's gateway answers ---

@pytest.fixture
def gateway(target):
    env = {"SSELOAD_TARGET_AKSK": f"{AK}:{SK}", "SSELOAD_TARGET_TOKENS": "good-token",
           "SSELOAD_TARGET_APP_CODES": "good-code", "SSELOAD_TARGET_APP_KEYS": "appkey1:appsecret1",
           "SSELOAD_TARGET_IAM_USERS": "alice:pw"}
    return target("--events", "2", "--ttfe-ms", "1", "--gap-ms", "1", env=env) + PATH


def test_target_accepts_each_right_credential(gateway):
    assert post(gateway, signed(gateway))[0] == 200
    assert post(gateway, {"X-Auth-Token": "good-token"})[0] == 200
    assert post(gateway, {"X-Apig-AppCode": "good-code"})[0] == 200
    assert post(gateway, signed(gateway, "appkey1", "appsecret1"))[0] == 200


@pytest.mark.parametrize(
    "headers,status,code",
    [
        ({}, 401, "APIG.0301"),  # nothing at all
        ({"X-Auth-Token": "bad"}, 401, "APIG.0301"),
        ({"X-Apig-AppCode": "bad"}, 401, "APIG.0303"),
    ],
)
def test_target_rejects_missing_and_wrong_tokens_and_codes(gateway, headers, status, code):
    got_status, _, body = post(gateway, headers)
    assert (got_status, code_of(body)) == (status, code)


def test_target_rejects_unknown_key_bad_signature_and_date_skew(gateway):
    status, _, body = post(gateway, signed(gateway, key="UNKNOWNAK"))
    assert (status, code_of(body)) == (401, "APIG.0301")
    status, _, body = post(gateway, signed(gateway, secret="wrong"))
    assert (status, code_of(body)) == (401, "APIG.0301")
    skewed = signed(gateway, when=datetime.now(UTC) - timedelta(minutes=16))
    status, _, body = post(gateway, skewed)
    assert (status, code_of(body)) == (401, "APIG.0301")
    status, _, body = post(gateway, signed(gateway, "appkey1", "wrong"))
    assert (status, code_of(body)) == (401, "APIG.0303")


def test_target_locks_an_ak_after_5_consecutive_failures(target):
    url = target("--events", "1", env={"SSELOAD_TARGET_AKSK": f"{AK}:{SK}"}) + PATH
    for _ in range(5):
        assert post(url, signed(url, secret="wrong"))[0] == 401
    status, _, body = post(url, signed(url))  # right signature, but locked
    assert (status, code_of(body)) == (401, "APIG.0305")


def test_a_success_resets_the_failure_count(target):
    url = target("--events", "1", env={"SSELOAD_TARGET_AKSK": f"{AK}:{SK}"}) + PATH
    for _ in range(4):
        post(url, signed(url, secret="wrong"))
    assert post(url, signed(url))[0] == 200
    for _ in range(4):
        post(url, signed(url, secret="wrong"))
    assert post(url, signed(url))[0] == 200


def test_target_emulates_iam_tokens_and_their_expiry(target, tmp_path):
    config = tmp_path / "t.json"
    config.write_text(json.dumps({"token_ttl_s": 1.0, "events": 1}))
    base = target("--config", str(config), env={"SSELOAD_TARGET_IAM_USERS": "alice:pw"})
    status, headers, body = post(base + "/v3/auth/tokens", {"Content-Type": "application/json"},
                                 token_request_body("alice", "pw", "acct", "cn-southwest-2"))
    assert status == 201 and json.loads(body)["token"]["expires_at"].endswith("Z")
    token = headers["X-Subject-Token"]
    assert post(base + PATH, {"X-Auth-Token": token})[0] == 200
    time.sleep(1.2)
    status, _, body = post(base + PATH, {"X-Auth-Token": token})
    assert (status, code_of(body)) == (401, "APIG.0307")
    wrong = post(base + "/v3/auth/tokens", {}, token_request_body("alice", "nope", "acct", "p"))
    assert wrong[0] == 401


# --- the harness, end to end ---

def auth_scenario(method: str, **auth) -> dict:
    return {
        "auth": {"method": method, **auth},
        "stream": {"completion": "event:done"},
        "load": {"users": 2, "spawn_rate": 2, "run_time": "1s"},
        "target": {"ttfe_ms": 10, "gap_ms": 5, "events": 5},
    }


SECRETS = {
    "token": {"SSELOAD_TOKEN": "tok-5ecret-0001"},
    "aksk": {"SSELOAD_AK": "AKSECRETSCAN01", "SSELOAD_SK": "sk-5ecret-0002"},
    "app_key": {"SSELOAD_APP_KEY": "appkeyscan01", "SSELOAD_APP_SECRET": "app-5ecret-0003"},
    "app_code": {"SSELOAD_APP_CODE": "code-5ecret-0004"},
    "iam": {"SSELOAD_IAM_USER": "iamuser", "SSELOAD_IAM_PASSWORD": "pw-5ecret-0005",
            "SSELOAD_IAM_DOMAIN": "acct"},
}
#: the value that is a secret for each method (the AK and the user name are identifiers)
SECRET_VARS = {"SSELOAD_TOKEN", "SSELOAD_SK", "SSELOAD_APP_SECRET", "SSELOAD_APP_CODE", "SSELOAD_IAM_PASSWORD"}


def scan(run_dir: Path, texts: list[str], secrets: list[str]) -> list[str]:
    leaks = []
    for path in run_dir.rglob("*"):
        if path.is_file():
            data = path.read_bytes()
            leaks += [f"{path.name}: {s}" for s in secrets if s.encode() in data]
    leaks += [f"output: {s}" for s in secrets for text in texts if s in text]
    return leaks


@pytest.fixture(scope="module")
def method_runs(tmp_path_factory):
    """Each method's run with the right secrets, side by side: method -> RunResult."""
    tmp = tmp_path_factory.mktemp("methods")

    def run(method, env):
        (tmp / method).mkdir()
        return sseload_run(tmp / method, "--loglevel", "DEBUG", scenario=auth_scenario(method), env=env)

    return side_by_side(SECRETS, run, workers=len(SECRETS))  # all at once: with four, the fifth ran alone


@pytest.mark.parametrize("method", sorted(SECRETS))
def test_each_auth_method_streams_and_no_secret_is_written_anywhere(method_runs, method):
    env = SECRETS[method]
    result = method_runs[method]
    assert result.code == 0, result.stderr[-2000:]
    streams = result.streams
    assert set(streams["outcome"]) == {"ok"}
    assert result.info["auth_method"] == method
    secrets = [v for k, v in env.items() if k in SECRET_VARS]
    assert not scan(result.run_dir, [result.stdout, result.stderr], secrets)
    if method in ("aksk", "app_key"):
        assert (streams["sign_us"] > 0).all()  # signed per stream, timed apart from latency
    if method == "iam":
        fetched = streams["auth_fetch_ms"] > 0
        assert fetched.sum() == 1  # one token per process, cached


WRONG = {  # method -> (the target's and the run's secrets, the gateway's error code)
    "token": ({"SSELOAD_TARGET_TOKENS": "R1ght-5ecret", "SSELOAD_TOKEN": "Wr0ng-5ecret"}, "APIG.0301"),
    "aksk": ({"SSELOAD_TARGET_AKSK": "AK1:R1ght-5ecret", "SSELOAD_AK": "AK1", "SSELOAD_SK": "Wr0ng-5ecret"},
             "APIG.0301"),
    "app_key": ({"SSELOAD_TARGET_APP_KEYS": "K1:R1ght-5ecret", "SSELOAD_APP_KEY": "K1",
                 "SSELOAD_APP_SECRET": "Wr0ng-5ecret"}, "APIG.0303"),
    "app_code": ({"SSELOAD_TARGET_APP_CODES": "R1ght-5ecret", "SSELOAD_APP_CODE": "Wr0ng-5ecret"}, "APIG.0303"),
}


@pytest.fixture(scope="module")
def wrong_runs(tmp_path_factory):
    """Each method's 30 s run with a wrong secret, side by side: method -> (RunResult, seconds it took)."""
    tmp = tmp_path_factory.mktemp("wrong")

    def run(method, setup):
        (tmp / method).mkdir()
        scenario = auth_scenario(method)
        scenario["load"] = {"users": 1, "spawn_rate": 1, "run_time": "30s"}
        started = time.monotonic()
        result = sseload_run(tmp / method, scenario=scenario, env=setup[0])
        return result, time.monotonic() - started

    return side_by_side(WRONG, run)


@pytest.mark.parametrize("method", sorted(WRONG))
def test_wrong_credentials_are_auth_errors_and_the_run_stops_early(wrong_runs, method):
    code = WRONG[method][1]
    result, _seconds = wrong_runs[method]
    assert stopped_early(result.info, 30), "the run hammered on instead of stopping"  # (its run time is 30 s)
    assert result.code == 2
    streams = result.streams
    assert set(streams["outcome"]) == {"auth_error"}
    assert code in set(streams["error_code"])
    assert len(streams) <= 6
    assert result.info["partial"] and "failed authentication" in result.info["partial_reason"]
    assert "failed authentication" in result.stdout + result.stderr
    assert not scan(result.run_dir, [result.stdout, result.stderr], ["Wr0ng-5ecret", "R1ght-5ecret"])


def test_a_missing_secret_is_named_before_any_load(tmp_path):
    scenario = auth_scenario("aksk")
    result = sseload_run(tmp_path, "-H", "http://127.0.0.1:9", scenario=scenario,
                         env={"SSELOAD_AK": "", "SSELOAD_SK": ""})
    assert result.code == 2
    assert "SSELOAD_AK" in result.stderr and "not set" in result.stderr
    assert "Traceback" not in result.stderr


def _run_file(tmp_path: Path, path: Path):
    import subprocess
    import sys

    from tests.conftest import RunResult

    run_id = path.stem
    proc = subprocess.run(
        [sys.executable, "-m", "sseload", "run", str(path), "-t", "1s", "-u", "2", "-r", "2",
         "--results-dir", str(tmp_path / "results"), "--run-id", run_id, "--no-report"],
        capture_output=True, text=True, timeout=120, cwd=tmp_path,
    )
    return RunResult(proc, tmp_path / "results" / run_id)
