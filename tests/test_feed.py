"""Reconnect mode's bookkeeping (sseload.protocol.feed), sans I/O: what a feed carries across connections."""

from __future__ import annotations

from array import array

import pytest

from sseload.protocol.feed import Feed
from sseload.protocol.outcomes import Outcome
from sseload.record.records import StreamRecord
from sseload.transport.client import PreparedRequest

pytestmark = pytest.mark.unit
MS = 1_000_000


def connection(stream_id: int, t0_ms: float, duration_ms: float, outcome: Outcome, error: str = "") -> StreamRecord:
    return StreamRecord(
        stream_id=stream_id, worker=0, user=1, t0_perf_ns=int(t0_ms * MS), start_ns=0, scheduled_ns=0,
        connect_ns=-1, upload_ns=0, ttfb_ns=MS, ttfe_ns=2 * MS, duration_ns=int(duration_ms * MS), sign_ns=0,
        auth_fetch_ns=0, status=200, content_type="text/event-stream", charset_warning=False, body_bytes=0,
        response_bytes=100, events=3, malformed_events=0, outcome=outcome, error_code="", error=error, reused=False)


def times(*ms: float) -> array:
    return array("q", [int(t * MS) for t in ms])


def test_a_feed_resumes_by_last_event_id_after_the_servers_retry_and_counts_what_it_missed():
    feed = Feed(reconnect_ms=3000)
    base = PreparedRequest.build("GET", "http://h/feed", {"Accept": "text/event-stream"}, b"")
    assert feed.request(base) is base  # no id seen yet: no Last-Event-ID
    first = feed.record(connection(7, 0, 100, Outcome.RESET, "connection reset"), ("0", "2", 250),
                        times(10, 50, 90), stopping=False)
    assert (first.outcome, first.feed_id, first.reconnect_ns, first.missed_events) == (
        Outcome.RECONNECTED, 7, -1, -1)
    assert first.error == "connection reset" and feed.goes_on and feed.retry_s == 0.25
    assert feed.request(base).headers == {"Accept": "text/event-stream", "Last-Event-ID": "2"}
    assert base.headers == {"Accept": "text/event-stream"}  # the shared request is untouched
    # reconnected 250 ms after the end; the server skipped ids 3 and 4
    second = feed.record(connection(8, 350, 100, Outcome.OK), ("5", "6", None), times(360, 400), stopping=False)
    assert (second.feed_id, second.reconnect_ns, second.missed_events, second.feed_gap_ns) == (
        7, 250 * MS, 2, 270 * MS)
    assert second.outcome is Outcome.RECONNECTED and second.error == "the response ended (ok); reconnecting"
    assert feed.retry_s == 0.25  # no retry: field this time: the last one holds
    # a connection that carried no id keeps the feed's last one
    feed.record(connection(9, 700, 50, Outcome.INCOMPLETE), ("", "", None), times(), stopping=False)
    assert feed.request(base).headers["Last-Event-ID"] == "6"


@pytest.mark.parametrize("outcome", [Outcome.HTTP_ERROR, Outcome.PROTOCOL_ERROR, Outcome.CONNECT_ERROR,
                                     Outcome.AUTH_ERROR, Outcome.CANCELLED])
def test_what_fails_an_eventsource_ends_the_feed_with_its_own_outcome(outcome):
    feed = Feed(reconnect_ms=100)
    feed.record(connection(1, 0, 10, Outcome.RESET), ("1", "1", None), times(5), stopping=False)
    last = feed.record(connection(2, 200, 10, outcome), None, times(), stopping=False)
    assert last.outcome is outcome and not feed.goes_on and last.feed_id == 1


def test_the_run_stopping_ends_the_feed_whatever_ended_the_connection():
    feed = Feed(reconnect_ms=100)
    last = feed.record(connection(1, 0, 10, Outcome.RESET), ("1", "1", None), times(5), stopping=True)
    assert last.outcome is Outcome.RESET and not feed.goes_on


def test_non_numeric_ids_resume_but_missed_events_stay_unknown():
    feed = Feed(reconnect_ms=100)
    feed.record(connection(1, 0, 10, Outcome.RESET), ("a", "b", None), times(5), stopping=False)
    again = feed.record(connection(2, 200, 10, Outcome.RESET), ("c", "d", None), times(205), stopping=False)
    assert again.missed_events == -1 and feed.last_event_id == "d"
