"""The recorder: collects stream records in memory and writes Parquet off the hot path.

Users hand over a finished stream (its StreamRecord and event arrays), and a long one's events while
it is open (``spill``); a flush greenlet swaps
the buffers every ``flush_interval_s`` and a real OS thread at low CPU priority converts and
writes them, so the event loop never stalls on compression or file I/O. A flush that must
finish now (the run's end) writes in the caller instead of waiting on that thread. The files are
sseload.record.sink's; a ``sink`` may replace them (workers ship batches to the master instead).
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import sys
import threading
from collections.abc import Callable

from sseload.protocol.outcomes import Outcome
from sseload.record.records import EventBuffer, StreamRecord, to_tables

log = logging.getLogger("sseload.record.recorder")

Sink = Callable[[list[StreamRecord], EventBuffer], None]


def warm_up() -> None:
    """Pay pyarrow's one-time lazy initialisation (~0.3 s, holding the GIL) before load starts."""
    events = EventBuffer()
    events.t_ns.append(1)
    events.size.append(1)
    events.server_ns.append(1)
    record = StreamRecord(
        stream_id=0, worker=0, user=0, t0_perf_ns=0, start_ns=1, scheduled_ns=0, connect_ns=-1, upload_ns=0,
        ttfb_ns=0, ttfe_ns=0, duration_ns=1, sign_ns=0, auth_fetch_ns=0, status=200, content_type="",
        charset_warning=False, body_bytes=0, response_bytes=0, events=1, malformed_events=0, outcome=Outcome.OK,
        error_code="", error="", reused=False)
    to_tables([record], events)


WRITER_NICE = 19
#: A stream open at a flush holding more events than this has them taken to the recorder then
#: (``EventLog.spill``): an open stream holds at most this many events (24 bytes each, 32 for an LLM
#: chunk) plus what it got since the last flush, however long it runs (a feed of hours, a flood).
SPILL_EVENTS = 4096


def _yield_cpu_to_the_loop() -> None:
    """Run in the writer thread: let the event loop's thread preempt it whenever it wakes.

    Compressing a second of events takes tens of milliseconds of CPU with the GIL released.
    On a busy core, at normal priority, that burst delays the loop's next wake-up by as much:
    lateness spikes once per flush. At nice 19 the loop preempts it at once, yet it keeps a small
    share of a saturated core (by the scheduler's weights), so it cannot starve the way a
    SCHED_IDLE thread can while the machine is busy, which is exactly when batches pile up.
    """
    with contextlib.suppress(AttributeError, OSError):  # not Linux, or not allowed: normal priority
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), WRITER_NICE)


class Recorder:
    def __init__(self, sink: Sink, flush_interval_s: float = 1.0, threaded: bool = True) -> None:
        self.sink = sink
        self.flush_interval_s = flush_interval_s
        self.threaded = threaded
        self._streams: list[StreamRecord] = []
        self._events = EventBuffer()
        self._open: set = set()  # the streams open now, by their connection (spill_events)
        self._spilled: dict = {}  # of those, what was spilled: connection -> (stream_id, events taken, last read time)
        self.events_spilled = 0
        self._pending = None  # the write in flight (AsyncResult)
        self._pool = None  # one writer thread, low CPU priority
        self._loop = None
        self.streams_recorded = 0
        self.events_recorded = 0
        self.outcomes: dict[str, int] = {}
        self.write_error: BaseException | None = None
        self.on_disk_full: Callable[[OSError], None] | None = None  # told once, in a greenlet (ParquetSink.disk_full)
        self._disk_full_told = False
        from gevent.lock import RLock

        self._flushing = RLock()  # one flush at a time (see flush); close_sink holds it throughout

    def stream_opened(self, key) -> None:
        """A stream starts on ``key``, a connection whose ``spill_events()`` the flush calls."""
        self._open.add(key)

    def forget(self, key) -> None:
        """The stream on ``key`` never ran (stopped while connecting): nothing of it is recorded."""
        self._open.discard(key)
        self._spilled.pop(key, None)

    def spill(self) -> None:
        """Take the events of every open stream holding more than SPILL_EVENTS into the batch (its log
        keeps counting them), so a stream's memory stays bounded however long it runs."""
        for key in self._open:
            taken = key.spill_events(SPILL_EVENTS)
            if taken is None:
                continue
            arrays, tokens, stream_id, t0_perf_ns, start_ns = taken
            _, seq, prev_t_ns = self._spilled.get(key) or (stream_id, 0, -1)
            n = len(arrays[0]) // 8
            self._events.add_part(arrays, tokens, stream_id, t0_perf_ns, start_ns, seq, prev_t_ns)
            self._spilled[key] = (stream_id, seq + n, int.from_bytes(arrays[0][-8:], sys.byteorder, signed=True))
            self.events_spilled += n
            self.events_recorded += n

    def add(self, record: StreamRecord, events: EventBuffer, key=None) -> None:
        """Take one finished stream (opened on ``key``, if it was); ``events`` (the user's own buffer,
        its events not spilled) is emptied."""
        n = len(events)
        self._open.discard(key)
        sid, seq, prev_t_ns = self._spilled.pop(key, None) or (record.stream_id, 0, -1)
        if sid != record.stream_id:  # (a stream that raised is recorded under a new id: harness_error)
            log.warning("stream %s: its %s events taken while it was open are under stream_id %s", record.stream_id,
                        seq, sid)
            seq, prev_t_ns = 0, -1
        elif seq + n != record.events:
            log.warning("stream %s: %s events recorded, its record counts %s", record.stream_id, seq + n,
                        record.events)
        mended = self._events.take(events, record.stream_id, record.t0_perf_ns, record.start_ns, seq, prev_t_ns)
        if mended:
            log.warning("stream %s: %s", record.stream_id, mended)
        self._streams.append(record)
        self.streams_recorded += 1
        self.events_recorded += n
        outcome = record.outcome
        self.outcomes[outcome] = self.outcomes.get(outcome, 0) + 1

    def start(self) -> None:
        import gevent

        if self._loop is None:
            self._loop = gevent.spawn(self._flush_forever)

    def _flush_forever(self) -> None:
        import gevent

        while True:
            gevent.sleep(self.flush_interval_s)
            self.flush()
            self.drain()

    def drain(self) -> None:
        """Let a sink that ships batches (a worker's) send what its thread has converted."""
        drain = getattr(self.sink, "drain", None)
        if drain is not None:
            drain()

    def flush(self, wait: bool = False) -> None:
        """Hand the streams recorded so far to the writer; ``wait``: and have them written.

        One flush at a time: the flush loop and the run's end (or the web UI's report) may both
        flush, and a flush that resumed first after the same write would otherwise hand a new
        batch to the thread which the other then neither waited for nor wrote, letting the files
        close under it (every user's last stream would be lost).
        """
        with self._flushing:
            if self._pending is not None:
                self._pending.get()  # one write at a time, in order
                self._pending = None
            self.spill()
            if self._streams or len(self._events):
                streams, events = self._streams, self._events
                self._streams, self._events = [], EventBuffer()
                if self.threaded and not wait:
                    if self._pool is None:
                        from gevent.threadpool import ThreadPool

                        self._pool = ThreadPool(1)
                        self._pool.spawn(_yield_cpu_to_the_loop).get()
                    self._pending = self._pool.spawn(self._write, streams, events)
                else:  # the run's end (or unthreaded): write here, in order after the one awaited above
                    self._write(streams, events)
            self._tell_disk_full()

    def _tell_disk_full(self) -> None:
        """``on_disk_full`` hears once that the disk filled, here in a greenlet (not the writer thread)."""
        full = getattr(self.sink, "disk_full", None)
        if full is not None and not self._disk_full_told:
            self._disk_full_told = True
            if self.on_disk_full is not None:
                self.on_disk_full(full)

    def close_sink(self) -> None:
        """Write everything recorded and close the sink's files, with no write in flight.

        The recorder stays usable: a later stream starts the sink's next shard.
        """
        with self._flushing:  # no other flush may hand the thread a batch between these steps
            self.flush(wait=True)
            self.drain()
            close = getattr(self.sink, "close", None)
            if close is not None:
                close()
            self._tell_disk_full()

    def _write(self, streams: list[StreamRecord], events: EventBuffer) -> None:
        try:
            self.sink(streams, events)
        except BaseException as err:  # keep the run going; the error is reported at the end
            log.error("writing results failed: %s", err)
            self.write_error = err
            self._rescue(streams)

    def _rescue(self, streams: list[StreamRecord]) -> None:
        """A batch that could not become Parquet is kept as JSON lines rather than lost."""
        run_dir = getattr(self.sink, "run_dir", None)
        if run_dir is None:
            return
        try:
            with open(run_dir / "streams-unwritten.jsonl", "a") as out:
                for record in streams:
                    out.write(json.dumps(record._asdict(), default=str) + "\n")
        except OSError as err:
            log.error("could not keep the unwritten batch either: %s", err)

    def close(self) -> None:
        if self._loop is not None:
            self._loop.kill()
            self._loop = None
        self.close_sink()
        if self._pool is not None:
            self._pool.kill()
            self._pool = None
