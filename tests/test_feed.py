"""Reconnect mode's bookkeeping (sseload.protocol.feed), sans I/O: what a feed carries across connections."""

from __future__ import annotations

import pytest

from sseload.protocol.feed import Feed
from sseload.protocol.outcomes import Outcome
from sseload.transport.client import PreparedRequest
from tests.conftest import MS, connection_record, times_ns

pytestmark = pytest.mark.unit


def test_a_feed_resumes_by_last_event_id_after_the_servers_retry_and_counts_what_it_missed():
    feed = Feed(reconnect_ms=3000)
    base = PreparedRequest.build("GET", "http://h/feed", {"Accept": "text/event-stream"}, b"")
    assert feed.request(base) is base  # no id seen yet: no Last-Event-ID
    first = feed.record(connection_record(7, 0, 100, Outcome.RESET, "connection reset"), ("0", "2", 250),
                        times_ns(10, 50, 90), stopping=False)
    assert (first.outcome, first.feed_id, first.reconnect_ns, first.missed_events) == (
        Outcome.RECONNECTED, 7, -1, -1)
    assert first.error == "connection reset" and feed.goes_on and feed.retry_s == 0.25
    assert feed.request(base).headers == {"Accept": "text/event-stream", "Last-Event-ID": "2"}
    assert base.headers == {"Accept": "text/event-stream"}  # the shared request is untouched
    # reconnected 250 ms after the end; the server skipped ids 3 and 4
    second = feed.record(connection_record(8, 350, 100, Outcome.OK), ("5", "6", None), times_ns(360, 400),
                         stopping=False)
    assert (second.feed_id, second.reconnect_ns, second.missed_events, second.feed_gap_ns) == (
        7, 250 * MS, 2, 270 * MS)
    assert second.outcome is Outcome.RECONNECTED and second.error == "the response ended (ok); reconnecting"
    assert feed.retry_s == 0.25  # no retry: field this time: the last one holds
    # a connection that carried no id keeps the feed's last one
    feed.record(connection_record(9, 700, 50, Outcome.INCOMPLETE), ("", "", None), times_ns(), stopping=False)
    assert feed.request(base).headers["Last-Event-ID"] == "6"


@pytest.mark.parametrize("outcome", [Outcome.HTTP_ERROR, Outcome.PROTOCOL_ERROR, Outcome.CONNECT_ERROR,
                                     Outcome.AUTH_ERROR, Outcome.CANCELLED])
def test_what_fails_an_eventsource_ends_the_feed_with_its_own_outcome(outcome):
    feed = Feed(reconnect_ms=100)
    feed.record(connection_record(1, 0, 10, Outcome.RESET), ("1", "1", None), times_ns(5), stopping=False)
    last = feed.record(connection_record(2, 200, 10, outcome), None, times_ns(), stopping=False)
    assert last.outcome is outcome and not feed.goes_on and last.feed_id == 1


def test_the_run_stopping_ends_the_feed_whatever_ended_the_connection():
    feed = Feed(reconnect_ms=100)
    last = feed.record(connection_record(1, 0, 10, Outcome.RESET), ("1", "1", None), times_ns(5), stopping=True)
    assert last.outcome is Outcome.RESET and not feed.goes_on


def test_non_numeric_ids_resume_but_missed_events_stay_unknown():
    feed = Feed(reconnect_ms=100)
    feed.record(connection_record(1, 0, 10, Outcome.RESET), ("a", "b", None), times_ns(5), stopping=False)
    again = feed.record(connection_record(2, 200, 10, Outcome.RESET), ("c", "d", None), times_ns(205), stopping=False)
    assert again.missed_events == -1 and feed.last_event_id == "d"
