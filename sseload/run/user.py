"""The Locust user that opens signed SSE streams and records what its users would feel.

Usable from any locustfile::

    from sseload import SSEUser

    class Chat(SSEUser):
        pass  # configured by --scenario; or override `stream_task` to vary requests

Per stream it reports one entry to Locust's own statistics, ``stream (TTFE)``: its response
time is the time to first event and a failure carries the outcome, so Locust's RPS is streams
per second. The full record goes to the recorder.
"""

from __future__ import annotations

import itertools
import logging
import time

import gevent
import numpy as np
from locust import User, task
from locust.exception import StopUser
from locust.user.users import LOCUST_STATE_STOPPING

from sseload.protocol.dialects import OPENAI, answer_text
from sseload.protocol.feed import Feed
from sseload.protocol.outcomes import SUCCEEDED, Outcome
from sseload.record.metrics import TTFE
from sseload.record.records import EventBuffer, StreamRecord
from sseload.run import hooks
from sseload.transport.client import PreparedRequest, SSEConnection
from sseload.views.live import TokenFacts

_user_ids = itertools.count(1)
_GOLDEN = 0.6180339887498949


def patience_s(patience: float, share: float, user_id: int) -> float:
    """How long this user waits for a first output token ([load] patience_s; 0: for ever): the
    users are impatient in ``share``, spread evenly over their numbers (a low-discrepancy sequence)."""
    return patience if patience > 0 and (user_id * _GOLDEN) % 1.0 < share else 0.0
_harness_error_logged = False
log = logging.getLogger("sseload")
LOCUST_ENTRY = f"stream ({TTFE.label})"  # the one entry per stream in Locust's statistics
FAST_FAILURE_NS = 100_000_000  # a failed stream this short would spin its user: back off
MAX_BACKOFF_S = 2.0


def sleep_until(wall_ns: int) -> None:
    """Until the wall clock reads ``wall_ns``, never before: the event loop's timers count from the
    time its iteration began, so one sleep can wake as early as the greenlet had run by then."""
    while (left_ns := wall_ns - time.time_ns()) > 0:
        gevent.sleep(left_ns / 1e9)


class StreamFailure(Exception):
    """Carries a stream's outcome into Locust's failure table."""


class SSEUser(User):
    abstract = True
    wait_time = None  # set from [load] wait_s unless a subclass sets its own

    def on_start(self) -> None:
        self.process = hooks.role_of(self.environment)  # this process's role: it records what users do
        self.ctx = self.process.plan  # the run plan: its scenario, its URL (a locustfile of one's own reads them)
        runner = self.environment.runner
        worker = getattr(runner, "worker_index", 0) or 0
        self.user_id = next(_user_ids)
        self.conn = SSEConnection(self.ctx.endpoint, self.ctx.rules, self.ctx.auth, self.ctx.tls,
                                  worker=worker, user=self.user_id, tuning=self.process.tuning)
        self.conn.patience_s = patience_s(self.ctx.rules.patience_s, self.ctx.scenario.load.patience_share,
                                          self.user_id)
        self._events = EventBuffer()
        self._fast_failures = 0

    def on_stop(self) -> None:
        self.conn.close()

    @task
    def stream_task(self) -> None:
        load = self.ctx.scenario.load
        scenario = self.ctx.scenario
        run = self.feed if scenario.stream.reconnect else self.conversation if scenario.body.multi_turn else self.stream
        if load.trace:  # a trace's line at its time (sseload.scenario.arrivals.TraceArrivals), its own request
            taken = self.process.trace_arrivals().take()
            if taken is None:  # this process's share is sent, or the run time is over
                raise StopUser()
            scheduled, line = taken
            request = self.ctx.trace_request(line)
            sleep_until(scheduled)
            self.stream(request, scheduled_ns=scheduled)
            return
        if load.arrival == "closed":
            run()
            return
        # Open model: the process's next arrival, whichever user is free takes it (sseload.scenario.arrivals).
        # A start that comes late because every user was busy is recorded as schedule lag, not
        # silently shifted (coordinated omission).
        scheduled = self.process.arrivals().take()
        if scheduled is None:  # the run time is over: no arrival is scheduled after it, so this user is done
            raise StopUser()
        sleep_until(scheduled)
        run(scheduled_ns=scheduled)

    def feed(self, scheduled_ns: int = 0) -> None:
        """Reconnect mode: one long-lived feed, reconnecting as a browser's EventSource does (after
        the server's retry:, with Last-Event-ID) until the run stops or an ending that fails an
        EventSource (sseload.protocol.feed). Each connection is a stream record of the feed."""
        feed = Feed(self.ctx.scenario.stream.reconnect_ms)
        base = self.ctx.next_request(self.conn.worker)
        while True:
            record = self.stream(feed.request(base), scheduled_ns, feed=feed)
            if not feed.goes_on or self._state == LOCUST_STATE_STOPPING:  # ended, or Locust stops this user
                return
            scheduled_ns = 0
            wait_s = feed.retry_s
            if record.events == 0 and record.duration_ns < FAST_FAILURE_NS:  # connections that end at once
                self._fast_failures += 1  # (retry: 0, a server closing on accept) must not spin either
                wait_s = max(wait_s, self._backoff_s())
            else:
                self._fast_failures = 0
            gevent.sleep(wait_s)

    def conversation(self, scheduled_ns: int = 0) -> None:
        """Multi-turn ([body] multi_turn): the dataset's next conversation, each turn sent once the
        answer before it has come, with the history (every earlier turn and the answer it got). A
        turn that does not end ok ends the conversation: the history it needs does not exist."""
        conv = self.ctx.next_conversation(self.conn.worker)
        history: list[dict] = []
        first = 0
        for turn in range(len(conv.turns)):
            record = self.stream(self.ctx.request_for(conv.body(history, turn)), scheduled_ns,
                                 turn=(first, turn + 1))
            first = record.conversation_id
            if record.outcome is not Outcome.OK or self._state == LOCUST_STATE_STOPPING:
                return
            history += [{"role": "user", "content": conv.turns[turn]},
                        {"role": "assistant",
                         "content": answer_text(self.ctx.rules.dialect or OPENAI, self.conn.outputs)}]
            scheduled_ns = 0

    def stream(self, request: PreparedRequest | None = None, scheduled_ns: int = 0,
               feed: Feed | None = None, turn: tuple[int, int] | None = None) -> StreamRecord:
        """Run one stream (one connection of ``feed`` in reconnect mode) and record it; returns its record."""
        process, scenario = self.process, self.ctx.scenario
        request = request or self.ctx.next_request(self.conn.worker)
        process.streams_started += 1
        skipped = request.body_bytes > scenario.gateway.max_body_bytes and scenario.body.over_limit == "skip"
        if skipped:
            record = self.conn.skipped(request, Outcome.TOO_LARGE,
                                       f"body of {request.body_bytes} bytes is over the gateway limit of "
                                       f"{scenario.gateway.max_body_bytes} bytes; not sent", scheduled_ns)
        else:
            process.active_streams += 1
            process.live.stream_opened(self.conn)
            process.recorder.stream_opened(self.conn)
            try:
                record = self.conn.stream(request, self._events, scheduled_ns)
            except Exception as err:  # a bug (conn.stream records every ending): still one record per stream
                record = self._harness_error(request, err, scheduled_ns)
            finally:
                process.active_streams -= 1
            for attempt in self.conn.take_attempts():  # requests lost with a kept-alive connection: rows too
                process.streams_started += 1
                process.live.add_stream(attempt.outcome, None, np.empty(0, np.int64))
                process.recorder.add(attempt, EventBuffer())
                self._report(attempt)
                process.after_stream(attempt)
            if self.conn.unsent:  # the stop came while connecting: nothing was sent, so no stream ran
                process.streams_started -= 1
                process.live.forget(self.conn)
                process.recorder.forget(self.conn)
                self._events = EventBuffer()
                raise self.conn.interrupted
            if feed is not None:
                record = feed.record(record, self.conn.log_ids, self.conn.event_span,
                                     stopping=self.conn.interrupted is not None)
        if turn is not None:  # (the conversation's first stream_id, 0 on its first turn; this turn's number)
            record = record._replace(conversation_id=turn[0] or record.stream_id, turn=turn[1])
        ttfe = record.ttfe_ns
        t = np.frombuffer(self._events.t_ns, dtype=np.int64)  # (those not spilled: the last of its events)
        process.live.add_stream(record.outcome, ttfe / 1e6 if ttfe >= 0 else None, t, key=self.conn,
                                tokens=TokenFacts.of(record), first=record.events - t.size)
        del t  # the view: the recorder empties t_ns next, which an exported buffer forbids
        process.recorder.add(record, self._events, key=self.conn)
        self._report(record)
        self._back_off(record)
        process.after_stream(record, sent=not skipped)
        if self.conn.interrupted is not None:
            raise self.conn.interrupted
        return record

    def _harness_error(self, request: PreparedRequest, err: Exception, scheduled_ns: int) -> StreamRecord:
        """A stream that raised instead of ending: recorded as harness_error (its traceback logged
        once per process), on a fresh connection next time, so no stream started goes unrecorded."""
        global _harness_error_logged
        if not _harness_error_logged:
            _harness_error_logged = True
            log.exception("sseload: a stream raised instead of ending (recorded as harness_error; a bug: "
                          "please report it)")
        self.conn.close()
        self._events = EventBuffer()
        return self.conn.skipped(request, Outcome.HARNESS_ERROR, f"{type(err).__name__}: {err}", scheduled_ns)

    def _back_off(self, record: StreamRecord) -> None:
        """A user whose streams fail fast (refused, 404, skipped) must not spin thousands a second:
        it waits [load] failure_backoff_s, doubling with each fast failure in a row up to 2 s. In the
        open model the schedule paces the user already."""
        load = self.ctx.scenario.load
        if record.outcome.error and record.duration_ns < FAST_FAILURE_NS and load.arrival == "closed":
            self._fast_failures += 1
            if load.failure_backoff_s > 0:
                gevent.sleep(self._backoff_s())
        elif record.outcome is not Outcome.RECONNECTED:  # a feed's reconnects count their own (feed)
            self._fast_failures = 0

    def _backoff_s(self) -> float:
        """[load] failure_backoff_s, doubled with each fast failure in a row, at most MAX_BACKOFF_S."""
        backoff = self.ctx.scenario.load.failure_backoff_s
        return min(MAX_BACKOFF_S, backoff * 2 ** min(self._fast_failures - 1, 16)) if backoff > 0 else 0.0

    def _report(self, record: StreamRecord) -> None:
        """One entry per stream in Locust's own statistics, so its RPS is streams per second and its
        response-time charts show TTFE (a stream without a first event: its duration). A stream the
        run's stop cancelled is no failure of the service: it is not reported to Locust at all (the
        report counts it as `cancelled`)."""
        outcome = record.outcome
        if outcome is Outcome.CANCELLED:
            return
        ttfe_ns = record.ttfe_ns
        code = record.error_code
        shown_ns = ttfe_ns if ttfe_ns >= 0 else record.duration_ns
        self.environment.events.request.fire(
            request_type="SSE", name=LOCUST_ENTRY, response_time=shown_ns / 1e6,
            response_length=record.response_bytes,
            exception=None if outcome in SUCCEEDED else StreamFailure(f"{outcome} {code}".strip()), context={})
