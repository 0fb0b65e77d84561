"""Raw stream tuples and event arrays become the documented Parquet tables."""

from __future__ import annotations

import math

import pytest

from sseload.record.records import EVENTS_SCHEMA, STREAMS_SCHEMA, EventBuffer, StreamRecord, to_tables

pytestmark = pytest.mark.unit


def raw(**over):
    base = dict(
        stream_id=1, worker=0, user=1, t0_perf_ns=1_000_000, start_ns=10_000_000_000, scheduled_ns=0,
        connect_ns=-1, upload_ns=20_000, ttfb_ns=1_000_000, ttfe_ns=200_000_000, duration_ns=1_200_000_000,
        sign_ns=4_000, auth_fetch_ns=0, status=200, content_type="text/event-stream", charset_warning=False,
        body_bytes=85, response_bytes=700, events=0, malformed_events=0, outcome="ok", error_code="",
        error="", reused=True, retried=False,
    )
    base.update(over)
    return StreamRecord(**base)


def events_for(*streams):
    buf = EventBuffer()
    for t0, times, server in streams:
        for t, s in zip(times, server, strict=True):
            buf.t_ns.append(t0 + t)
            buf.size.append(100)
            buf.server_ns.append(s)
    return buf


def test_stream_columns_convert_ns_to_ms_and_missing_to_null():
    streams, _ = to_tables([raw(ttfe_ns=-1, connect_ns=-1, ttfb_ns=5_500_000)], EventBuffer())
    row = streams.to_pylist()[0]
    assert streams.schema == STREAMS_SCHEMA
    assert row["ttfe_ms"] is None and row["connect_ms"] is None
    assert row["ttfb_ms"] == pytest.approx(5.5)
    assert row["duration_ms"] == pytest.approx(1200.0)
    assert row["sign_us"] == pytest.approx(4.0)
    assert row["schedule_lag_ms"] is None


def test_schedule_lag_is_start_minus_scheduled():
    streams, _ = to_tables([raw(scheduled_ns=10_000_000_000 - 3_000_000)], EventBuffer())
    assert streams.column("schedule_lag_ms").to_pylist() == [pytest.approx(3.0)]


def test_events_get_seq_time_since_start_gap_and_lateness_per_stream():
    a = raw(stream_id=1, t0_perf_ns=1_000, start_ns=5_000_000_000, events=3)
    b = raw(stream_id=2, t0_perf_ns=2_000, start_ns=6_000_000_000, events=2)
    ev = events_for(
        (1_000, [200_000_000, 220_000_000, 260_000_000], [5_199_000_000, 5_219_500_000, 0]),
        (2_000, [100_000_000, 110_000_000], [0, 0]),
    )
    _, events = to_tables([a, b], ev)
    assert events.schema == EVENTS_SCHEMA
    rows = events.to_pylist()
    assert [r["stream_id"] for r in rows] == [1, 1, 1, 2, 2]
    assert [r["seq"] for r in rows] == [0, 1, 2, 0, 1]
    assert [r["t_ms"] for r in rows] == pytest.approx([200, 220, 260, 100, 110])
    assert rows[0]["gap_ms"] is None and rows[3]["gap_ms"] is None  # the first of each stream
    assert rows[1]["gap_ms"] == pytest.approx(20) and rows[4]["gap_ms"] == pytest.approx(10)
    assert rows[0]["lateness_ms"] == pytest.approx(1.0)  # received 5.200 s, sent 5.199 s
    assert rows[1]["lateness_ms"] == pytest.approx(0.5)
    assert rows[2]["lateness_ms"] is None  # no server send time
    assert not any(isinstance(r["gap_ms"], float) and math.isnan(r["gap_ms"]) for r in rows)


def test_a_batch_whose_event_count_disagrees_is_refused():
    with pytest.raises(ValueError, match="events"):
        to_tables([raw(events=2)], events_for((0, [1], [0])))


def test_empty_batch_gives_empty_tables_with_the_schema():
    streams, events = to_tables([], EventBuffer())
    assert streams.num_rows == 0 and events.num_rows == 0
    assert streams.schema == STREAMS_SCHEMA


# --- the recorder never loses a batch ---

from sseload.record.recorder import Recorder  # noqa: E402
from sseload.record.sink import ParquetSink  # noqa: E402


def test_recorder_pads_event_arrays_that_fell_out_of_step(tmp_path):
    sink = ParquetSink(tmp_path)
    rec = Recorder(sink, threaded=False)
    ev = EventBuffer()
    ev.t_ns.extend([1_000, 2_000])
    ev.size.extend([10, 10])
    ev.server_ns.append(5)  # one short, as if a parse failed between appends
    rec.add(raw(events=2, t0_perf_ns=0), ev)
    rec.close()
    assert sink.streams_written == 1 and sink.events_written == 2
    assert len(ev) == 0 and len(ev.server_ns) == 0  # the user's buffer is handed over, empty


def test_a_batch_the_sink_cannot_write_is_kept_as_json_lines(tmp_path):
    class Broken:
        run_dir = tmp_path

        def __call__(self, streams, events):
            raise OSError("disk on fire")

    rec = Recorder(Broken(), threaded=False)
    rec.add(raw(stream_id=42), EventBuffer())
    rec.flush(wait=True)
    assert isinstance(rec.write_error, OSError)
    kept = (tmp_path / "streams-unwritten.jsonl").read_text()
    assert '"stream_id": 42' in kept


@pytest.mark.parametrize("background", [False, True], ids=["in-line", "shards-on-a-thread"])
def test_the_sink_coalesces_small_batches_and_rotates_shards_without_losing_a_row(tmp_path, background):
    """background: the master's sink, whose finished shards become Parquet on a thread of their own."""
    import pyarrow.parquet as pq

    from sseload.views.loading import _read

    sink = ParquetSink(tmp_path, background=background)
    sink.ROW_GROUP_EVENTS, sink.ROW_GROUP_STREAMS, sink.ROW_GROUPS_PER_SHARD = 6, 1000, 2
    stream_id = 0
    for _batch in range(44):  # 44 batches of 2 streams with 2 events each
        streams, ev = [], EventBuffer()
        for _ in range(2):
            stream_id += 1
            streams.append(raw(stream_id=stream_id, events=2, t0_perf_ns=0))
            ev.t_ns.extend([1_000, 2_000])
            ev.size.extend([10, 10])
            ev.server_ns.extend([0, 0])
        sink(streams, ev)
    sink.close()
    shards = sorted(tmp_path.glob("events*.parquet"))
    assert len(shards) == 11  # 44 batches -> 22 row groups of 8 events -> 11 shards of 2
    assert all(pq.ParquetFile(p).metadata.num_row_groups <= 2 for p in shards)
    streams_df, events_df = _read(tmp_path, "streams"), _read(tmp_path, "events")
    assert list(streams_df["stream_id"]) == list(range(1, 89))  # every row, -10 after -9
    assert len(events_df) == 176 and events_df.groupby("stream_id").size().eq(2).all()
    assert sink.streams_on_disk == sink.streams_written == 88 and not list(tmp_path.glob("*.arrows"))


def test_batches_are_written_by_a_nice_thread_and_the_last_one_by_the_caller(tmp_path):
    import os
    import threading

    from sseload.record.recorder import WRITER_NICE

    seen = []

    def sink(streams, events):
        tid = threading.get_native_id()
        seen.append((tid, os.getpriority(os.PRIO_PROCESS, tid)))

    rec = Recorder(sink)
    rec.add(raw(stream_id=1), EventBuffer())
    rec.flush()  # during the run: the writer thread
    rec.add(raw(stream_id=2), EventBuffer())
    rec.flush(wait=True)  # the run's end: waits for the thread, then writes here
    rec.close()
    me = threading.get_native_id()
    assert seen[0][0] != me and seen[0][1] == WRITER_NICE
    assert seen[1] == (me, os.getpriority(os.PRIO_PROCESS, me))


def test_a_flush_racing_the_flush_loop_loses_nothing(tmp_path):
    """The flush loop and the run's end flushing at once: every stream reaches a closed file."""
    import time

    import gevent

    from sseload.views.results import load

    class SlowSink(ParquetSink):
        def __call__(self, streams, events):
            time.sleep(0.2)  # on the writer thread
            super().__call__(streams, events)

    sink = SlowSink(tmp_path)
    rec = Recorder(sink)
    rec.add(raw(stream_id=1), EventBuffer())
    rec.flush()  # batch 1 on the writer thread, slow
    rec.add(raw(stream_id=2), EventBuffer())
    loop = gevent.spawn(rec.flush)  # the flush loop, waiting for batch 1 first
    gevent.sleep(0)
    rec.close_sink()  # the run's end: also waits for batch 1, then must wait for batch 2 too
    loop.join()
    rec.close()
    assert sink.streams_on_disk == 2
    (tmp_path / "run.json").write_text("{}")
    assert sorted(load(tmp_path, events=False).streams["stream_id"]) == [1, 2]


def test_a_broken_parquet_shard_is_named_and_the_rest_recovered(tmp_path):
    from sseload.views.results import ResultsError, load

    sink = ParquetSink(tmp_path)
    sink([raw(stream_id=1)], EventBuffer())
    sink.close()
    (tmp_path / "run.json").write_text("{}")
    (tmp_path / "streams-2.parquet").write_bytes(b"PAR1")  # not a Parquet file
    with pytest.raises(ResultsError, match=r"streams-2\.parquet is not a complete Parquet file"):
        load(tmp_path, events=False, recover=False)
    run = load(tmp_path, events=False)  # recovered: every complete shard's rows, the broken one named
    assert list(run.streams["stream_id"]) == [1]
    assert run.cut == ["streams-2.parquet is not a complete Parquet file: its rows are lost, the other files' rows "
                       "are here"]


def batch(first_id: int, n: int) -> tuple[list, EventBuffer]:
    streams, ev = [], EventBuffer()
    for sid in range(first_id, first_id + n):
        streams.append(raw(stream_id=sid, events=2, t0_perf_ns=0))
        ev.t_ns.extend([1_000, 2_000])
        ev.size.extend([10, 10])
        ev.server_ns.extend([0, 0])
    return streams, ev


def test_every_batch_written_survives_a_kill_and_a_half_written_one_costs_only_itself(tmp_path):
    """The run killed mid-shard: the open shard (an IPC stream) reads up to its last whole batch."""
    from sseload.views.results import ResultsError, load

    sink = ParquetSink(tmp_path)
    sink.ROW_GROUP_EVENTS, sink.ROW_GROUP_STREAMS, sink.ROW_GROUPS_PER_SHARD = 1000, 3, 1
    sink(*batch(1, 3))  # shard 1: one row group of 3 streams: full
    sink(*batch(4, 2))  # shard 2 opens: shard 1 becomes Parquet
    sink(*batch(6, 1))
    (tmp_path / "run.json").write_text("{}")
    # killed here: never closed. Shard 1 is Parquet; shard 2 is an IPC stream of 3 streams, 2 batches
    assert sorted(p.name for p in tmp_path.iterdir()) == [
        "events-2.arrows", "events.parquet", "run.json", "streams-2.arrows", "streams.parquet"]
    run = load(tmp_path)
    assert list(run.streams["stream_id"]) == [1, 2, 3, 4, 5, 6]
    assert len(run.events) == 12
    assert run.cut[0] == ("streams-2.arrows is a shard still open (the run is going on, was killed, or its disk "
                          "filled): its 3 rows written so far are here")
    with pytest.raises(ResultsError, match="cut off while writing it"):
        load(tmp_path, recover=False)
    events = tmp_path / "events-2.arrows"
    events.write_bytes(events.read_bytes()[:-40])  # the last batch half on disk
    run = load(tmp_path)
    assert len(run.events) == 6 + 4  # shard 1's, and the first whole batch of shard 2
    assert "a batch half written after them is not" in run.cut[1]


def test_the_shards_become_parquet_at_the_close_and_nothing_else_is_left(tmp_path):
    sink = ParquetSink(tmp_path)
    sink(*batch(1, 3))
    sink.close()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["events.parquet", "streams.parquet"]
    assert sink.streams_on_disk == 3


def test_the_events_file_keeps_dictionaries_only_for_columns_whose_values_repeat(tmp_path):
    """Times, gaps and lateness are nearly all distinct: a dictionary there cost time and bytes."""
    import pyarrow.parquet as pq

    sink = ParquetSink(tmp_path)
    streams, ev = [], EventBuffer()
    for sid in range(1, 201):
        streams.append(raw(stream_id=sid, events=5, t0_perf_ns=0))
        ev.t_ns.extend([1_000_003 * (sid + k) for k in range(5)])
        ev.size.extend([90] * 5)
        ev.server_ns.extend([0] * 5)
    sink(streams, ev)
    sink.close()
    meta = pq.ParquetFile(tmp_path / "events.parquet").metadata.row_group(0)
    dictionary = {meta.column(i).path_in_schema: any("DICTIONARY" in e for e in meta.column(i).encodings)
                  for i in range(meta.num_columns)}
    assert dictionary == {"stream_id": True, "seq": True, "t_ms": False, "gap_ms": False, "bytes": True,
                          "lateness_ms": False, "output": False, "answer": False, "completion_tokens": False,
                          "tokens": False}


def test_a_buffered_stream_is_one_of_three_or_more_events_all_in_one_read():
    import pyarrow as pa

    from sseload.record.records import buffered_streams

    events = pa.table({"stream_id": [1, 1, 1, 2, 2, 3, 3, 3, 4, 4, 4],
                       "t_ms": [5.0, 5.0, 5.0, 7.0, 7.0, 1.0, 1.0, 2.0, 9.0, 9.0, 9.0]})
    assert buffered_streams(events) == 2  # 1 and 4; 2 has too few events to tell; 3 moved
    assert buffered_streams(events.slice(0, 0)) == 0


class OpenPlainStream:
    """A connection as the recorder asks it for an open plain stream's events (SSEConnection.spill_events)."""

    def __init__(self, log, stream_id: int, t0_perf_ns: int, start_ns: int) -> None:
        self.log, self.facts = log, (stream_id, t0_perf_ns, start_ns)

    def spill_events(self, more_than: int):
        return (self.log.spill(), None, *self.facts) if self.log.held > more_than else None


@pytest.mark.parametrize("log_class", ["python", "compiled"])
def test_a_long_stream_spilled_at_flushes_is_written_as_the_same_rows_as_a_stream_kept_whole(tmp_path, log_class):
    """Its parts go out with the batches of other streams, apart; read back by stream, the rows (seq, times,
    gaps across the parts' seams, lateness) are those of the stream written whole, and its count is all."""
    import pyarrow.parquet as pq

    from sseload.protocol.sse import EventLog, PyEventLog
    from sseload.record import recorder as recorder_module
    from sseload.record.recorder import Recorder
    from sseload.record.sink import ParquetSink

    cls = PyEventLog if log_class == "python" else EventLog
    if log_class == "compiled" and cls is PyEventLog:
        pytest.skip("sseload._sse is not built")
    spill_at = recorder_module.SPILL_EVENTS
    t0, start = 5_000_000, 20_000_000_000

    def feed(log, k: int) -> None:  # read k: 1,000 events at (k + 1) ms, each sent 0.5 ms before
        sent = start + (k + 1) * 1_000_000 - 500_000
        log.feed(b"".join(b"data: t_send_ns=%d\n\n" % sent for _ in range(1000)), t0 + (k + 1) * 1_000_000)

    def recorded(run_dir, spill: bool):
        log = cls(truth_key=b"t_send_ns=")
        run_dir.mkdir()
        rec = Recorder(ParquetSink(run_dir), threaded=False)
        conn = OpenPlainStream(log, 7, t0, start)
        if spill:
            rec.stream_opened(conn)
        other = 100
        for k in range(3 * spill_at // 1000 + 2):
            feed(log, k)
            rec.add(raw(stream_id=(other := other + 1), t0_perf_ns=0, events=0), EventBuffer())  # others end
            if k % 5 == 4:
                rec.flush(wait=True)
        held = EventBuffer()
        held.extend(log)
        rec.add(raw(stream_id=7, t0_perf_ns=t0, start_ns=start, events=len(log)), held, key=conn)
        rec.close()
        assert rec.events_recorded == len(log)
        return log, rec, pq.read_table(run_dir / "events.parquet")

    whole_log, _, whole = recorded(tmp_path / "whole", spill=False)
    log, rec, parts = recorded(tmp_path / "spilled", spill=True)
    assert log.spilled > 0 and rec.events_spilled == log.spilled and whole_log.spilled == 0
    assert parts.num_rows == whole.num_rows == len(log)
    mine = parts.filter(parts.column("stream_id").to_numpy() == 7)
    assert mine.to_pylist() == whole.to_pylist()
    assert mine.column("seq").to_pylist() == list(range(len(log)))
    assert mine.column("lateness_ms").to_pylist() == [0.5] * len(log)


def test_a_stream_whose_events_came_in_parts_is_no_buffered_stream_in_the_batch_of_its_last():
    from sseload.record.records import buffered_streams

    ev = EventBuffer()
    ev.t_ns.extend([9] * 6)
    ev.size.extend([1] * 6)
    ev.server_ns.extend([0] * 6)
    ev.parts.extend((1, 0, 0, 0, -1, 3))  # stream 1: all three of its events, in one read
    ev.parts.extend((2, 0, 0, 500, 8, 3))  # stream 2: its last three of 503, the rest written before
    streams, events = to_tables([raw(stream_id=1, t0_perf_ns=0, events=3), raw(stream_id=2, t0_perf_ns=0,
                                                                                events=503)], ev)
    assert buffered_streams(events) == 2 and buffered_streams(events, streams) == 1
    assert events.column("seq").to_pylist() == [0, 1, 2, 500, 501, 502]
    assert events.column("gap_ms").to_pylist() == [None, 0.0, 0.0, 1e-6, 0.0, 0.0]
