"""A disk that fills mid-run (issue 32): it is found, said once with the path, and the run stops
as partial with run.json written (from the room the run's folder held back); every stream written
before stays readable, and `sseload report` says what to do instead of a traceback. On a small
tmpfs, which needs root: the tests are skipped without it."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys

import pyarrow as pa
import pytest

import sseload
from sseload.protocol.outcomes import Outcome
from sseload.record.records import EventBuffer
from sseload.record.sink import ParquetSink
from sseload.run import room, runinfo
from tests import servers
from tests.conftest import connection_record, sseload_run, stopped_early, times_ns

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
