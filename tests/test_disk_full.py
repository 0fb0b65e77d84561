"""A disk that fills mid-run (issue 32): it is found, said once with the path, and the run stops
as partial with run.json written (from the room the run's folder held back); every stream written
before stays readable, and `sseload report` says what to do instead of a traceback. With workers the
master, which writes the files, stops the same way and counts the streams that reached it after the
disk filled. Every file written once the run is over (the report, the summaries, thresholds.xml,
Locust's CSVs) is whole or absent, and one the disk could not take is said in a sentence naming it
(exit code 2). On a small tmpfs, which needs root: the tests are skipped without it."""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
import xml.etree.ElementTree as ET

import pyarrow as pa
import pytest

import sseload
from sseload.protocol.outcomes import Outcome
from sseload.record.records import EventBuffer
from sseload.record.sink import ParquetSink
from sseload.run import room, runinfo, verdict
from sseload.views.thresholds import Verdict
from tests import servers
from tests.conftest import connection_record, sseload_reported_run, sseload_run, stopped_early, times_ns

DISK_BYTES = 2 << 20
PEAK_RSS_BOUND_MIB = 400  # the Locust process's peak RSS: an ordinary short run peaks near 190 MiB


@pytest.fixture
def small_disk(tmp_path):
    """A 2 MiB tmpfs, unmounted (and so emptied) after the test."""
    disk = tmp_path / "disk"
    disk.mkdir()
    if os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root")
    mounted = subprocess.run(["mount", "-t", "tmpfs", "-o", f"size={DISK_BYTES}", "tmpfs", str(disk)],
                             capture_output=True, text=True)
    if mounted.returncode:
        pytest.skip(f"cannot mount a tmpfs here: {mounted.stderr.strip()}")
    try:
        yield disk
    finally:
        if subprocess.run(["umount", str(disk)], capture_output=True).returncode:
            subprocess.run(["umount", "-l", str(disk)], capture_output=True)


def fill(disk) -> None:
    """Take every byte left on ``disk``."""
    with open(disk / "filler", "ab") as out:
        try:
            while True:
                out.write(b"\xff" * 65536)
                out.flush()
        except OSError:
            pass


@pytest.mark.root
def test_a_sink_whose_disk_fills_keeps_every_whole_batch_and_writes_nothing_after(small_disk):
    run_dir = small_disk / "run"
    run_dir.mkdir()
    sink = ParquetSink(run_dir)
    written = 0
    for batch in range(200):  # a batch of 20 streams of 100 events, until the disk is full
        events = EventBuffer()
        records = []
        for k in range(20):
            records.append(connection_record(batch * 100 + k + 1, 0, 10, Outcome.OK)._replace(events=100))
            events.t_ns.extend(times_ns(*range(100)))
            events.size.extend([60] * 100)
            events.server_ns.extend([0] * 100)
        sink(records, events)
        if sink.disk_full is not None:
            break
        written += 20
    assert sink.disk_full is not None and sink.streams_written == written > 0
    sink(records, events)  # after it: dropped, and counted
    sink.close()
    assert sink.streams_dropped == 40 and sink.streams_on_disk == written
    run = sseload.load(run_dir)  # the open shard, cut back to its last whole batch
    assert len(run.streams) == written and len(run.events) == 100 * written
    assert not any(p.name.endswith(".partial") for p in run_dir.iterdir())


@pytest.mark.root
def test_a_disk_that_fills_mid_run_stops_it_as_partial_with_run_json_and_everything_before_readable(
        tmp_path, small_disk, start_server):
    srv = start_server(servers.paced_sse, events=100, gap_s=0.002)
    run = sseload_run(small_disk, "-H", srv.url, "-u", "10", "-t", "60s", peak_rss=True, timeout=120)
    said = [line for line in run.stderr.splitlines() if "/ERROR/" in line or "Traceback" in line]
    assert run.code == 2, run.stderr[-3000:]  # the run stopped itself (`sseload run --help`: exit codes)
    assert len(said) == 1 and f"the disk holding {run.run_dir} is full (No space left on device)" in said[0], said
    info = run.info  # run.json, written in the room the folder held back
    assert stopped_early(info, 60)
    assert info["partial"] and [r["code"] for r in info["partial_reasons"]][0] == runinfo.DISK_FULL
    assert not (run.run_dir / room.RESERVE).exists()
    kept = sseload.load(run.run_dir)  # what was written before the disk filled: whole streams, whole events
    assert 0 < len(kept.streams) <= info["streams_recorded"]
    assert kept.streams["events"].sum() == len(kept.events) and set(kept.events["stream_id"]) <= \
        set(kept.streams["stream_id"])
    assert run.peak_rss_mib < PEAK_RSS_BOUND_MIB

    fill(small_disk)  # `sseload report` where there is no room: a sentence, then on a copy: the report
    report = subprocess.run([sys.executable, "-m", "sseload", "report", str(run.run_dir)], capture_output=True,
                            text=True, timeout=120)
    assert report.returncode == 2 and "the report could not be written in" in report.stderr, report.stderr[-2000:]
    assert "Traceback" not in report.stderr
    copy = shutil.copytree(run.run_dir, tmp_path / "copy")
    report = subprocess.run([sys.executable, "-m", "sseload", "report", str(copy)], capture_output=True, text=True,
                            timeout=120)
    assert report.returncode == 0, report.stderr[-2000:]
    assert (copy / "report.html").exists() and "its disk filled" in report.stderr  # the cut shards, named


@pytest.mark.root
def test_a_run_folder_that_cannot_hold_its_reserve_never_starts(small_disk, start_server):
    srv = start_server(servers.paced_sse)
    (small_disk / "filler").write_bytes(b"\xff" * (DISK_BYTES - 3 * runinfo.PROBE_BYTES))  # room for the probe only
    run = sseload_run(small_disk, "-H", srv.url, "-u", "1", "-t", "2s", timeout=120)
    assert run.code == 2 and "free some space" in run.stderr, run.stderr[-2000:]
    assert not srv.received  # no load


@pytest.mark.root
def test_the_reserve_is_freed_for_run_json_once_the_disk_is_full(small_disk):
    run_dir = room.hold(small_disk)
    fill(small_disk)
    with pytest.raises(OSError):
        (small_disk / "more").write_bytes(b"x" * 65536)
    runinfo.write(run_dir, {"run_id": "r", "partial": True})
    assert runinfo.read(run_dir)["partial"] and not (run_dir / room.RESERVE).exists()


@pytest.mark.unit
def test_an_arrow_stream_cut_back_to_a_whole_batch_reads_to_its_end(tmp_path):
    """What the sink relies on: an IPC stream without its end-of-stream marker reads to its last batch."""
    path = tmp_path / "x.arrows"
    schema = pa.schema([("a", pa.int64())])
    out = pa.OSFile(str(path), "wb")
    writer = pa.ipc.new_stream(out, schema)
    writer.write_table(pa.table({"a": [1, 2]}, schema=schema))
    mark = out.tell()
    writer.write_table(pa.table({"a": [3]}, schema=schema))
    out.close()
    os.truncate(path, mark + 5)  # a batch half written after it
    os.truncate(path, mark)
    with pa.ipc.open_stream(str(path)) as reader:
        assert reader.read_all().column("a").to_pylist() == [1, 2]


# --- with workers: the master writes the files ---

@pytest.mark.root
def test_a_disk_that_fills_mid_run_with_workers_stops_it_as_partial_and_counts_the_streams_that_came_after(
        small_disk, start_server):
    srv = start_server(servers.paced_sse, events=100, gap_s=0.002)
    run = sseload_run(small_disk, "-H", srv.url, "-u", "10", "-t", "60s", "--workers", "2", timeout=180)
    assert run.code == 2, run.stderr[-3000:]  # the run stopped itself (`sseload run --help`: exit codes)
    assert "Traceback" not in run.stderr
    said = [line for line in run.stderr.splitlines() if "/ERROR/" in line]
    assert len(said) == 1 and f"the disk holding {run.run_dir} is full (No space left on device)" in said[0], said
    info = run.info
    assert stopped_early(info, 60) and info["workers"] == 2 and not info["lost_workers"]
    reasons = {r["code"]: r["text"] for r in info["partial_reasons"]}
    assert info["partial"] and next(iter(reasons)) == runinfo.DISK_FULL and str(run.run_dir) in \
        reasons[runinfo.DISK_FULL]
    kept = sseload.load(run.run_dir)  # what was written before the disk filled: whole streams, whole events
    assert len(kept.streams) > 0 and kept.streams["events"].sum() == len(kept.events)
    assert set(kept.events["stream_id"]) <= set(kept.streams["stream_id"])
    # the streams that reached the master after the disk filled (the workers' open streams finished at
    # the stop, their batches in flight): recorded, counted apart, said; not "started but not recorded"
    dropped = info["streams_recorded"] - len(kept.streams)
    assert dropped > 0 and info["streams_started"] == info["streams_recorded"], info
    assert runinfo.NOT_RECORDED not in reasons
    assert reasons[runinfo.NOT_WRITTEN] == (f"{dropped} streams recorded after its disk filled but not written to "
                                            "the run's folder")
    assert "PARTIAL RUN: " in run.stdout and reasons[runinfo.NOT_WRITTEN] in run.stdout  # the console says it too


# --- the files written once the run is over: whole or absent, and said ---

def whole_or_absent(run_dir) -> list[str]:
    """The names in the run's folder, once every file written after the run that is there was found
    whole (none is left half written, nor its temporary file)."""
    there = sorted(p.name for p in run_dir.iterdir())
    assert not [n for n in there if n.endswith((".tmp", ".partial"))], there
    if "thresholds.xml" in there:
        ET.parse(run_dir / "thresholds.xml")
    for name in ("summary.json", "locust.json"):
        if name in there:
            json.loads((run_dir / name).read_text())
    if "report.html" in there:
        assert (run_dir / "report.html").read_text().rstrip().endswith("</html>")
    return there


@pytest.mark.root
def test_a_run_whose_disk_fills_writes_each_file_after_it_whole_or_not_at_all_and_says_which(small_disk,
                                                                                                start_server):
    srv = start_server(servers.paced_sse, events=100, gap_s=0.002)
    run = sseload_reported_run(small_disk, "-H", srv.url, "-u", "10", "-t", "60s",
                               scenario={"thresholds": {"min_streams": 1}}, timeout=180)
    assert run.code == 2 and "Traceback" not in run.stderr, run.stderr[-3000:]
    there = whole_or_absent(run.run_dir)
    for name in ("thresholds.xml", "locust_stats.csv", "locust.json"):  # said where missing, by its path
        assert name in there or f"{run.run_dir / name} could not be written: the disk holding it is full" in \
            run.stderr, (name, there, run.stderr[-3000:])
    if "report.html" not in there:
        assert f"the report could not be written in {run.run_dir}: the disk holding it is full" in run.stderr


@pytest.mark.root
def test_sseload_check_on_a_full_disk_says_thresholds_xml_could_not_be_written_and_exits_2(small_disk,
                                                                                          start_server):
    srv = start_server(servers.paced_sse, events=3, gap_s=0.1)  # a few streams: room to spare on the disk
    run = sseload_run(small_disk, "-H", srv.url, "-u", "2", "-t", "2s", scenario={"thresholds": {"min_streams": 1}},
                      timeout=120)
    assert run.code == 0, run.stderr[-2000:]
    (run.run_dir / "thresholds.xml").unlink()
    fill(small_disk)
    check = subprocess.run([sys.executable, "-m", "sseload", "check", str(run.run_dir)], capture_output=True,
                           text=True, timeout=120)
    assert check.returncode == verdict.BAD_INPUT == 2, check.stderr
    assert check.stderr == (f"sseload: {run.run_dir / 'thresholds.xml'} could not be written: the disk holding it is "
                            "full (No space left on device); free some space there\n")
    assert "PASS" in check.stdout  # the thresholds' table: the run itself passed
    assert "thresholds.xml" not in whole_or_absent(run.run_dir)


@pytest.mark.root
def test_the_end_of_a_run_on_a_full_disk_says_each_file_it_could_not_write_and_exits_2(small_disk, start_server,
                                                                                       capsys):
    """The end every run shares (sseload.views.report.finish: `sseload run`'s, plain Locust's) where the
    disk filled after the load: the report and thresholds.xml each said in a sentence, nothing half written."""
    from sseload.views import report

    srv = start_server(servers.paced_sse, events=3, gap_s=0.1)
    run = sseload_run(small_disk, "-H", srv.url, "-u", "2", "-t", "2s", scenario={"thresholds": {"min_streams": 1}},
                      timeout=120)
    assert run.code == 0, run.stderr[-2000:]
    (run.run_dir / "thresholds.xml").unlink()
    fill(small_disk)
    capsys.readouterr()
    assert report.finish(run.run_dir) == verdict.BAD_INPUT
    said = capsys.readouterr().err.splitlines()
    assert len(said) == 2 and re.fullmatch(re.escape(
        f"sseload: the report could not be written in {run.run_dir}: the disk holding it is full (No space left on "
        "device, at charts/") + r"\w+\.png" + re.escape("); free some space there, or copy the run's folder "
                                                         "elsewhere and run `sseload report` on the copy"), said[0])
    assert said[1] == (f"sseload: {run.run_dir / 'thresholds.xml'} could not be written: the disk holding it is full "
                       "(No space left on device); free some space there")
    there = whole_or_absent(run.run_dir)
    assert "thresholds.xml" not in there and "report.html" not in there


@pytest.mark.root
def test_a_junit_file_the_disk_cannot_take_is_said_and_leaves_neither_half_nor_temp(small_disk, capsys):
    fill(small_disk)
    judged = verdict.RunVerdict([Verdict("min_streams", 1, 5, True, ">=")])
    assert judged.exit_code == verdict.PASSED
    verdict.say(judged, small_disk / "thresholds.xml", "r")
    err = capsys.readouterr().err
    assert judged.exit_code == verdict.BAD_INPUT and err.count("\n") == 1
    assert err.startswith(f"sseload: {small_disk / 'thresholds.xml'} could not be written: the disk holding it is full")
    assert sorted(p.name for p in small_disk.iterdir()) == ["filler"]


@pytest.mark.root
def test_locusts_files_the_disk_cannot_take_are_said_once_and_leave_nothing_half_written(tmp_path, small_disk):
    made = tmp_path / "locust"  # where Locust wrote them during the run: another disk
    made.mkdir()
    for name in ("locust.json", "locust_stats.csv", "locust_stats_history.csv"):
        (made / name).write_bytes(b"x" * 600_000)
    run_dir = small_disk / "run"
    run_dir.mkdir()
    (small_disk / "filler").write_bytes(b"\xff" * (1 << 20))  # room for one of them, not all
    said = room.move_in(sorted(made.iterdir()), run_dir)
    kept = sorted(p.name for p in run_dir.iterdir())
    assert kept == ["locust.json"] and (run_dir / "locust.json").stat().st_size == 600_000
    assert said == [f"{run_dir / 'locust_stats.csv'} could not be written: the disk holding it is full (No space left "
                    "on device); free some space there; nor were locust_stats_history.csv"]


@pytest.mark.unit
def test_a_file_written_whole_replaces_the_old_at_once_and_a_failed_write_leaves_the_old_and_no_temp(tmp_path):
    path = tmp_path / "summary.json"
    room.write_whole(path, "old")
    with pytest.raises(RuntimeError), room.whole(path) as tmp:
        tmp.write_text("half")
        raise RuntimeError("the write failed halfway")
    assert path.read_text() == "old" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
    room.write_whole(path, "new")
    assert path.read_text() == "new" and sorted(p.name for p in tmp_path.iterdir()) == ["summary.json"]
