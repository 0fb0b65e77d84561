"""The event logs under test, both twins, and what a test can observe of one (tests/test_event_log.py,
tests/test_body_framing.py and others feed them)."""

from __future__ import annotations

import array
from typing import NamedTuple

import pytest

from sseload.protocol.sse import PyEventLog, SSEProtocolError

try:
    from sseload._sse import EventLog as CEventLog
except ImportError:  # not built here: the twin's tests skip, the specification's still run
    CEventLog = None

KEY = b'"t_send_ns":'
needs_c = pytest.mark.skipif(CEventLog is None, reason="sseload._sse was not built")
BOTH = [PyEventLog, pytest.param(CEventLog, marks=needs_c, id="compiled")]


def ints(raw: bytes) -> list[int]:
    return array.array("q", raw).tolist()


class Seen(NamedTuple):
    """Everything observable of a log after a stream."""

    notable: list
    t_ns: list[int]
    size: list[int]
    server: list[int]
    malformed: int
    retry: int | None
    last_event_id: str
    n: int
    first_t_ns: int
    error: str | None
    first_event_id: str
    llm: list[int]
    prompt_tokens: int
    outputs: list[str]
    reasoning_tokens: int
    cached_tokens: int


def run(cls, stream: bytes, cuts=(), **kw) -> Seen:
    """A new ``cls(**kw)`` fed ``stream`` split at ``cuts``; everything observable, or the error."""
    return observe(cls(**kw), stream, cuts)


def observe(log, stream: bytes, cuts=()) -> Seen:
    """Feed ``stream`` split at ``cuts`` (read i at time i); everything observable, or the error."""
    notable, last, error = [], 0, None
    for t, cut in enumerate(sorted(cuts) + [len(stream)]):
        try:
            notable += log.feed(stream[last:cut], t)
        except SSEProtocolError as err:
            error = str(err)
            break
        last = cut
    t_ns, size, server = log.arrays()
    return Seen(notable, ints(t_ns), ints(size), ints(server), log.malformed, log.retry,
                log.last_event_id, len(log), log.first_t_ns, error, log.first_event_id,
                ints(log.llm()), log.prompt_tokens, log.outputs(), log.reasoning_tokens, log.cached_tokens)
