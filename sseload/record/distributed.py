"""Locust master/worker mode: workers ship finished streams to the master, which writes them.

No shared filesystem: a worker converts each batch to Arrow IPC bytes on its writer thread
and sends them with Locust's custom messages; the master appends them to the one dataset.
A worker reports its totals when its users have stopped (before Locust's ``client_stopped``),
so the master knows whether every worker's last batch arrived; a worker that never reports is
named in run.json, which is then marked partial.

Every message a worker sends here is signed with the run key, and the master takes only what
is (sseload.record.runkey).
"""

from __future__ import annotations

import logging
from collections import deque

import pyarrow as pa

from sseload.record.records import EventBuffer, StreamRecord, to_tables
from sseload.record.runkey import MessageGate, RunKey

log = logging.getLogger("sseload.record.distributed")

BATCH = "sseload_batch"
DONE = "sseload_done"
REPORT = "sseload_report"  # the live numbers a worker adds to Locust's stats report (data["sseload"])


def _ipc(table: pa.Table) -> bytes:
    sink = pa.BufferOutputStream()
    with pa.ipc.new_stream(sink, table.schema) as writer:
        writer.write_table(table)
    return sink.getvalue().to_pybytes()


def _table(payload: bytes) -> pa.Table:
    return pa.ipc.open_stream(pa.py_buffer(payload)).read_all()


class WorkerSink:
    """Converts on the writer thread; the greenlet sends (zmq sockets are not thread-safe)."""

    def __init__(self, runner, key: RunKey, send_time_ns: int = 1) -> None:
        self.runner = runner
        self.key = key  # each batch is signed on the writer thread too, off the greenlet
        self.send_time_ns = send_time_ns  # the unit of the services' send times
        self._outbox: deque[dict] = deque()
        _ipc(pa.table({"x": [1]}))  # pay Arrow IPC's first-use cost now, not on the writer thread mid-run

    def __call__(self, streams: list[StreamRecord], events: EventBuffer) -> None:
        streams_table, events_table = to_tables(streams, events, self.send_time_ns)
        batch = {"streams": _ipc(streams_table), "events": _ipc(events_table),
                 "n_streams": streams_table.num_rows, "n_events": events_table.num_rows}
        self._outbox.append(self.key.sign(BATCH, self.runner.client_id, batch))

    def drain(self) -> None:
        while self._outbox:
            payload = self._outbox.popleft()
            self.runner.send_message(BATCH, payload)


class MasterCollector:
    """Receives batches and final reports from workers.

    Locust's master handles every worker's messages, heartbeats included, on one greenlet. A batch
    is appended there to the open shard's Arrow IPC files (a cheap copy); turning a finished shard
    into Parquet (seconds for millions of events) runs on the sink's own thread (ParquetSink
    ``background=True``), so the greenlet never waits on it. The appends stay on the greenlet: on a
    thread they would contend with it for the GIL on every batch and delay heartbeat answers
    (bench/RESULTS.md, master_ingest_bench.py).
    """

    def __init__(self, parquet_sink, key: RunKey) -> None:
        self.sink = parquet_sink
        self.gate = MessageGate(key)  # what is not signed with the run key is refused before anything else
        self.reports: dict[str, dict] = {}  # worker node id -> its final report
        self.seen_workers: set[str] = set()
        self.streams_by_worker: dict[str, int] = {}  # what arrived, whether or not a final report follows
        self.events_received = 0  # of every batch admitted: written, or (once the disk is full) dropped
        self.outcomes: dict[str, int] = {}  # of every stream written, the lost workers' included
        self.on_disk_full = None  # told once when the sink finds the disk full (sseload.run.master)

    def on_batch(self, environment, msg, **_kw) -> None:
        if not self.gate.admit(BATCH, msg.node_id, msg.data):
            return
        self.seen_workers.add(msg.node_id)
        data = msg.data
        streams, events = _table(data["streams"]), _table(data["events"])
        self.sink.write_tables(streams, events)  # (once the disk is full: counted in the sink's streams_dropped)
        full = getattr(self.sink, "disk_full", None)
        if full is not None and self.on_disk_full is not None:
            tell, self.on_disk_full = self.on_disk_full, None
            tell(full)
        node = msg.node_id
        self.streams_by_worker[node] = self.streams_by_worker.get(node, 0) + streams.num_rows
        self.events_received += events.num_rows
        for item in streams.column("outcome").value_counts().to_pylist():
            self.outcomes[item["values"]] = self.outcomes.get(item["values"], 0) + item["counts"]

    def close(self) -> None:
        """Every batch in the files and the files closed (waiting for the sink's thread cooperatively)."""
        self.sink.close()

    def on_done(self, environment, msg, **_kw) -> None:
        if not self.gate.admit(DONE, msg.node_id, msg.data):
            return
        self.seen_workers.add(msg.node_id)
        self.reports[msg.node_id] = msg.data

    def lost_workers(self, environment) -> list[str]:
        runner = environment.runner
        known = set(self.seen_workers)
        known.update(getattr(runner, "worker_indexes", {}).keys())
        return sorted(known - set(self.reports))

    @property
    def streams_received(self) -> int:
        """Every stream the workers recorded and sent: in the files, or dropped once the disk was full."""
        return sum(self.streams_by_worker.values())

    def streams_started(self, lost: list[str]) -> int:
        """Streams the workers started: as each reported, and for a lost worker what arrived of it
        (what it had open or unsent when it died is unknown, and said so in run.json)."""
        return (sum(r["streams_started"] for r in self.reports.values())
                + sum(self.streams_by_worker.get(w, 0) for w in lost))
