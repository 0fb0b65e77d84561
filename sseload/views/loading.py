"""Reading a run back from its files: ``load(run_dir)`` gives a :class:`Run` of pandas frames.

A run directory holds ``run.json``, ``streams*.parquet``, ``events*.parquet`` (one file, or one
shard per writer) and ``health.parquet`` (docs/results-format.md). A shard the run was killed
while writing (an open shard's Arrow IPC stream) is read up to its last whole batch, and what
is missing is said in sentences (:func:`missing_files`), never left out silently.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

import sseload
from sseload.record import server_metrics
from sseload.record.records import EVENTS_SCHEMA, OPEN_SHARD_SUFFIX, STREAMS_SCHEMA
from sseload.scenario.model import limit_s_of


class ResultsError(Exception):
    pass


@dataclass
class Run:
    run_dir: Path
    info: dict
    streams: pd.DataFrame
    events: pd.DataFrame | None = None
    health: pd.DataFrame = field(default_factory=pd.DataFrame)
    cut: list[str] = field(default_factory=list)  # shards cut off mid-write, skipped: what they lost
    server_metrics: pd.DataFrame | None = None  # the service's own metrics as scraped (sseload.record.server_metrics)

    @property
    def limit_s(self) -> float:
        return limit_s_of(self.info.get("scenario") or {})  # the gateway's default where run.json says none


def _shard_number(path: Path) -> int:
    """streams.parquet is shard 1, streams-2.parquet shard 2, ... (so -10 sorts after -9)."""
    tail = path.stem.rpartition("-")[2]
    return int(tail) if tail.isdigit() else 1


def _read(run_dir: Path, stem: str, columns: list[str] | None = None,
          cut: list[str] | None = None) -> pd.DataFrame | None:
    """A table from its shards. A shard the run was killed while writing (an open shard's Arrow IPC
    stream, ``streams.arrows``, never turned into Parquet) is read up to its last whole batch and
    named in ``cut``; with ``cut`` None it raises instead."""
    parquet = {path.name.removesuffix(".parquet"): path for path in run_dir.glob(f"{stem}*.parquet")}
    open_shards = [path for path in run_dir.glob(f"{stem}*{OPEN_SHARD_SUFFIX}")
                   if path.name.removesuffix(OPEN_SHARD_SUFFIX) not in parquet]  # else: killed as it was removed
    shards = sorted([*parquet.values(), *open_shards], key=_shard_number)
    if not shards:
        return None
    frames = []
    for path in shards:
        if path.suffix == OPEN_SHARD_SUFFIX:
            if cut is None:
                raise ResultsError(
                    f"{path} is the open shard of a run that was cut off while writing it (the run was killed); "
                    "read the run with recover=True (the default) to get its rows written before the cut"
                )
            table, whole = _read_cut(path, columns)
            cut.append(f"{path.name} is a shard still open (the run is going on, was killed, or its disk filled): "
                       f"its {table.num_rows:,} rows written so far are here"
                       + ("" if whole else "; a batch half written after them is not"))
            frames.append(table.to_pandas())
            continue
        try:
            frames.append(pq.read_table(path, columns=columns).to_pandas())
        except (pa.ArrowInvalid, OSError) as err:
            if cut is None:
                raise ResultsError(
                    f"{path} is not a complete Parquet file ({err}); its rows are lost. "
                    "Move it out of the run directory to read the rest"
                ) from None
            cut.append(f"{path.name} is not a complete Parquet file: its rows are lost, the other files' rows are here")
    if not frames:
        return None
    return frames[0] if len(frames) == 1 else pd.concat(frames, ignore_index=True)


def _read_cut(path: Path, columns: list[str] | None) -> tuple[pa.Table, bool]:
    """The whole batches of a cut IPC stream, and whether it ended cleanly after them."""
    schema = STREAMS_SCHEMA if path.name.startswith("streams") else EVENTS_SCHEMA
    batches, whole = [], True
    try:
        with pa.ipc.open_stream(str(path)) as reader:
            schema = reader.schema
            for batch in reader:
                batches.append(batch)
    except (pa.ArrowInvalid, OSError):  # a batch (or the schema itself) half written
        whole = False
    table = pa.Table.from_batches(batches, schema)
    return (table.select(columns) if columns else table), whole


def load(run_dir: str | Path, events: bool = True, event_columns: list[str] | None = None,
         recover: bool = True) -> Run:
    """Load a run; ``events=False`` skips the (large) events table. A shard cut off mid-write (the
    run was killed) is skipped and named in ``Run.cut`` (``recover=False``: it raises instead)."""
    run_dir = Path(run_dir)
    info_path = run_dir / "run.json"
    if not run_dir.is_dir():
        raise ResultsError(f"{run_dir} is not a run directory; `ls results/` shows the runs")
    try:
        info = json.loads(info_path.read_text())
    except FileNotFoundError:
        info = {"partial": True, "partial_reason": "run.json missing: the run did not finish cleanly"}
    except ValueError:
        raise ResultsError(f"{info_path} is not valid JSON; the run may have been cut off while writing") from None
    version = info.get("schema_version", sseload.SCHEMA_VERSION)
    if version != sseload.SCHEMA_VERSION:
        raise ResultsError(
            f"{run_dir} was written with results schema {version}; this sseload reads schema "
            f"{sseload.SCHEMA_VERSION}. Re-run the load, or use the sseload version that wrote it"
        )
    cut: list[str] | None = [] if recover else None
    streams = _read(run_dir, "streams", cut=cut)
    if streams is None and cut:
        raise ResultsError(f"{run_dir}: {cut[0]}; no complete streams file is left to read")
    if streams is None:
        raise ResultsError(f"{run_dir} has no streams.parquet: no stream was recorded")
    ev = _read(run_dir, "events", event_columns, cut=cut) if events else None
    health = _read(run_dir, "health", cut=cut)
    return Run(run_dir, info, streams, ev, health if health is not None else pd.DataFrame(), cut or [],
               server_metrics.read(run_dir))


def missing_files(run: Run) -> list[str]:
    """What a run directory lacks, in sentences: a report made from it says so, never just omits rows."""
    missing = list(run.cut)
    if run.events is None and not list(run.run_dir.glob("events*.parquet")):
        missing.append("events.parquet is missing: gaps, event lateness and events over time cannot be shown "
                       "(the run was cut off, or the file was moved)")
    if run.health.empty and not list(run.run_dir.glob("health*.parquet")):
        missing.append("health.parquet is missing: the harness's CPU and loop lag per second cannot be shown")
    if not (run.run_dir / "run.json").exists():
        missing.append("run.json is missing: the scenario, load and harness health are unknown")
    return missing
