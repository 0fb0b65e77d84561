"""A request a kept-alive connection lost: whether sseload sends it again, and how its row says so.
Pure: no socket, no clock (sseload.transport.client acts on it).

A server may close a kept-alive connection while a request is on its way. HTTP lets a client send
it again on a fresh connection (RFC 9112 section 9.3.1), automatically only for an idempotent
method (RFC 9110 section 9.2.2): the server may have read the request and acted on it before it
closed, and a POST to an LLM is not idempotent. Every request that reached the wire is its own
row (a retry marked ``retried``), so the rows are the requests the server saw; one that never
left (the connection was found closed first) is no request, and goes out on a fresh connection.
"""

from __future__ import annotations

#: RFC 9110 section 9.2.2: what a client may send again without knowing whether the first one was applied.
IDEMPOTENT_METHODS = frozenset({"GET", "HEAD", "PUT", "DELETE", "OPTIONS", "TRACE"})


def may_send_again(method: str) -> bool:
    """A request lost with its kept-alive connection goes out again only if its method is idempotent."""
    return method.upper() in IDEMPOTENT_METHODS


def lost_text(method: str, again: bool) -> str:
    """The error of the row of a request the server closed its kept-alive connection on, unanswered."""
    lost = "the server closed the kept-alive connection after the request went out, before a byte of answer"
    if again:
        return f"{lost}; sent again on a fresh connection ({method} is idempotent): the next row, marked retried"
    return (f"{lost}; not sent again: {method} is not idempotent and the server may have acted on it "
            "(RFC 9110 section 9.2.2)")


__all__ = ["IDEMPOTENT_METHODS", "lost_text", "may_send_again"]
