"""Reading a run back from its files: ``load(run_dir)`` gives a :class:`Run` of pandas frames.

A run directory holds ``run.json``, ``streams*.parquet``, ``events*.parquet`` (one file, or one
shard per writer) and ``health.parquet`` (docs/results-format.md). A shard the run was killed
while writing (an open shard's Arrow IPC stream) is read up to its last whole batch, and what
is missing is said in sentences (:func:`missing_files`), never left out silently
(sseload.views.shards lists and reads them).

The events table, a row per event, is listed when the run is loaded but read only when used:
``Run.events`` reads it whole (for an analysis script), ``Run.event_facts`` a batch at a time
(sseload.views.event_facts: what the summary, the report and the charts take from it), so a
report of a run of any length fits in memory.
"""

from __future__ import annotations

import json
from pathlib import Path

import pandas as pd

import sseload
from sseload.record import server_metrics
from sseload.scenario.model import limit_s_of
from sseload.views.event_facts import EventFacts
from sseload.views.shards import FrameEvents, ResultsError, Shards, listing


class Run:
    """A run read back: ``info`` (run.json), ``streams``, ``health`` and ``server_metrics`` as frames,
    ``cut``: the shards cut off mid-write and what they lost, in sentences; the events on demand.

    ``events`` is the events table as one pandas frame (None when the run has none, or was loaded
    with ``events=False``), read from its shards the first time it is used, with the columns the
    run was loaded with. ``event_facts`` is what the views take from the events, computed a batch
    at a time (None without events): the summary and the report never read ``events`` whole.
    A run built in memory passes its events frame itself; both then read that.
    """

    def __init__(self, run_dir: Path, info: dict, streams: pd.DataFrame, events: pd.DataFrame | None = None,
                 health: pd.DataFrame | None = None, cut: list[str] | None = None,
                 server_metrics: pd.DataFrame | None = None, event_shards: Shards | None = None,
                 event_columns: list[str] | None = None) -> None:
        self.run_dir, self.info, self.streams = run_dir, info, streams
        self.health = health if health is not None else pd.DataFrame()
        self.cut = cut if cut is not None else []
        self.server_metrics = server_metrics  # the service's own metrics as scraped (sseload.record.server_metrics)
        self.event_shards, self.event_columns = event_shards, event_columns
        self.events = events

    @property
    def events(self) -> pd.DataFrame | None:
        if self._events is None and self.event_shards is not None:
            self._events = self.event_shards.frame(self.event_columns)
        return self._events

    @events.setter
    def events(self, frame: pd.DataFrame | None) -> None:
        """Events given in memory: the facts are computed from them, not from the files."""
        self._events = frame
        self._given = frame is not None
        self._facts: EventFacts | None = None

    @property
    def has_events(self) -> bool:
        """An events table was recorded and loaded (in memory or listed), with or without rows."""
        return self._events is not None or self.event_shards is not None

    @property
    def event_facts(self) -> EventFacts | None:
        """What the views take from the events (sseload.views.event_facts), computed once, in batches."""
        if self._facts is None and self.has_events:
            events = FrameEvents(self._events) if self._given else self.event_shards
            self._facts = EventFacts(events, self.streams)
        return self._facts

    @property
    def limit_s(self) -> float:
        return limit_s_of(self.info.get("scenario") or {})  # the gateway's default where run.json says none


def _read(run_dir: Path, stem: str, columns: list[str] | None = None,
          cut: list[str] | None = None) -> pd.DataFrame | None:
    """A table read whole from its shards (sseload.views.shards.listing); None without one."""
    files = listing(run_dir, stem, cut)
    return files.frame(columns) if files is not None else None


def load(run_dir: str | Path, events: bool = True, event_columns: list[str] | None = None,
         recover: bool = True) -> Run:
    """Load a run; ``events=False`` leaves out the (large) events table, ``event_columns`` reads only
    those of its columns into ``Run.events``. A shard cut off mid-write (the run was killed) is
    skipped and named in ``Run.cut`` (``recover=False``: it raises instead)."""
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
    event_shards = listing(run_dir, "events", cut) if events else None  # read when used: Run.events, Run.event_facts
    health = _read(run_dir, "health", cut=cut)
    return Run(run_dir, info, streams, None, health, cut or [], server_metrics.read(run_dir),
               event_shards=event_shards, event_columns=event_columns)


def missing_files(run: Run) -> list[str]:
    """What a run directory lacks, in sentences: a report made from it says so, never just omits rows."""
    missing = list(run.cut)
    if not run.has_events and not list(run.run_dir.glob("events*.parquet")):
        missing.append("events.parquet is missing: gaps, event lateness and events over time cannot be shown "
                       "(the run was cut off, or the file was moved)")
    if run.health.empty and not list(run.run_dir.glob("health*.parquet")):
        missing.append("health.parquet is missing: the harness's CPU and loop lag per second cannot be shown")
    if not (run.run_dir / "run.json").exists():
        missing.append("run.json is missing: the scenario, load and harness health are unknown")
    return missing
