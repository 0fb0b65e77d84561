"""The Parquet sink: batches of stream records and events become ``streams*.parquet`` and ``events*.parquet``.

The recorder (sseload.record.recorder) hands it a batch about every second; it appends each to the
open shard, an Arrow IPC stream, at once, and turns a shard into Parquet when it closes. The layout
of the files is docs/results-format.md.
"""

from __future__ import annotations

import contextlib
import errno
import os
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from sseload.record.records import (
    EVENTS_SCHEMA,
    OPEN_SHARD_SUFFIX,
    STREAMS_SCHEMA,
    EventBuffer,
    StreamRecord,
    buffered_streams,
    to_tables,
)

# Dictionary encoding only where an event's values repeat. On the float columns (times, gaps,
# lateness: nearly all distinct) Parquet built a dictionary per column chunk and gave it up,
# which cost time and bytes for nothing (bench/RESULTS.md, recorder_bench.py).
EVENTS_DICTIONARY_COLUMNS = ["stream_id", "seq", "bytes"]


#: The open shard is an Arrow IPC stream (``streams.arrows``): each batch is on disk once written,
#: and a file cut off mid-write (the run killed) still reads up to its last whole batch. A Parquet
#: file is unreadable without its footer, written only at its close. Uncompressed: cheaper to write
#: and read back than lz4, for more bytes on disk until the shard closes (bench/RESULTS.md,
#: recorder_bench.py).
IPC_OPTIONS = pa.ipc.IpcWriteOptions(compression=None)


def is_disk_full(err: BaseException) -> bool:
    """A write that found no room: the disk (or the user's quota) is full."""
    return isinstance(err, OSError) and err.errno in (errno.ENOSPC, errno.EDQUOT)


class ParquetSink:
    """Writes batches to ``streams.parquet`` and ``events.parquet`` (then ``-2``, ``-3``, ... shards).

    Batches arrive every second or so. Each goes at once to the open shard, an Arrow IPC stream
    (``streams.arrows``, ``events.arrows``), so whatever was written survives the run being
    killed (``sseload.views.results.load`` reads a cut stream up to its last whole batch). A shard is
    turned into Parquet when it closes: at the run's end, or once it holds ``ROW_GROUPS_PER_SHARD``
    row groups. Batches are coalesced there into row groups of at least ``ROW_GROUP_EVENTS``
    events (or ``ROW_GROUP_STREAMS`` streams): a Parquet writer keeps every row group's metadata
    in memory until the file closes (one-second row groups would grow a long soak's memory that
    way alone). Memory stays flat however long the run,
    readers get sensible row groups, and converting holds one row group at a time.
    """

    ROW_GROUP_EVENTS = 131_072
    ROW_GROUP_STREAMS = 16_384
    ROW_GROUPS_PER_SHARD = 16  # an open shard holds at most ~2.1 M events (~95 MB as IPC) before Parquet

    def __init__(self, run_dir: Path, send_time_ns: int = 1, background: bool = False) -> None:
        self.run_dir = run_dir
        # background: finished shards become Parquet on a thread of their own (the master's: its
        # greenlet also answers the workers' heartbeats); close() waits for them cooperatively
        self.background = background
        self._pool = None
        self._converting: list = []
        self.send_time_ns = send_time_ns  # the unit of the services' send times
        self._writers: dict[str, pa.ipc.RecordBatchStreamWriter] | None = None
        self._files: dict[str, pa.NativeFile] = {}  # the open shard's files, under its writers
        self._marks: dict[str, int] = {}  # where each file ended after its last whole batch
        self.disk_full: OSError | None = None  # the write that found the disk full: nothing is written after it
        self.streams_dropped = 0  # streams handed over once the disk was full: not in the files
        self._shard = 0
        self._row_groups = 0  # row groups the open shard will have as Parquet
        self._group_streams = self._group_events = 0  # the row group being filled
        self.streams_written = 0  # accepted; on disk once close() returns
        self.events_written = 0
        self.streams_on_disk = 0  # in Parquet files closed so far: what a reader of the run will find
        self._shard_streams = 0
        self.buffered_streams = 0  # written streams whose every event came in one read (run.json)

    def _path(self, stem: str, suffix: str, shard: int | None = None) -> Path:
        shard = self._shard if shard is None else shard
        return self.run_dir / f"{stem}{'' if shard == 1 else f'-{shard}'}{suffix}"

    def _open(self) -> None:
        """Files open lazily; after close() (a test stopped in the web UI) the next shard starts."""
        self._shard += 1
        self._row_groups = 0
        self._group_streams = self._group_events = 0
        self._marks = {}
        self._files = {stem: pa.OSFile(str(self._path(stem, OPEN_SHARD_SUFFIX)), "wb")
                       for stem in ("streams", "events")}
        self._writers = {stem: pa.ipc.new_stream(self._files[stem], schema, options=IPC_OPTIONS)
                         for stem, schema in (("streams", STREAMS_SCHEMA), ("events", EVENTS_SCHEMA))}
        self._marks = {stem: file.tell() for stem, file in self._files.items()}

    def __call__(self, streams: list[StreamRecord], events: EventBuffer) -> None:
        streams_table, events_table = to_tables(streams, events, self.send_time_ns)
        self.write_tables(streams_table, events_table)

    def write_tables(self, streams_table: pa.Table, events_table: pa.Table) -> None:
        """Append a batch to the open shard. Once a write finds the disk full (``disk_full``) nothing
        more is written: later batches count in ``streams_dropped``."""
        if self.disk_full is None:
            try:
                return self._write_tables(streams_table, events_table)
            except OSError as err:
                if not is_disk_full(err):
                    raise
                self._full(err)
        self.streams_dropped += streams_table.num_rows

    def _full(self, err: OSError) -> None:
        """The disk filled: each open file is cut back to its last whole batch (both then hold the same
        streams, each with its events; a shard that never took one is removed) and closed."""
        self.disk_full = err
        for stem, file in self._files.items():
            path = self._path(stem, OPEN_SHARD_SUFFIX)
            with contextlib.suppress(OSError):
                file.close()
                if stem in self._marks:
                    os.truncate(path, self._marks[stem])
                else:
                    path.unlink()
        self._files, self._marks, self._writers = {}, {}, None

    def _write_tables(self, streams_table: pa.Table, events_table: pa.Table) -> None:
        if self._writers is None:
            self._open()
        elif self._row_groups >= self.ROW_GROUPS_PER_SHARD:
            self._close_shard()
            self._open()
        if streams_table.num_rows:
            self._writers["streams"].write_table(streams_table)
        if events_table.num_rows:
            self._writers["events"].write_table(events_table)
            self.buffered_streams += buffered_streams(events_table, streams_table)
        self._marks = {stem: file.tell() for stem, file in self._files.items()}
        self._shard_streams += streams_table.num_rows
        self.streams_written += streams_table.num_rows
        self.events_written += events_table.num_rows
        self._group_streams += streams_table.num_rows
        self._group_events += events_table.num_rows
        if self._group_events >= self.ROW_GROUP_EVENTS or self._group_streams >= self.ROW_GROUP_STREAMS:
            self._row_groups += 1
            self._group_streams = self._group_events = 0

    def close(self) -> None:
        """Every batch on disk and the files closed; once the disk filled, the open shard stays as cut
        (sseload.views.loading reads it) and each whole batch counts as on disk."""
        try:
            self._close()
        except OSError as err:
            if not is_disk_full(err):
                raise
            self._full(err)
        if self.disk_full is not None:
            self.streams_on_disk = self.streams_written

    def _close(self) -> None:
        if self.disk_full is not None:
            self._wait_for_conversions()
            return
        if self._writers is None:
            if self._shard == 0:  # nothing was ever written: still leave a valid, empty dataset
                self._open()
            else:
                self._wait_for_conversions()
                return
        self._close_shard()
        self._writers = None
        self._wait_for_conversions()

    def _wait_for_conversions(self) -> None:
        pending, self._converting = self._converting, []
        for done in pending:
            done.get()  # (re-raises a conversion's error here, as an unthreaded one would)

    def _close_shard(self) -> None:
        try:
            for writer in self._writers.values():
                writer.close()
        finally:
            for file in self._files.values():
                file.close()
            self._files, self._marks = {}, {}
        shard, streams = self._shard, self._shard_streams
        self._shard_streams = 0
        if not self.background:
            self._convert(shard, streams)
            return
        if self._pool is None:
            from gevent.threadpool import ThreadPool

            self._pool = ThreadPool(1)
        self._converting.append(self._pool.spawn(self._convert, shard, streams))

    def _convert(self, shard: int, streams: int) -> None:
        self._to_parquet(shard, "streams", STREAMS_SCHEMA, self.ROW_GROUP_STREAMS, {})
        self._to_parquet(shard, "events", EVENTS_SCHEMA, self.ROW_GROUP_EVENTS,
                         {"use_dictionary": EVENTS_DICTIONARY_COLUMNS})
        self.streams_on_disk += streams

    def _to_parquet(self, shard: int, stem: str, schema: pa.Schema, rows_per_group: int, options: dict) -> None:
        """The closed IPC stream becomes the shard's Parquet file (complete, then renamed into place)."""
        source, final = self._path(stem, OPEN_SHARD_SUFFIX, shard), self._path(stem, ".parquet", shard)
        partial = final.with_name(final.name + ".partial")
        group: list[pa.RecordBatch] = []
        rows = 0
        try:
            with pa.ipc.open_stream(str(source)) as reader, \
                    pq.ParquetWriter(partial, schema, compression="zstd", **options) as writer:
                for batch in reader:
                    group.append(batch)
                    rows += batch.num_rows
                    if rows >= rows_per_group:
                        writer.write_table(pa.Table.from_batches(group, schema))
                        group, rows = [], 0
                if group:
                    writer.write_table(pa.Table.from_batches(group, schema))
            os.replace(partial, final)
        except BaseException:  # (a full disk: the shard stays readable as it is, in its IPC stream)
            partial.unlink(missing_ok=True)
            raise
        source.unlink()
