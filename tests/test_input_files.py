"""Every file a scenario names is checked before it is read: a regular file (a FIFO would hang the
read, /dev/zero never end it), readable, no larger than what it is for; and a body file that every
stream would skip as too large is never read. A mistake is exit 2 and one sentence naming the
setting and the path; never a hang, a MemoryError or a traceback."""

from __future__ import annotations

import argparse
import os

import pytest

from sseload.scenario import bodies, files
from sseload.scenario.load import load, select
from sseload.scenario.model import MAX_SENT_BODY_BYTES, Body, ScenarioError
from tests.conftest import sseload_run, write_scenario


def request_flags(**given) -> argparse.Namespace:
    return argparse.Namespace(**{"path": None, "method": None, "header": None, "body": None, "body_file": None,
                                 **given})


@pytest.fixture
def fifo(tmp_path):
    path = tmp_path / "pipe"
    os.mkfifo(path)
    return path


def sparse(path, size: int):
    """A file of ``size`` bytes that takes no disk (nothing written)."""
    with open(path, "wb") as out:
        out.truncate(size)
    return path


# --- the checks, file by file ---

@pytest.mark.unit
@pytest.mark.parametrize("name, said", [
    ("/dev/zero", "is a device"),
    ("pipe", "is a FIFO"),
    ("folder", "is a folder"),
    ("missing", "cannot be read: there is no such file"),
])
def test_a_body_file_that_is_not_a_regular_file_is_refused_unread(tmp_path, fifo, name, said):
    (tmp_path / "folder").mkdir()
    path = name if name.startswith("/") else str(tmp_path / name)
    with pytest.raises(ScenarioError) as err:
        select(None, "http://127.0.0.1:9/", request_flags(body_file=path))
    assert str(err.value).startswith(f"[body] file (--body-file) {path!r} {said}") and "\n" not in str(err.value)


@pytest.mark.unit
@pytest.mark.skipif(os.geteuid() == 0, reason="root reads any file")
def test_an_unreadable_body_file_is_refused(tmp_path):
    path = tmp_path / "secret"
    path.write_text("x")
    path.chmod(0)
    with pytest.raises(ScenarioError, match="cannot be read: Permission denied"):
        select(None, "http://127.0.0.1:9/", request_flags(body_file=str(path)))


@pytest.mark.unit
def test_a_body_file_over_the_gateway_limit_that_is_skipped_is_never_read(tmp_path, monkeypatch):
    big = sparse(tmp_path / "big.bin", 2 << 30)  # 2 GiB: every stream is skipped as too_large
    monkeypatch.setattr(files, "read_bytes", lambda *a, **k: pytest.fail("the skipped body file was read"))
    scenario, _ = select(None, "http://127.0.0.1:9/", request_flags(body_file=str(big)))
    assert bodies.bodies(scenario.body, None, "POST", skip_over=scenario.gateway.max_body_bytes) == [2 << 30]


@pytest.mark.unit
def test_a_body_file_too_large_to_send_is_refused_before_it_is_read(tmp_path):
    big = sparse(tmp_path / "big.bin", MAX_SENT_BODY_BYTES + 1)
    path = write_scenario(tmp_path / "send.toml", {"body": {"file": "big.bin", "over_limit": "send"}})
    with pytest.raises(ScenarioError, match="too large to send"):
        select(str(path), "http://127.0.0.1:9/")
    assert big.stat().st_size == MAX_SENT_BODY_BYTES + 1


@pytest.mark.unit
def test_a_body_file_within_the_limit_is_sent_as_it_is(tmp_path):
    (tmp_path / "body.json").write_bytes(b'{"a": 1}')
    path = write_scenario(tmp_path / "s.toml", {"body": {"file": "body.json"}})
    scenario, _ = select(str(path), "http://127.0.0.1:9/")
    assert bodies.bodies(scenario.body, tmp_path, "POST", scenario.gateway.max_body_bytes) == [b'{"a": 1}']


@pytest.mark.unit
def test_a_dataset_that_is_a_fifo_is_refused_and_one_is_read_a_line_at_a_time(tmp_path, fifo):
    with pytest.raises(ScenarioError, match="is a FIFO"):
        select(str(write_scenario(tmp_path / "s.toml", {"body": {"dataset": "pipe"}})), "http://127.0.0.1:9/")
    (tmp_path / "prompts.jsonl").write_text('"one"\n\n"two"\n')
    spec = Body(dataset="prompts.jsonl")
    assert len(bodies.dataset_bodies(spec, tmp_path)) == 2
    (tmp_path / "prompts.jsonl").write_bytes(b'"one"\n\xff\xfe\n')
    with pytest.raises(ScenarioError, match="line 2 is not UTF-8 text"):
        bodies.dataset_bodies(spec, tmp_path)


@pytest.mark.unit
@pytest.mark.parametrize("key", ["tokenizer", "ca_bundle"])
def test_a_tokenizer_or_ca_bundle_that_is_a_fifo_is_refused(tmp_path, fifo, key):
    path = write_scenario(tmp_path / "s.toml", {"stream": {key: str(fifo)}})
    with pytest.raises(ScenarioError, match=f"\\[stream\\] {key} .* is a FIFO"):
        select(str(path), "http://127.0.0.1:9/")


@pytest.mark.unit
def test_a_scenario_file_that_is_binary_a_fifo_or_huge_is_refused_with_a_sentence(tmp_path, fifo):
    binary = tmp_path / "binary.toml"
    binary.write_bytes(b"\x7fELF\x02\x01\x01\x00\xff\xfe")
    with pytest.raises(ScenarioError, match="is not UTF-8 text"):
        load(binary)
    with pytest.raises(ScenarioError, match="is a FIFO"):
        load(fifo)
    with pytest.raises(ScenarioError, match="more than the 16,777,216 it may be"):
        load(sparse(tmp_path / "huge.toml", files.MOST_SCENARIO_BYTES + 1))


@pytest.mark.unit
def test_a_file_that_grows_while_read_is_never_read_past_its_limit(tmp_path):
    path = tmp_path / "f"
    path.write_bytes(b"x" * 10)
    assert files.read_bytes(path, "f", 10) == b"x" * 10
    with pytest.raises(ScenarioError, match="is 11 bytes, more than the 10 it may be"):
        path.write_bytes(b"x" * 11)
        files.read_bytes(path, "f", 10)


# --- end to end: `sseload run` never reads, nor waits on, what is not a file ---

@pytest.mark.parametrize("body_file, said", [("/dev/zero", "is a device"), ("pipe", "is a FIFO")])
def test_sseload_run_refuses_a_body_file_that_never_ends_or_never_comes_at_once(tmp_path, fifo, body_file, said):
    result = sseload_run(tmp_path, "-H", "http://127.0.0.1:9/", "--body-file", body_file, timeout=60)  # the bound
    assert result.code == 2 and said in result.stderr and result.stderr.count("\n") == 1, result.stderr
    assert "Traceback" not in result.stderr and "MemoryError" not in result.stderr


def test_sseload_run_refuses_a_binary_scenario_file_with_exit_2(tmp_path):
    (tmp_path / "binary.toml").write_bytes(bytes(range(256)))
    result = sseload_run(tmp_path, "binary.toml", timeout=60)
    assert result.code == 2 and "is not UTF-8 text" in result.stderr and "Traceback" not in result.stderr
