"""The gateway contract -> an outcome: how a stream that ended is classified, in one place.

Two entries: :func:`classify_error` for an exception that ended a stream (connecting, sending,
reading), and :func:`verdict` for a response read as far as it went (its state, status and error
body). Both return an :class:`~sseload.protocol.outcomes.Outcome` with its error text. The
gateway's codes they read are sseload.protocol.gateway's; docs/gateway.md says what the gateway
does that these rules rely on.
"""

from __future__ import annotations

import socket
import ssl
from typing import TYPE_CHECKING

import httptools

from sseload.protocol.gateway import AUTH_CODES, CUTOFF_CODES, THROTTLE_CODES, error_code_of
from sseload.protocol.outcomes import Outcome
from sseload.protocol.state import State

if TYPE_CHECKING:
    from sseload.protocol.response import Response, StreamRules

REDIRECTS = frozenset({301, 302, 303, 307, 308})


class DeadlineExceeded(Exception):
    """The harness's own total-stream deadline passed."""


def not_http_hint(first: bytes) -> str:
    """What a response that is not HTTP/1.x most likely is, from its first bytes; "" if it looks like HTTP."""
    if first[:1] in (b"\x15", b"\x16") and first[1:2] == b"\x03":
        return "the server speaks TLS on this port: use https://"
    if first.startswith(b"PRI * HTTP/2") or (len(first) >= 9 and first[3:4] == b"\x04" and first[4:5] in b"\x00\x01"):
        return ("the server answered with HTTP/2 only; sseload speaks HTTP/1.1 (as the gateway does): "
                "use an HTTP/1.1 endpoint")
    if not first.startswith(b"HTTP/"[: len(first)]):
        return (f"the server did not answer in HTTP/1.x (its first bytes: {first[:16]!r}); "
                "is this the right host and port?")
    return ""


def classify_error(exc: BaseException, phase: str, rules: StreamRules, host: str) -> tuple[Outcome, str]:
    """The outcome and text of an exception that ended a stream in ``phase`` (connect, tls, send, read)."""
    connecting = phase in ("connect", "tls")
    if isinstance(exc, DeadlineExceeded):
        return Outcome.TIMEOUT, f"stream still open after the harness deadline of {rules.deadline_s:g} s"
    if isinstance(exc, (socket.timeout, TimeoutError)):
        if phase == "tls":
            return Outcome.CONNECT_ERROR, (f"the TLS handshake with {host} timed out after {rules.connect_timeout_s:g}"
                                           " s: is it an HTTPS port? (http:// for a plain one)")
        if connecting:
            return Outcome.CONNECT_ERROR, f"connect to {host} timed out after {rules.connect_timeout_s:g} s"
        return Outcome.TIMEOUT, f"no bytes for {rules.read_timeout_s:g} s (read_timeout_s)"
    if isinstance(exc, ssl.SSLCertVerificationError):
        return Outcome.CONNECT_ERROR, (f"TLS certificate of {host} not trusted ({exc.verify_message}); "
                                       "set [stream] ca_bundle or use --insecure")
    if isinstance(exc, ssl.SSLError):
        reason = getattr(exc, "reason", None) or exc
        if phase == "tls" and str(reason).upper() in ("WRONG_VERSION_NUMBER", "RECORD_LAYER_FAILURE",
                                                      "PACKET_LENGTH_TOO_LONG", "HTTP_REQUEST"):
            return Outcome.CONNECT_ERROR, f"TLS error: {reason}: {host} does not speak TLS on this port; use http://"
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"TLS error: {reason}"
    if isinstance(exc, ConnectionRefusedError):
        return Outcome.CONNECT_ERROR, f"connection refused by {host}; is the service running and the port right?"
    if isinstance(exc, (ConnectionResetError, BrokenPipeError, ConnectionAbortedError)):
        how = "reset" if isinstance(exc, ConnectionResetError) else "broken"
        if phase == "tls":
            return Outcome.CONNECT_ERROR, (f"connection {how} during the TLS handshake: is it an HTTPS port? "
                                           "(http:// for a plain one)")
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"connection {how} during {phase}"
    if isinstance(exc, OSError):
        return (Outcome.CONNECT_ERROR if connecting else Outcome.RESET), f"{phase} failed: {exc.strerror or exc}"
    if isinstance(exc, httptools.HttpParserCallbackError):  # our own callback failed: a bug
        cause = exc.__context__ or exc
        return Outcome.HARNESS_ERROR, f"{type(cause).__name__}: {cause}"
    if isinstance(exc, httptools.HttpParserError):
        return Outcome.PROTOCOL_ERROR, f"malformed HTTP response: {exc}"
    if isinstance(exc, ConnectionError) and "TLS handshake" in str(exc):
        return Outcome.CONNECT_ERROR, f"{exc}: is it an HTTPS port? (http:// for a plain one)"
    return Outcome.HARNESS_ERROR, f"{type(exc).__name__}: {exc}"  # a bug in sseload or a custom user


def verdict(resp: Response, duration_ns: int) -> tuple[Outcome, str, str]:
    """How the stream ended: (outcome, error text, gateway error code), from the response as far as
    it was read and the stream's duration."""
    outcome, error, code = _classify(resp, duration_ns)
    # The gateway's cut looks like a reset (or a clean but early end) that comes at the limit.
    # A timeout is never re-labelled: the harness's own deadline is not the gateway's.
    rules = resp.rules
    if outcome in (Outcome.RESET, Outcome.INCOMPLETE) and duration_ns >= rules.cutoff_after_s * 1e9:
        error = f"ended at {duration_ns / 1e9:.2f} s, at the gateway limit of {rules.limit_s:g} s ({error})"
        outcome = Outcome.CUTOFF
    return outcome, error, code


def _classify(resp: Response, duration_ns: int) -> tuple[Outcome, str, str]:
    if resp.outcome is not None:  # the first failure
        return resp.outcome, resp.error, resp.error_code
    status, rules = resp.status, resp.rules
    if status and status != 200:
        code = error_code_of(resp.error_body) or ""
        error = f"HTTP {status}: {resp.error_body.decode('utf-8', 'replace')}"
        # The gateway's cut is a 504, or a 5xx with a cutoff code that comes at the limit; the
        # same code well before it is the backend failing, not the limit (docs/gateway.md).
        at_limit = duration_ns >= rules.cutoff_after_s * 1e9
        if status == 504 or (code in CUTOFF_CODES and status >= 500 and status != 502 and at_limit):
            return Outcome.CUTOFF, error, code
        if status in (401, 403) or code in AUTH_CODES:
            return Outcome.AUTH_ERROR, error, code
        if status == 429 or code in THROTTLE_CODES:
            return Outcome.THROTTLED, error, code
        if status == 413:
            return Outcome.TOO_LARGE, error, code
        if status in REDIRECTS:
            where = resp.headers.get("location", "nowhere (no Location header)")
            return Outcome.HTTP_ERROR, (f"HTTP {status}: redirected to {where}, not followed (sseload follows up "
                                        f"to {rules.max_redirects} redirects on the same host, [stream] "
                                        "max_redirects): point -H or [request] url at it"), code
        return Outcome.HTTP_ERROR, error, code
    state = resp.state
    if state is State.DRAINING or resp.completed_ns >= 0:  # completed by the rule, before or at the body's end
        return Outcome.OK, "", ""
    if state is State.DONE or state is State.MUST_CLOSE:  # the body ended (by its framing, or at the close)
        if rules.completion in ("close", "auto"):
            return Outcome.OK, "", ""
        return Outcome.INCOMPLETE, f"stream ended without its completion ({rules.completion})", ""
    if not status:
        first = resp.first_bytes
        if first:
            hint = not_http_hint(first)
            return Outcome.RESET, f"connection closed before a whole response head{': ' + hint if hint else ''}", ""
        return Outcome.RESET, ("connection closed before a response: the server closed without answering "
                               "(is it an HTTP/1.1 server? does it want https://?)"), ""
    return Outcome.RESET, "connection closed mid-stream", ""


__all__ = ["REDIRECTS", "DeadlineExceeded", "classify_error", "not_http_hint", "verdict"]
