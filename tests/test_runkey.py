"""The run key: a master takes a worker's message only when it is signed with the run's key, as
that type of message from that sender, and not seen before (sseload.record.runkey)."""

from __future__ import annotations

import logging
from types import SimpleNamespace

import msgpack
import pytest

from sseload.protocol.outcomes import Outcome
from sseload.record.distributed import BATCH, DONE, REPORT
from sseload.record.runkey import RUN_KEY_ENV, SEQUENCE, SIGNATURE, MessageGate, RunKey, RunKeyError
from sseload.views.live import LiveStats

SECRET = "0123456789abcdef" * 4
NODE = "loadhost_4f1c"


def over_the_wire(kind: str, data: dict, node: str = NODE) -> SimpleNamespace:
    """What the master gets: the message through msgpack as Locust's Message.serialize and
    unserialize use it (locust/rpc/protocol.py; importing Locust here would monkey-patch pytest)."""
    kind, data, node = msgpack.loads(msgpack.dumps((kind, data, node)), raw=False, strict_map_key=False)
    return SimpleNamespace(type=kind, data=data, node_id=node)


def batch() -> dict:
    return {"streams": b"\x00arrow-ipc-streams" * 1000, "events": b"\x01arrow-ipc-events" * 3000,
            "n_streams": 12, "n_events": 340}


def final_report() -> dict:
    """A worker's final report, with what msgpack changes on the way: a StrEnum key, tuples."""
    return {"streams_started": 12, "streams_recorded": 12, "events_recorded": 340,
            "outcomes": {Outcome.OK: 11, Outcome.CUTOFF: 1},
            "health": {"loop_lag_p99_ms": 0.25, "reader": "c", "skewed": False, "skew_reasons": [],
                       "cpu_quota_cores": None, "nan": float("nan")},
            "health_seconds": [(1, 0.5, None), (2, 0.25, 3)], "partial_reasons": []}


@pytest.mark.parametrize("kind, data", [(BATCH, batch()), (DONE, final_report()),
                                        (REPORT, LiveStats(reports=True).take_report(3))])
def test_a_message_signed_with_the_run_key_is_taken_after_lockusts_wire(kind, data):
    msg = over_the_wire(kind, RunKey(SECRET).sign(kind, NODE, data))
    assert MessageGate(RunKey(SECRET)).admit(kind, msg.node_id, msg.data)


def tampered() -> dict:
    good = RunKey(SECRET).sign(BATCH, NODE, batch())
    streams = bytearray(good["streams"])
    streams[-1] ^= 1
    return {
        "unsigned": batch(),
        "signed with another key": RunKey("another-key-of-32-characters-xx").sign(BATCH, NODE, batch()),
        "a byte of its streams changed": {**good, "streams": bytes(streams)},
        "its stream count changed": {**good, "n_streams": 4441},
        "its message number changed": {**good, SEQUENCE: good[SEQUENCE] + 1},
        "its signature cut": {**good, SIGNATURE: good[SIGNATURE][:-2]},
        "its signature not text": {**good, SIGNATURE: 7},
        "not a map": [good],
    }


@pytest.mark.parametrize("how", list(tampered()))
def test_a_batch_not_signed_with_the_run_key_as_sent_is_refused(how):
    msg = over_the_wire(BATCH, tampered()[how])
    gate = MessageGate(RunKey(SECRET))
    assert not gate.admit(BATCH, msg.node_id, msg.data)
    assert gate.refused == {NODE: 1}


def test_a_signed_message_passes_for_no_other_type_or_sender():
    key = RunKey(SECRET)
    signed_batch = key.sign(BATCH, NODE, batch())
    signed_report = key.sign(REPORT, NODE, LiveStats(reports=True).take_report(3))
    gate = MessageGate(RunKey(SECRET))
    assert not gate.admit(DONE, NODE, signed_batch)  # a batch replayed as the final report
    assert not gate.admit(DONE, NODE, signed_report)
    assert not gate.admit(BATCH, "otherhost_99", signed_batch)  # one worker's batch as another's
    assert gate.refused == {NODE: 2, "otherhost_99": 1}


def test_a_message_repeated_is_refused_and_one_out_of_order_is_not():
    key, gate = RunKey(SECRET), MessageGate(RunKey(SECRET))
    first, second = key.sign(BATCH, NODE, batch()), key.sign(REPORT, NODE, {"active": 1})
    assert gate.admit(REPORT, NODE, second) and gate.admit(BATCH, NODE, first)  # greenlets may reorder sends
    assert not gate.admit(BATCH, NODE, first)
    assert gate.refused == {NODE: 1}


def test_refusals_are_logged_once_per_sender_and_counted_in_the_partial_reason(caplog):
    gate = MessageGate(RunKey(SECRET))
    with caplog.at_level(logging.ERROR, logger="sseload"):
        for node in ("intruder_1", "intruder_1", "intruder_1", "intruder_2"):
            gate.admit(BATCH, node, batch())
    assert [r.getMessage().count("refused a sseload_batch message") for r in caplog.records] == [1, 1]
    assert gate.refused_messages == 4
    reason = gate.partial_reason()
    assert reason.startswith("4 message(s) from 2 sender(s) (intruder_1, intruder_2) were refused")
    assert RUN_KEY_ENV in reason and SECRET not in reason
    assert MessageGate(RunKey(SECRET)).partial_reason() == ""


def test_the_run_key_comes_from_the_environment_or_a_sentence_says_how_to_set_it():
    assert RunKey.from_env("worker", {RUN_KEY_ENV: SECRET}).sign(DONE, NODE, {})[SIGNATURE]
    with pytest.raises(RunKeyError) as missing:
        RunKey.from_env("master", {})
    assert f"{RUN_KEY_ENV} (the run key) is not set" in str(missing.value)
    assert f"export {RUN_KEY_ENV}=" in str(missing.value) and "docs/workers.md" in str(missing.value)
    with pytest.raises(RunKeyError, match="fewer than 16"):
        RunKey.from_env("worker", {RUN_KEY_ENV: "short"})
    assert SECRET not in repr(RunKey(SECRET))
