"""run.json has one writer (sseload.run.runinfo): atomic writes and a list of partial reasons."""

import json

import pytest

from sseload.run import runinfo
from sseload.run.runinfo import PartialReasons

pytestmark = pytest.mark.unit


def test_reasons_keep_their_order_and_one_per_code():
    reasons = PartialReasons()
    reasons.add(runinfo.SIGNAL, "stopped by a signal before the run time ended")
    reasons.add(runinfo.NOT_RECORDED, "3 streams started but not recorded")
    reasons.add(runinfo.SIGNAL, "again")
    assert reasons.text == "stopped by a signal before the run time ended; 3 streams started but not recorded"
    assert reasons.fields()["partial"] is True and len(reasons.fields()["partial_reasons"]) == 2
    assert PartialReasons().fields() == {"partial": False, "partial_reason": "", "partial_reasons": []}


def test_the_supervisor_names_the_signal_in_place_of_the_generic_reason(tmp_path):
    reasons = PartialReasons()
    reasons.add(runinfo.SIGNAL, "stopped by a signal before the run time ended")
    reasons.add(runinfo.NOT_RECORDED, "1 streams started but not recorded")
    runinfo.write(tmp_path, {"run_id": "x", **reasons.fields()})
    assert runinfo.add_partial_reason(tmp_path, runinfo.INTERRUPTED, "interrupted by SIGTERM",
                                      replaces=(runinfo.SIGNAL,))
    info = json.loads((tmp_path / "run.json").read_text())
    assert info["partial"] is True and info["run_id"] == "x"
    assert info["partial_reason"] == "interrupted by SIGTERM; 1 streams started but not recorded"
    assert not (tmp_path / "run.json.tmp").exists()


def test_marking_a_run_without_run_json_writes_nothing(tmp_path):
    assert not runinfo.add_partial_reason(tmp_path, runinfo.INTERRUPTED, "interrupted by SIGINT")
    assert not (tmp_path / "run.json").exists()
