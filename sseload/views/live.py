"""The run's numbers while it runs: what the web UI's tab, its live charts, the console's progress
line and the Prometheus endpoint show. The report's numbers come from the recorded files
(sseload.views.results); these are for watching, bounded in memory whatever the load.

Latencies go into log-bucketed histograms (:class:`~sseload.views.histogram.LogHistogram`, 0.58%
relative error at most): a whole run's percentiles in 13 KB, summed exactly across ticks, windows
and workers. Events, first events and gaps count as they arrive: each :meth:`LiveStats.tick` reads
what the open streams' event logs got since the last one, so a 40 s stream shows from its first
event on, not at its end. LLM streams' output tokens and TTFT count the same way, as their chunks
arrive, and a stream's end adds only what its chunks did not say (a usage that came last). A
worker sends the master what it counted since its last report (:meth:`LiveStats.take_report`,
Locust's ``report_to_master``); the master adds it (:meth:`LiveStats.merge_report`).
"""

from __future__ import annotations

import time
from collections import Counter, deque
from typing import NamedTuple

import numpy as np

from sseload.protocol.outcomes import Outcome
from sseload.protocol.sse import KIND_BITS
from sseload.record.metrics import GAP, TPOT, TTFE, TTFT
from sseload.record.records import tpot
from sseload.views.histogram import LogHistogram

WINDOW_S = 10.0  # the "last N s" of the tab's rows
TICK_S = 2.0  # how often the open streams are read and the history gets a point
MAX_HISTORY = 3_600  # points: 2 h at 2 s; then every other one goes and the step doubles


#: The latency histograms LiveStats keeps: TTFE per stream, gaps per event; TTFT per LLM stream
#: and TPOT per ok one.
LATENCIES = (TTFE.key, GAP.key, TTFT.key, TPOT.key)


class TokenFacts(NamedTuple):
    """An LLM stream's token facts as its record has them at its end (:meth:`LiveStats.add_stream`)."""

    output_tokens: int
    ttft_ms: float | None
    tpot_ms: float | None  # ok streams of two tokens or more

    @classmethod
    def of(cls, record) -> TokenFacts | None:
        """A StreamRecord's (sseload.record.records); None for a stream that is not an LLM stream."""
        if record.output_tokens < 0:
            return None
        ttft_ns = record.ttft_ns
        tpot_ms = float(tpot(record.duration_ns, ttft_ns, record.output_tokens))
        return cls(record.output_tokens, ttft_ns / 1e6 if ttft_ns >= 0 else None,
                   tpot_ms if record.outcome is Outcome.OK and tpot_ms == tpot_ms else None)


class _Counts:
    """What arrived in one span of time: latencies, events, outcomes, output tokens (as their chunks
    came), LLM streams ended and those whose first token came."""

    __slots__ = ("hist", "events", "outcomes", "tokens", "token_streams", "first_events", "first_tokens")

    def __init__(self) -> None:
        self.hist = {name: LogHistogram() for name in LATENCIES}
        self.events = 0
        self.first_events = 0
        self.first_tokens = 0
        self.outcomes: Counter[str] = Counter()
        self.tokens = 0
        self.token_streams = 0

    def merge(self, other: _Counts) -> None:
        for name in LATENCIES:
            self.hist[name].merge(other.hist[name])
        self.events += other.events
        self.first_events += other.first_events
        self.first_tokens += other.first_tokens
        self.outcomes.update(other.outcomes)
        self.tokens += other.tokens
        self.token_streams += other.token_streams

    def to_wire(self) -> dict:
        return {"hist": {k: h.to_wire() for k, h in self.hist.items()}, "events": self.events,
                "first_events": self.first_events, "first_tokens": self.first_tokens,
                "outcomes": dict(self.outcomes), "tokens": self.tokens, "token_streams": self.token_streams}

    @classmethod
    def from_wire(cls, wire: dict) -> _Counts:
        c = cls()
        c.hist = {k: LogHistogram.from_wire(wire["hist"][k]) for k in LATENCIES}
        c.events, c.first_events, c.first_tokens = wire["events"], wire["first_events"], wire["first_tokens"]
        c.outcomes = Counter(wire["outcomes"])
        c.tokens, c.token_streams = wire["tokens"], wire["token_streams"]
        return c


class _Open:
    """What :meth:`LiveStats.tick` has counted of one open stream."""

    __slots__ = ("log", "seen", "last_t_ns", "first", "first_token", "tokens")

    def __init__(self) -> None:
        self.log = None  # the log counted (a redirect's or a retry's answer has its own)
        self.seen = 0  # events counted
        self.last_t_ns = -1  # the last counted event's time
        self.first = False  # its first event counted (TTFE)
        self.first_token = False  # LLM: its first chunk carrying output counted (TTFT)
        self.tokens = 0  # LLM: output tokens its chunks carried, as counted


class _Pending:
    """What arrived since the last fold, as it came: a stream's end costs appends, not histogram
    work (per stream it cost far more than in bulk: bench/RESULTS.md)."""

    __slots__ = ("arrays", "values", "events", "first_events", "first_tokens", "outcomes", "tokens", "token_streams")

    def __init__(self) -> None:
        self.arrays: list[np.ndarray] = []  # gaps, ms
        self.values: dict[str, list[float]] = {TTFE.key: [], TTFT.key: [], TPOT.key: []}
        self.events = 0
        self.first_events = 0
        self.first_tokens = 0
        self.outcomes: Counter[str] = Counter()
        self.tokens = 0
        self.token_streams = 0

    def counts(self) -> _Counts:
        c = _Counts()
        if self.arrays:
            c.hist[GAP.key].add(np.concatenate(self.arrays) if len(self.arrays) > 1 else self.arrays[0])
        for key, values in self.values.items():
            if values:
                c.hist[key].add(np.fromiter(values, np.float64, len(values)))
        c.events, c.first_events, c.first_tokens, c.outcomes = (self.events, self.first_events, self.first_tokens,
                                                                self.outcomes)
        c.tokens, c.token_streams = self.tokens, self.token_streams
        return c


class LiveStats:
    """A process's live numbers: the whole run's, the last WINDOW_S's, and a history for charts.

    Fed by the users (:meth:`stream_opened`, :meth:`add_stream`, :meth:`add_tokens`), by
    :meth:`tick` reading the open streams' logs, and on a master by the workers' reports. What
    the users tell waits in a _Pending until a view reads (:meth:`fold`).
    """

    def __init__(self, reports: bool = False) -> None:
        self.reports = reports  # a worker's: it keeps what it counted for its next report
        self._pending = _Pending()
        self._run = _Counts()  # the whole run's
        self._now = _Counts()  # since the last tick
        self._ticks: deque[tuple[float, float, _Counts]] = deque()  # the window's ticks: (start, end, counts)
        self._outbox = _Counts()  # a worker's: since its last report
        self._open: dict[object, _Open] = {}  # open stream (its connection) -> what is counted of it
        self.history: list[dict] = []
        self._history_every = 1
        self._ticks_seen = 0
        self.started = time.monotonic()
        self.ended: float | None = None  # when the load stopped (the whole run's rates end there)
        self.started_at = time.time()
        self._last_tick = self._last_point = self.started
        self._last_outcomes: Counter[str] = Counter()

    def reset(self) -> None:
        """A new test in the same process (the web UI's New test): start counting again."""
        self.__init__(self.reports)

    @property
    def run(self) -> _Counts:
        """The whole run's counts, up to now."""
        self.fold()
        return self._run

    def fold(self) -> None:
        """What waits in the pending batch goes into the run's, the tick's and the outbox's counts."""
        p = self._pending
        if not (p.events or p.outcomes or p.token_streams or p.tokens):
            return
        self._pending = _Pending()
        delta = p.counts()
        self._run.merge(delta)
        self._now.merge(delta)
        if self.reports:
            self._outbox.merge(delta)

    # --- what the users tell ---
    def stream_opened(self, key) -> None:
        """A stream starts on ``key`` (its connection, whose ``open_log()`` tick reads)."""
        self._open[key] = _Open()

    def forget(self, key) -> None:
        """A stream that never ran (stopped while connecting): nothing of it is counted."""
        self._open.pop(key, None)

    def add_stream(self, outcome: str, ttfe_ms: float | None, t_ns: np.ndarray, key=None,
                   tokens: TokenFacts | None = None, first: int = 0) -> None:
        """A stream ended: its outcome, and whatever :meth:`tick` had not yet counted of its events
        (``t_ns``, the stream's event times, int64 ns, from its event ``first`` on: those before went
        to the recorder while it was open), TTFE and, of an LLM stream, ``tokens``: TTFT, TPOT and the
        output tokens its chunks had not said (a usage at the end corrects the count)."""
        state = self._open.pop(key, None) or _Open()
        p = self._pending
        p.outcomes[outcome] += 1
        unseen = first + t_ns.size - state.seen
        if unseen > 0:
            p.events += unseen
            new = t_ns[max(state.seen - first, 0):]
            if new.size:  # the gap from the event before, where it was seen
                self._gaps(state.last_t_ns if state.seen >= first else -1, new)
        if ttfe_ms is not None and not state.first:
            p.first_events += 1
            p.values[TTFE.key].append(ttfe_ms)
        if tokens is not None:
            self._stream_tokens(state, tokens)

    def _stream_tokens(self, state: _Open, facts: TokenFacts) -> None:
        p = self._pending
        p.token_streams += 1
        p.tokens += max(facts.output_tokens - state.tokens, 0)
        if facts.ttft_ms is not None and not state.first_token:
            p.first_tokens += 1
            p.values[TTFT.key].append(facts.ttft_ms)
        if facts.tpot_ms is not None:
            p.values[TPOT.key].append(facts.tpot_ms)

    def _gaps(self, prev_t_ns: int, new: np.ndarray) -> None:
        """The gaps (ms) before each of ``new``'s events: from ``prev_t_ns`` (-1: none) and between them."""
        if prev_t_ns >= 0:
            gaps = np.empty(new.size)
            gaps[0] = new[0] - prev_t_ns
            np.subtract(new[1:], new[:-1], out=gaps[1:])
        elif new.size > 1:
            gaps = np.diff(new).astype(np.float64)
        else:
            return
        gaps *= 1e-6
        self._pending.arrays.append(gaps)

    def add_tokens(self, ttft_ms: float | None, output_tokens: int, tpot_ms: float | None = None) -> None:
        """An LLM stream's token facts, for a stream that was never open here (its tokens all at once)."""
        self._stream_tokens(_Open(), TokenFacts(output_tokens, ttft_ms, tpot_ms))

    def count_open(self) -> None:
        """Count the events, first events and gaps the open streams got since the last call."""
        p = self._pending
        for key, state in self._open.items():
            opened = key.open_log()
            if opened is None:
                continue
            log, t_start_ns = opened
            if log is not state.log:
                state.log, state.seen, state.last_t_ns = log, 0, -1
            n = len(log)
            if n <= state.seen:
                continue
            seen, state.seen = state.seen, n
            new = np.frombuffer(log.times(seen), dtype=np.int64)  # (none the recorder spilled since)
            p.events += n - seen
            if new.size < n - seen:  # some went to the recorder unseen: no gap across them
                state.last_t_ns = -1
            if not new.size:
                continue
            self._gaps(state.last_t_ns, new)
            if not state.first:  # (its first event's time: kept by the log once spilled)
                p.first_events += 1
                p.values[TTFE.key].append((log.first_t_ns - t_start_ns) / 1e6)
                state.first = True
            self._chunk_tokens(state, log.llm(seen), new, t_start_ns)
            state.last_t_ns = int(new[-1])
        self.fold()

    def _chunk_tokens(self, state: _Open, packed: bytes, new: np.ndarray, t_start_ns: int) -> None:
        """An open LLM stream's new chunks (``packed``, the event log's ``llm`` from the same event as
        ``new``'s times): its output tokens so far (a usage's count, one a chunk carrying output
        after it or without one) and, at its first chunk carrying output, TTFT."""
        if not packed:  # not an LLM stream
            return
        llm = np.frombuffer(packed, dtype=np.int64)[:new.size]
        output = (llm % KIND_BITS) != 0
        usage = llm // KIND_BITS - 1  # a usage's output tokens so far (cumulative), -1 where none came
        known = np.flatnonzero(usage >= 0)
        if known.size:  # the last usage, and one token for each output chunk after it
            total = int(usage[known[-1]]) + int(output[known[-1] + 1:].sum())
        else:
            total = state.tokens + int(output.sum())
        if total > state.tokens:
            self._pending.tokens += total - state.tokens
            state.tokens = total
        if output.any() and not state.first_token:
            state.first_token = True
            self._pending.first_tokens += 1
            self._pending.values[TTFT.key].append((int(new[np.argmax(output)]) - t_start_ns) / 1e6)

    @property
    def llm(self) -> bool:
        """LLM streams: one ended, or a first token came."""
        run = self.run
        return bool(run.token_streams or run.first_tokens)

    # --- time ---
    def tick(self, active: int) -> None:
        """Every TICK_S: count the open streams, close the tick, add a history point."""
        self.count_open()  # (and folds)
        now = time.monotonic()
        closed = self._now
        self._ticks.append((self._last_tick, now, closed))
        self._now = _Counts()
        while self._ticks and self._ticks[0][0] < now - WINDOW_S:
            self._ticks.popleft()
        tick_s = max(now - self._last_tick, 1e-9)
        self._last_tick = now
        self._ticks_seen += 1
        if self._ticks_seen % self._history_every:
            return
        self.history.append(self._point(now, active, closed, tick_s))
        if len(self.history) > MAX_HISTORY:
            self.history = self.history[::2]
            self._history_every *= 2

    def window(self) -> tuple[_Counts, float]:
        """The counts of the ticks that began within the last WINDOW_S and of the open one, and the
        seconds they span (WINDOW_S less at most a tick)."""
        self.fold()
        now = time.monotonic()
        w = _Counts()
        since = self._last_tick
        for start, _, counts in reversed(self._ticks):
            if start < now - WINDOW_S:
                break
            w.merge(counts)
            since = start
        w.merge(self._now)
        return w, max(now - since, 1e-9)

    def _point(self, now: float, active: int, last: _Counts, tick_s: float) -> dict:
        """A history point: the tick just closed (rates), the window's percentiles, outcomes since the last point."""
        w, _ = self.window()
        outcomes = self.run.outcomes - self._last_outcomes
        self._last_outcomes = Counter(self.run.outcomes)
        since_s = max(now - self._last_point, 1e-9)
        self._last_point = now
        point = {"t": round(self.started_at + (now - self.started), 3), "active": active,
                 "events_per_s": round(last.events / tick_s, 1),
                 "streams_per_s": round(sum(outcomes.values()) / since_s, 2),
                 "outcomes": {k: round(v / since_s, 2) for k, v in outcomes.items()}}
        for name, ps in ((TTFE.key, (50, 95, 99)), (GAP.key, (50, 99)), (TTFT.key, (50, 95, 99))):
            for p in ps:
                v = w.hist[name].percentile(p)
                point[f"{name}_p{p}"] = None if v is None else round(v, 3)
        if self.llm:
            point["tokens_per_s"] = round(last.tokens / tick_s, 1)
        return point

    # --- workers ---
    def take_report(self, active: int) -> dict:
        """What a worker counted since its last report, for the master (msgpack-able)."""
        self.count_open()  # (and folds)
        box, self._outbox = self._outbox, _Counts()
        return {**box.to_wire(), "active": active}

    def merge_report(self, report: dict, worker_active: dict, worker_id: str) -> None:
        counts = _Counts.from_wire(report)
        self._run.merge(counts)
        self._now.merge(counts)
        worker_active[worker_id] = report["active"]

    # --- what the views read ---
    @property
    def streams_finished(self) -> int:
        return sum(self.run.outcomes.values())

    @property
    def cutoffs(self) -> int:
        return self.run.outcomes.get(Outcome.CUTOFF, 0)

    def stop(self) -> None:
        """The load stopped: the whole run's rates are over its length, not the time since."""
        self.ended = time.monotonic()

    def elapsed_s(self) -> float:
        return (self.ended or time.monotonic()) - self.started
