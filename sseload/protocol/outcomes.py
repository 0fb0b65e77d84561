"""How a stream ended: every outcome, whether it counts as an error, its colour, what it means.

This is the one definition. sseload.protocol.classify decides which outcome a stream gets, from
the response's state (sseload.protocol.response); everything else (results, thresholds, charts,
Locust's statistics, the web UI) reads this module, and a test holds the README's outcome table to it.
"""

from __future__ import annotations

from enum import StrEnum


class Outcome(StrEnum):
    """One stream's ending. A ``str``: it compares equal to its name and is stored as one."""

    error: bool  # counts in error_rate (cutoffs have cutoff_rate of their own)
    color: str  # matplotlib colour in charts
    meaning: str  # what ended the stream this way, for people

    def __new__(cls, value: str, error: bool, color: str, meaning: str) -> Outcome:
        member = str.__new__(cls, value)
        member._value_ = value
        member.error = error
        member.color = color
        member.meaning = meaning
        return member

    OK = ("ok", False, "#2ca02c", "completed by the scenario's completion rule")
    CUTOFF = ("cutoff", False, "#9467bd",
              "the gateway's limit ended it: a 504, or the stream cut (or ended early) at the limit")
    TIMEOUT = ("timeout", True, "#8c564b", "no bytes for read_timeout_s (or none of the request taken for as long), "
               "or still open at the harness's deadline (limit + grace)")
    RESET = ("reset", True, "#d62728", "the connection broke (RST, or closed before the response or body ended, "
             "a kept-alive one under a request that went out included)")
    INCOMPLETE = ("incomplete", True, "#bcbd22", "the response ended cleanly without the completion event")
    EVENT_ERROR = ("event_error", True, "#a6005a",
                   "the service sent `event: error`, or (LLM streams) an error in a chunk, as its API words one")
    HTTP_ERROR = ("http_error", True, "#17becf", "any other non-200 answer (the error body's code is kept)")
    AUTH_ERROR = ("auth_error", True, "#000000", "401/403, or an APIG authentication error code")
    THROTTLED = ("throttled", True, "#ff7f0e", "429, or APIG.0308 (throttling threshold reached)")
    TOO_LARGE = ("too_large", True, "#7f7f7f", "the body is over the gateway limit: skipped, or answered 413")
    PROTOCOL_ERROR = ("protocol_error", True, "#1f77b4",
                      "not text/event-stream, malformed HTTP or body framing, an event over max_event_bytes, or a "
                      "compressed body past max_decoded_bytes or max_decode_ratio (a decompression bomb)")
    CONNECT_ERROR = ("connect_error", True, "#8b0000",
                     "refused, TLS verification or handshake failed, connect timeout, any other error while connecting")
    RECONNECTED = ("reconnected", False, "#6baed6",
                   "reconnect mode: the connection ended (closed, cut or timed out) and the feed reconnected")
    REDIRECTED = ("redirected", False, "#393b79",
                  "a redirect on the same host that the harness followed: the request it led to is the next row")
    ABANDONED = ("abandoned", True, "#e377c2",
                 "LLM streams with [load] patience_s: no output token came in time and the user gave up (the "
                 "connection closed, as a browser's would)")
    CANCELLED = ("cancelled", False, "#c7c7c7", "the run stopped (or its user was stopped) while the stream was open")
    HARNESS_ERROR = ("harness_error", True, "#ffd700", "a bug in a locustfile or in sseload; the error says which")


#: Outcomes counted in error_rate.
ERROR_OUTCOMES = frozenset(o for o in Outcome if o.error)

#: Outcomes of a stream that did what its user wanted: completed, (reconnect mode) a feed's
#: connection that ended and reconnected, or a redirect followed. A run with none fails; Locust
#: counts the rest as failures.
SUCCEEDED = frozenset({Outcome.OK, Outcome.RECONNECTED, Outcome.REDIRECTED})

#: Outcomes that prove the credentials were accepted (the auth stop then never triggers).
AUTHENTICATED = frozenset({Outcome.OK, Outcome.INCOMPLETE, Outcome.CUTOFF, Outcome.EVENT_ERROR,
                           Outcome.TIMEOUT, Outcome.RECONNECTED, Outcome.REDIRECTED})


#: Reconnect mode ([stream] reconnect): the endings after which a feed reconnects, as a browser's
#: EventSource does after the response ends or the network fails. Any other (an HTTP error, not an
#: event stream, a connect error) ends the feed, as it fails an EventSource.
FEED_RECONNECTS = frozenset({Outcome.OK, Outcome.INCOMPLETE, Outcome.RESET, Outcome.TIMEOUT, Outcome.CUTOFF})


def color(name: str) -> str:
    """A chart colour for an outcome name (grey for a name this version does not know)."""
    try:
        return Outcome(name).color
    except ValueError:
        return "#999999"


__all__ = ["AUTHENTICATED", "ERROR_OUTCOMES", "FEED_RECONNECTS", "SUCCEEDED", "Outcome", "color"]
