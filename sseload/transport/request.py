"""Where streams go and what they send, built once: the resolved :class:`Endpoint` and the
:class:`PreparedRequest` (its body never rebuilt or copied, its target percent-encoded as browsers
send it)."""

from __future__ import annotations

import re
import socket
from dataclasses import dataclass
from urllib.parse import quote, urlsplit, urlunsplit

from sseload.auth.apig import payload_sha256
from sseload.scenario.model import BODYLESS_METHODS

_TARGET_SAFE = "/%:@!$&'()*+,;=-._~?"  # RFC 3986 pchar and query characters, and '%' (already encoded)
_UNSAFE_IN_TARGET = re.compile(r"[^A-Za-z0-9/%:@!$&'()*+,;=\-._~?]")


@dataclass(frozen=True)
class Endpoint:
    """Where streams go: resolved once per process, not per connection."""

    scheme: str
    host: str
    port: int
    family: int
    sockaddr: tuple
    host_header: str

    @classmethod
    def resolve(cls, url: str) -> Endpoint:
        parts = urlsplit(url)
        if parts.scheme not in ("http", "https") or not parts.hostname:
            raise ValueError(f"{url!r} is not an http:// or https:// URL with a host")
        port = parts.port or (443 if parts.scheme == "https" else 80)
        try:
            infos = socket.getaddrinfo(parts.hostname, port, type=socket.SOCK_STREAM)
        except socket.gaierror as err:
            raise ConnectionError(
                f"cannot resolve host {parts.hostname!r} ({err.strerror}); check the URL or -H/--host"
            ) from None
        family, _, _, _, sockaddr = infos[0]
        default = 443 if parts.scheme == "https" else 80
        host = parts.hostname if ":" not in parts.hostname else f"[{parts.hostname}]"
        host_header = host if port == default else f"{host}:{port}"
        return cls(parts.scheme, parts.hostname, port, family, sockaddr, host_header)


@dataclass
class PreparedRequest:
    """A request built once and sent many times: the body is never rebuilt or copied."""

    method: str
    url: str
    path: str  # path and query as sent
    headers: dict[str, str]
    body: bytes
    body_sha256: str
    body_bytes: int  # the body's size; a body skipped for its size is never built (then body is b"")

    @classmethod
    def build(cls, method: str, url: str, headers: dict[str, str], body: bytes,
              skipped_bytes: int = -1) -> PreparedRequest:
        """``skipped_bytes``: the size of a body that is never sent (over the gateway's limit), so never built."""
        parts = urlsplit(url)
        if _UNSAFE_IN_TARGET.search(parts.path + parts.query):  # a space, a control or a non-ASCII character
            # would break the request line: percent-encoded, as browsers and curl do (what is encoded stays)
            parts = parts._replace(path=quote(parts.path, safe=_TARGET_SAFE),
                                   query=quote(parts.query, safe=_TARGET_SAFE))
            url = urlunsplit(parts)
        path = (parts.path or "/") + (f"?{parts.query}" if parts.query else "")
        size = skipped_bytes if skipped_bytes >= 0 else len(body)
        return cls(method.upper(), url, path, dict(headers), body, payload_sha256(body), size)


def request_head(req: PreparedRequest, headers: dict[str, str], host_header: str, close: bool = False) -> bytes:
    """The request head: the scenario's headers replace sseload's defaults, never repeat them;
    ``close``: one connection per stream ([stream] connection = "new")."""
    given = {k.lower() for k in headers}
    lines = [f"{req.method} {req.path} HTTP/1.1"]
    if "host" not in given:
        lines.append(f"Host: {host_header}")
    lines += [f"{k}: {v}" for k, v in headers.items()]
    if "content-length" not in given and (req.body or req.method not in BODYLESS_METHODS):
        lines.append(f"Content-Length: {len(req.body)}")
    if "accept" not in given:
        lines.append("Accept: text/event-stream")
    if close and "connection" not in given:
        lines.append("Connection: close")
    text = "\r\n".join(lines)
    # The scenario's headers were checked once (scenario.check_header); these counts catch, for the
    # price of two scans, one made at send time (a signature, a fetched token) that would break the head.
    breaks = len(lines) - 1
    if text.count("\n") != breaks or text.count("\r") != breaks or "\0" in text:
        raise HeadError(_unsendable(req, headers, "holds a line break or NUL"))
    try:
        return (text + "\r\n\r\n").encode("latin-1")
    except UnicodeEncodeError:
        raise HeadError(_unsendable(req, headers, "has a character that is not Latin-1")) from None


class HeadError(ValueError):
    """A request head HTTP/1.1 cannot carry; the message names the header, never its value."""


def _unsendable(req: PreparedRequest, headers: dict[str, str], what: str) -> str:
    """Which part of a request head cannot be sent, by name (a value may be a secret)."""
    def bad(text: str) -> bool:
        return "\r" in text or "\n" in text or "\0" in text or not _latin1(text)

    for name, value in headers.items():
        if bad(name) or bad(value):
            return f"the request header {name!r} {what} (HTTP/1.1 sends header bytes as Latin-1, one line each)"
    return f"the request line ({req.method!r} and the path) {what}"


def _latin1(text: str) -> bool:
    try:
        text.encode("latin-1")
    except UnicodeEncodeError:
        return False
    return True
