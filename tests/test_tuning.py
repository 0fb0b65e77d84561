"""The behaviour switches: read once from the environment into one object that run.json records."""

import pytest

from sseload.transport.tuning import SWITCHES, Tuning

pytestmark = pytest.mark.unit


def test_the_defaults_are_the_measured_best():
    tuning = Tuning.from_env({})
    assert (tuning.kernel_timestamps, tuning.read_window_ms, tuning.reader_nice) == (True, 1.0, -10)
    assert tuning.reader == "native" and tuning.parser == "compiled" and tuning.route_body


def test_every_switch_is_a_field_and_documented():
    assert [s.field for s in SWITCHES] == list(Tuning().to_dict())
    assert all(s.env.startswith("SSELOAD_") and s.meaning for s in SWITCHES)


def test_switches_are_read_from_the_environment():
    tuning = Tuning.from_env({"SSELOAD_READER": "python", "SSELOAD_PARSER": "python", "SSELOAD_ROUTE_BODY": "1",
                              "SSELOAD_READ_WINDOW_MS": "0.25", "SSELOAD_READER_NICE": "-5"})
    assert (tuning.reader, tuning.parser, tuning.read_window_ms, tuning.reader_nice) == ("python", "python", 0.25, -5)
    assert not tuning.route_body  # the Python event log cannot be fed by the reader thread


def test_without_kernel_timestamps_the_reader_reads_at_once_at_normal_priority():
    tuning = Tuning.from_env({"SSELOAD_KERNEL_TIMESTAMPS": "0", "SSELOAD_READ_WINDOW_MS": "5"})
    assert (tuning.kernel_timestamps, tuning.read_window_ms, tuning.reader_nice) == (False, 0.0, 0)


def test_bad_values_fall_back_with_a_warning(caplog):
    for bad in ("high", "-30", "1.5"):
        assert Tuning.from_env({"SSELOAD_READER_NICE": bad}).reader_nice == -10
    assert Tuning.from_env({"SSELOAD_READ_WINDOW_MS": "-1"}).read_window_ms == 1.0
    assert "SSELOAD_READ_WINDOW_MS='-1' is not a number from 0 to 100" in caplog.text


def test_the_docs_table_lists_every_switch_with_its_default():
    from pathlib import Path

    doc = (Path(__file__).resolve().parents[1] / "docs" / "measurement.md").read_text()
    table = doc.split("## Switches", 1)[1].split("\n## ", 1)[0]
    rows = [line.split("|")[1:3] for line in table.splitlines() if line.startswith("| `SSELOAD_")]
    assert [(env.strip(" `"), default.strip(" `")) for env, default in rows] == [(s.env, s.default) for s in SWITCHES]
