"""Reconnect mode ([stream] reconnect): one long-lived feed over many connections, sans I/O.

A browser's EventSource reconnects when the response ends or the network fails, after the
reconnection time the server last set with ``retry:``, and sends the last event id it saw as
``Last-Event-ID`` so the server can resume (WHATWG HTML, "Server-sent events", 9.2.3-9.2.4). A
news or chat feed is built on that, and behind a gateway that cuts every request at its limit
every feed reconnects that often. `Feed` keeps what outlives a connection (the feed's id, the
last event id, the reconnection time, when the last connection ended and its last event came)
and turns each connection's record into a feed's: `reconnected` when the feed goes on, its
time to reconnect, the event ids it missed and the gap its user saw across the reconnect.
The user (sseload.run.user) does the waiting and the sending.
"""

from __future__ import annotations

import dataclasses

from sseload.protocol.outcomes import FEED_RECONNECTS, Outcome
from sseload.record.records import StreamRecord


class Feed:
    """One feed's state across its connections."""

    def __init__(self, reconnect_ms: float) -> None:
        self.retry_ms = reconnect_ms  # until the server sends retry:
        self.feed_id = 0  # the stream_id of the first connection, once it ran
        self.connections = 0
        self.last_event_id = ""  # what Last-Event-ID carries; "" sends none
        self.goes_on = True
        self._prev_end_ns = -1
        self._prev_last_event_ns = -1

    def request(self, base):
        """The request of the next connection: ``base`` with Last-Event-ID once an id was seen.

        As a browser sends it (WHATWG HTML 9.2.4, EventSource reestablishing the connection): the
        id encoded as UTF-8. A request's header values are str sent as Latin-1, which maps each code
        point below 256 to that byte, so the UTF-8 bytes go in as the str of those code points (the
        convention of PEP 3333's "bytes as str"). The parser already dropped an id holding NUL, and
        an id is one line: no line break can reach the head."""
        if not self.last_event_id:
            return base
        wire = self.last_event_id.encode("utf-8", "replace").decode("latin-1")
        return dataclasses.replace(base, headers={**base.headers, "Last-Event-ID": wire})

    def record(self, rec: StreamRecord, ids: tuple[str, str, int | None] | None, event_t_ns,
               stopping: bool) -> StreamRecord:
        """The connection's record as the feed's; ``ids``: its log's (first event id, last event id,
        retry), None when nothing was read; ``event_t_ns``: its first and last events' times (perf
        clock; or all of them), empty without events;
        ``stopping``: the run is stopping (the feed then ends whatever ended the connection)."""
        first_id, last_id, retry = ids or ("", "", None)
        if retry is not None:
            self.retry_ms = float(retry)
        fields: dict[str, object] = {"feed_id": self.feed_id or rec.stream_id}
        if self.connections:  # a reconnect: how long it took and what its user missed
            fields["reconnect_ns"] = max(0, rec.t0_perf_ns - self._prev_end_ns)
            if len(event_t_ns) and self._prev_last_event_ns >= 0:
                fields["feed_gap_ns"] = event_t_ns[0] - self._prev_last_event_ns
            first_n, last_n = _number(first_id), _number(self.last_event_id)
            if first_n is not None and last_n is not None and len(event_t_ns):
                fields["missed_events"] = max(0, first_n - last_n - 1)
        self.feed_id = fields["feed_id"]
        self.connections += 1
        self._prev_end_ns = rec.t0_perf_ns + rec.duration_ns
        if len(event_t_ns):
            self._prev_last_event_ns = event_t_ns[-1]
        if last_id:  # the EventSource's last event id outlives a connection that sent none
            self.last_event_id = last_id
        self.goes_on = rec.outcome in FEED_RECONNECTS and not stopping
        if self.goes_on:
            fields["outcome"] = Outcome.RECONNECTED
            if not rec.error:
                fields["error"] = f"the response ended ({rec.outcome}); reconnecting"
        return rec._replace(**fields)

    @property
    def retry_s(self) -> float:
        return self.retry_ms / 1000.0


def _number(event_id: str) -> int | None:
    """A numbered id's number (ASCII digits only: "²" is a digit to str.isdigit, but not to int)."""
    return int(event_id) if event_id.isascii() and event_id.isdigit() else None


__all__ = ["Feed"]
