"""The states of one response and every change between them, in one table (h11's ``_state.py`` is the model).

A :class:`~sseload.protocol.response.Response` is in one :class:`State`; what it learns from the
bytes (a head, the scenario's completion event, the body's end, the close, a failure) is a
:class:`Got`, and :data:`TRANSITIONS` says where each leads. Nothing else changes a state: the
response calls :func:`next_state`, and what the state means (whether reading is over, whether the
connection may carry the next stream, the outcome) is read from it.
"""

from __future__ import annotations

from enum import Enum


class State(Enum):
    """Where a response is. ``over``: nothing more of it matters (the I/O shell stops reading)."""

    over: bool
    meaning: str

    def __new__(cls, value: str, over: bool, meaning: str) -> State:
        member = object.__new__(cls)
        member._value_ = value
        member.over = over
        member.meaning = meaning
        return member

    HEAD = ("head", False, "reading the response head, and any 1xx heads before it")
    BODY = ("body", False, "a 200 text/event-stream body that its framing ends: its events count")
    BODY_TO_CLOSE = ("body to close", False, "the same, without framing: the connection's close ends it")
    ERROR_BODY = ("error body", False, "another status: the start of its body is kept for its error text and code")
    DRAINING = ("draining", False, "completed by the scenario's rule; the rest of a framed body is read so that "
                                   "the connection can carry the next stream")
    DONE = ("done", True, "the body ended by its framing and the head keeps the connection alive: "
                          "it may carry the next stream")
    MUST_CLOSE = ("must close", True, "over, and the connection is not reused: the body ended at the close, its "
                                      "rest was left unread, or the head closes it (Connection: close, HTTP/1.0)")
    FAILED = ("failed", True, "a failure ended the stream; the first failure is its outcome")


class Got(Enum):
    """What a response learns from the bytes, its reader or the I/O shell."""

    EVENT_STREAM = "the final head: 200 text/event-stream, with framing (chunked, a length, or httptools')"
    EVENT_STREAM_TO_CLOSE = "the final head: 200 text/event-stream, with neither a length nor chunks"
    OTHER_HEAD = "the final head: any other status"
    COMPLETION = "the scenario's completion event ([DONE], a terminal event)"
    BODY_END = "the body's framing says it is over"
    CLOSE = "the connection closed (FIN)"
    ERROR_KEPT = "enough of an error answer is kept: the rest does not matter"
    FAILURE = "a broken or refused response, a reset, a timeout, the run stopping (an event error is not a failure)"


S, G = State, Got

#: state -> what it got -> the next state. What a state does not list leaves it as it is: a 1xx
#: head's end, the close in the middle of a framed body (the verdict calls that a reset), anything
#: once failed. A failure once the scenario's rule completed the stream, or once it is over, is not
#: the stream's: it keeps its outcome and only its connection goes.
TRANSITIONS: dict[State, dict[Got, State]] = {
    S.HEAD: {G.EVENT_STREAM: S.BODY, G.EVENT_STREAM_TO_CLOSE: S.BODY_TO_CLOSE, G.OTHER_HEAD: S.ERROR_BODY,
             G.FAILURE: S.FAILED},
    S.BODY: {G.COMPLETION: S.DRAINING, G.BODY_END: S.DONE, G.FAILURE: S.FAILED},
    S.BODY_TO_CLOSE: {G.COMPLETION: S.MUST_CLOSE, G.CLOSE: S.MUST_CLOSE, G.FAILURE: S.FAILED},
    S.ERROR_BODY: {G.BODY_END: S.DONE, G.ERROR_KEPT: S.MUST_CLOSE, G.CLOSE: S.MUST_CLOSE, G.FAILURE: S.FAILED},
    S.DRAINING: {G.BODY_END: S.DONE, G.CLOSE: S.MUST_CLOSE, G.FAILURE: S.MUST_CLOSE},
    S.DONE: {G.FAILURE: S.MUST_CLOSE},
    S.MUST_CLOSE: {},
    S.FAILED: {},
}


def next_state(state: State, got: Got, keeps_alive: bool) -> State:
    """The state after ``got`` in ``state``. ``keeps_alive``: the head lets the connection carry
    another request (HTTP/1.1 keep-alive, no Connection: close); where it does not, DONE is MUST_CLOSE."""
    new = TRANSITIONS[state].get(got, state)
    return S.MUST_CLOSE if new is S.DONE and not keeps_alive else new


__all__ = ["TRANSITIONS", "Got", "State", "next_state"]
