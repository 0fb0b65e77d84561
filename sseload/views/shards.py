"""A table's files in a run folder, listed once and read whole or a batch at a time.

A table (``streams``, ``events``, ``health``) is one Parquet file or one per shard
(``events.parquet``, ``events-2.parquet``, ...: docs/measurement.md#the-results-files). A shard the
run was killed while writing is still its open Arrow IPC stream (``events-2.arrows``): it is read
up to its last whole batch, and never past the rows counted when it was listed (a run still going
on appends to it). Listing reads only the Parquet footers and the IPC stream's batches' headers
(it is mapped, not read), and what a cut shard lost is said in sentences. Rows are read when asked
for: whole as pandas (:meth:`Shards.frame`), or a batch at a time with only the columns asked for
(:meth:`Shards.batches`, how sseload.views.event_facts reads the events).
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from sseload.record.records import EVENTS_SCHEMA, OPEN_SHARD_SUFFIX, STREAMS_SCHEMA


class ResultsError(Exception):
    pass


@dataclass(frozen=True)
class Shard:
    path: Path
    rows: int  # an open shard: its whole batches' rows when listed, which is all that is read of it
    open: bool  # the open shard's IPC stream, not Parquet


@dataclass(frozen=True)
class Shards:
    """A table's shards in order (``-10`` after ``-9``) and the columns they hold."""

    shards: tuple[Shard, ...]
    schema: pa.Schema

    @property
    def rows(self) -> int:
        return sum(shard.rows for shard in self.shards)

    @property
    def names(self) -> list[str]:
        return list(self.schema.names)

    def frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        """The whole table as one pandas frame (each shard's rows after the one before's)."""
        frames = [self._table(shard, columns).to_pandas() for shard in self.shards]
        return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.Table]:
        """The table's rows in order, ``rows`` at a time (fewer where a Parquet row group or a shard ends),
        with only ``columns``: one batch is in memory at a time."""
        for shard in self.shards:
            if shard.open:
                yield from _rebatch(_ipc_batches(shard), columns, rows)
                continue
            try:
                with pq.ParquetFile(shard.path) as file:
                    for batch in file.iter_batches(batch_size=rows, columns=columns):
                        yield pa.Table.from_batches([batch])
            except (pa.ArrowInvalid, OSError) as err:
                raise _unreadable(shard.path, err) from None

    def _table(self, shard: Shard, columns: list[str] | None) -> pa.Table:
        if shard.open:
            table = pa.Table.from_batches(list(_ipc_batches(shard)), self.schema)
            return table.select(columns) if columns else table
        try:
            return pq.read_table(shard.path, columns=columns)
        except (pa.ArrowInvalid, OSError) as err:
            raise _unreadable(shard.path, err) from None


class FrameEvents:
    """An events frame already in memory (a run built in memory), read as :class:`Shards` are."""

    def __init__(self, frame: pd.DataFrame) -> None:
        self._frame = frame

    @property
    def rows(self) -> int:
        return len(self._frame)

    @property
    def names(self) -> list[str]:
        return list(self._frame.columns)

    def frame(self, columns: list[str] | None = None) -> pd.DataFrame:
        return self._frame[columns] if columns else self._frame

    def batches(self, columns: list[str], rows: int) -> Iterator[pa.Table]:
        for start in range(0, len(self._frame), rows):
            yield pa.Table.from_pandas(self._frame[columns].iloc[start:start + rows], preserve_index=False)


def _unreadable(path: Path, err: BaseException) -> ResultsError:
    return ResultsError(f"{path} could not be read ({err}); its rows are lost. Move it out of the run directory "
                        "to read the rest")


def _shard_number(path: Path) -> int:
    """streams.parquet is shard 1, streams-2.parquet shard 2, ... (so -10 sorts after -9)."""
    tail = path.stem.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 1


def listing(run_dir: Path, stem: str, cut: list[str] | None) -> Shards | None:
    """The table ``stem``'s shards; None when it has none to read. A shard cut off mid-write (an open
    shard's IPC stream, or a Parquet file without its footer) is named in ``cut``, in a sentence; with
    ``cut`` None it raises ResultsError instead."""
    parquet = {path.name.removesuffix(".parquet"): path for path in run_dir.glob(f"{stem}*.parquet")}
    open_shards = [path for path in run_dir.glob(f"{stem}*{OPEN_SHARD_SUFFIX}")
                   if path.name.removesuffix(OPEN_SHARD_SUFFIX) not in parquet]  # else: killed as it was removed
    found: list[Shard] = []
    schema = None
    for path in sorted([*parquet.values(), *open_shards], key=_shard_number):
        if path.suffix == OPEN_SHARD_SUFFIX:
            if cut is None:
                raise ResultsError(
                    f"{path} is the open shard of a run that was cut off while writing it (the run was killed); "
                    "read the run with recover=True (the default) to get its rows written before the cut"
                )
            rows, whole, shard_schema = _count_cut(path)
            cut.append(f"{path.name} is a shard still open (the run is going on, was killed, or its disk filled): "
                       f"its {rows:,} rows written so far are here"
                       + ("" if whole else "; a batch half written after them is not"))
            found.append(Shard(path, rows, open=True))
        else:
            try:
                meta = pq.read_metadata(path)
            except (pa.ArrowInvalid, OSError) as err:
                if cut is None:
                    raise ResultsError(
                        f"{path} is not a complete Parquet file ({err}); its rows are lost. "
                        "Move it out of the run directory to read the rest"
                    ) from None
                cut.append(f"{path.name} is not a complete Parquet file: its rows are lost, the other files' rows "
                           "are here")
                continue
            shard_schema = meta.schema.to_arrow_schema()
            found.append(Shard(path, meta.num_rows, open=False))
        if schema is None:
            schema = shard_schema
    return Shards(tuple(found), schema) if found else None


def _count_cut(path: Path) -> tuple[int, bool, pa.Schema]:
    """The rows of a cut IPC stream's whole batches, whether it ended cleanly after them, and its schema."""
    schema = STREAMS_SCHEMA if path.name.startswith("streams") else EVENTS_SCHEMA
    rows, whole = 0, True
    try:
        with pa.memory_map(str(path)) as source, pa.ipc.open_stream(source) as reader:
            schema = reader.schema
            for batch in reader:
                rows += batch.num_rows
    except (pa.ArrowInvalid, OSError):  # a batch (or the schema itself) half written
        whole = False
    return rows, whole, schema


def _ipc_batches(shard: Shard) -> Iterator[pa.RecordBatch]:
    """An open shard's whole batches, up to the rows it was listed with."""
    left = shard.rows
    try:
        with pa.ipc.open_stream(str(shard.path)) as reader:
            for batch in reader:
                if left <= 0:
                    return
                yield batch.slice(0, left) if batch.num_rows > left else batch
                left -= batch.num_rows
    except (pa.ArrowInvalid, OSError):  # what was half written when it was listed (or since)
        return


def _rebatch(batches: Iterator[pa.RecordBatch], columns: list[str], rows: int) -> Iterator[pa.Table]:
    """IPC batches (about a second of a run each) regrouped ``rows`` at a time, with only ``columns``."""
    group: list[pa.RecordBatch] = []
    held = 0
    for batch in batches:
        batch = batch.select(columns)
        while batch.num_rows:
            take = min(rows - held, batch.num_rows)
            group.append(batch.slice(0, take))
            held += take
            batch = batch.slice(take)
            if held == rows:
                yield pa.Table.from_batches(group)
                group, held = [], 0
    if group:
        yield pa.Table.from_batches(group)
