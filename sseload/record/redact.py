"""What is secret, and text from outside made safe to keep and to show: the one home of both.

Secrets. A request's credentials reach sseload in many ways: an ``[auth]`` method, a header
(``--header``, ``[request] headers``), a URL's query or userinfo, a token fetched at run time.
Every place sseload writes or shows (run.json, Parquet, reports, the console, the web UI)
gets its text through this module, which masks in two ways, as CI systems do:

- by *name*: a header or query parameter is secret when its name is one of
  :data:`SECRET_NAMES`, says one of :data:`SECRET_WORDS`, or was named by the user
  (``[request] secret_headers``); its value is written as :data:`REDACTED`;
- by *value*: every secret value seen (and its percent-, JSON- and Base64-encoded forms) is
  replaced wherever it occurs in text that came back, such as an error body echoing the request.

A secret of fewer than :data:`MIN_VALUE_CHARS` characters is masked by name only: replacing
so short a string inside free text would mangle ordinary words and numbers.

Text from the tested server (error bodies, ``event: error`` data, error codes,
``finish_reason``, content types) is made *visible* before it is kept: control and escape
characters (C0, DEL, C1, bidirectional overrides) become ``\\xNN``/``\\uNNNN`` escapes, so no
terminal or Markdown viewer can be steered by them. :func:`markdown` escapes what Markdown and
HTML would interpret. Nothing here imports Locust or gevent.
"""

from __future__ import annotations

import base64
import binascii
import html
import json
import re
import threading
from collections.abc import Iterable, Mapping
from urllib.parse import parse_qsl, quote, quote_plus, unquote, urlencode, urlsplit, urlunsplit

REDACTED = "<redacted>"
MIN_VALUE_CHARS = 4

#: Credential headers of every auth method sseload speaks, and the usual names elsewhere.
SECRET_NAMES = frozenset({
    "authorization", "proxy-authorization", "cookie", "set-cookie", "x-auth-token", "x-subject-token",
    "x-security-token", "x-apig-appcode", "api-key", "x-api-key", "sig",
})
#: A header or query parameter whose name holds one of these words is secret too.
SECRET_WORDS = ("token", "key", "secret", "password", "passwd", "pwd", "signature", "credential", "session",
                "cookie")

_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_CONTROL_ANY = re.compile("[\x00-\x1f\x7f-\x9f\u061c\u200b-\u200f\u2028-\u202e\u2066-\u2069\ufeff]")
_MARKDOWN = re.compile(r"([\\`*_{}\[\]()#+!|~>-])")


def _norm(name: str) -> str:
    return name.strip().lower().replace("_", "-")


def is_secret_name(name: str, extra: Iterable[str] = ()) -> bool:
    """A header or query parameter whose value is a credential (by its name alone)."""
    n = _norm(name)
    if n in SECRET_NAMES or n in {_norm(e) for e in extra}:
        return True
    return any(word in n for word in SECRET_WORDS)


class Secrets:
    """The secret names and values one process knows; :func:`scrub` replaces the values in any text.

    One registry per process (:data:`KNOWN`): secrets arrive from several places (auth, headers,
    URLs, tokens fetched mid-run) and every writer must see all of them."""

    def __init__(self) -> None:
        self._values: set[str] = set()
        self._names: set[str] = set()
        self._pattern: re.Pattern | None = None
        self._lock = threading.Lock()

    @property
    def names(self) -> frozenset[str]:
        return frozenset(self._names)

    def add_name(self, name: str) -> None:
        self._names.add(_norm(name))

    def add(self, value: str | None) -> None:
        """Remember a secret value, with the forms it takes when echoed back."""
        if not value:
            return
        bases = {value, value.strip()}
        scheme, _, credential = value.strip().partition(" ")
        if credential and scheme.isalpha():  # "Bearer sk-...", "Basic dXNlcjpwYXNz": the credential alone too
            bases.add(credential.strip())
            if scheme.lower() == "basic":
                try:
                    user_pass = base64.b64decode(credential.strip(), validate=True).decode("utf-8")
                except (binascii.Error, UnicodeDecodeError):
                    user_pass = ""
                if user_pass:
                    bases |= {user_pass, user_pass.partition(":")[2]}
        forms = set()
        for base in bases:  # and the forms each takes when echoed back: in a URL, a form, JSON, Base64
            forms |= {base, quote(base, safe=""), quote_plus(base), json.dumps(base)[1:-1],
                      base64.b64encode(base.encode("utf-8", "surrogateescape")).decode("ascii")}
        new = {f for f in forms if len(f) >= MIN_VALUE_CHARS} - self._values
        if new:
            with self._lock:
                self._values |= new
                self._pattern = None

    def add_header(self, name: str, value: str) -> None:
        if is_secret_name(name, self._names):
            self.add(value)

    def scrub(self, text: str, extra: Iterable[str] = ()) -> str:
        """``text`` with every known secret value (and ``extra``) replaced by :data:`REDACTED`."""
        if not text:
            return text
        extra = [v for v in extra if v and len(v) >= MIN_VALUE_CHARS and v not in self._values]
        if extra:
            for value in extra:
                self.add(value)
        pattern = self._pattern
        if pattern is None:
            if not self._values:
                return text
            with self._lock:
                ordered = sorted(self._values, key=len, reverse=True)  # the longest form first
                pattern = self._pattern = re.compile("|".join(re.escape(v) for v in ordered))
        return pattern.sub(REDACTED, text)

    def scrub_cut(self, text: str, extra: Iterable[str] = ()) -> str:
        """:meth:`scrub` for text that may have been cut off (the start of an error body): a known
        secret's start at the very end is masked too."""
        text = self.scrub(text, extra)
        if not text or not self._values:
            return text
        tail_from = max(0, len(text) - max(len(v) for v in self._values))
        tail = text[tail_from:]
        for value in self._values:
            i = tail.find(value[:MIN_VALUE_CHARS])
            while i >= 0:
                if value.startswith(tail[i:]):
                    return text[:tail_from + i] + REDACTED
                i = tail.find(value[:MIN_VALUE_CHARS], i + 1)
        return text

    def headers(self, headers: Mapping[str, str]) -> dict[str, str]:
        """A copy to write: secret headers' values masked, known values masked in the rest."""
        return {k: REDACTED if is_secret_name(k, self._names) else self.scrub(str(v)) for k, v in headers.items()}

    def url(self, url: str) -> str:
        """A URL to write: userinfo and secret query parameters masked, known values masked in the rest."""
        if not url:
            return url
        try:
            parts = urlsplit(url)
            netloc = parts.netloc
            if "@" in netloc:
                netloc = REDACTED + "@" + netloc.rpartition("@")[2]
            query = parts.query
            if query:
                pairs = parse_qsl(query, keep_blank_values=True)
                query = urlencode([(k, REDACTED if is_secret_name(k, self._names) else v) for k, v in pairs],
                                  safe="<>${}")
            url = urlunsplit((parts.scheme, netloc, parts.path, query, parts.fragment))
        except ValueError:  # not a URL we can take apart: mask what we know
            pass
        return self.scrub(url)

    def remember_url(self, url: str) -> None:
        """The secrets a URL carries: its userinfo and its secret query parameters' values."""
        try:
            parts = urlsplit(url)
        except ValueError:
            return
        if parts.password is not None:
            self.add(unquote(parts.password))
            self.add(parts.password)
        if "@" in parts.netloc:
            self.add(parts.netloc.rpartition("@")[0])
        for k, v in parse_qsl(parts.query, keep_blank_values=True):
            if is_secret_name(k, self._names):
                self.add(v)
                self.add(quote_plus(v))


KNOWN = Secrets()


def remember(value: str | None) -> None:
    KNOWN.add(value)


def remember_request(headers: Mapping[str, str], url: str = "", secret_headers: Iterable[str] = ()) -> None:
    """Learn the secrets of a request's headers and URL (names the user declared secret included)."""
    for name in secret_headers:
        KNOWN.add_name(name)
    for name, value in headers.items():
        KNOWN.add_header(name, value)
    if url:
        KNOWN.remember_url(url)


def scrub(text: str, extra: Iterable[str] = ()) -> str:
    return KNOWN.scrub(text, extra)


def mask_headers(headers: Mapping[str, str]) -> dict[str, str]:
    return KNOWN.headers(headers)


def mask_url(url: str) -> str:
    return KNOWN.url(url)


def mask(value):
    """Any JSON-like value to write (run.json): every string with known secrets masked."""
    if isinstance(value, str):
        return KNOWN.scrub(value)
    if isinstance(value, Mapping):
        return {k: mask(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [mask(v) for v in value]
    return value


NOT_WRITTEN = "<not written: [body] write = true keeps it>"


def scenario_to_write(scenario: Mapping) -> dict:
    """A scenario (as ``dataclasses.asdict`` gives it) as run.json keeps it: credentials masked by
    name and by value, and the body's text and JSON left out unless ``[body] write`` asks for them."""
    out = mask(scenario)
    for name in (out.get("request") or {}).get("secret_headers") or []:
        KNOWN.add_name(name)
    request = out.get("request") or {}
    if request.get("url"):
        request["url"] = mask_url(request["url"])
    if isinstance(request.get("headers"), Mapping):
        request["headers"] = mask_headers(request["headers"])
    auth = out.get("auth") or {}
    if auth.get("iam_url"):
        auth["iam_url"] = mask_url(auth["iam_url"])
    metrics = out.get("server_metrics") or {}
    if metrics.get("url"):
        metrics["url"] = mask_url(metrics["url"])
    body = out.get("body") or {}
    if not body.get("write"):
        for key in ("text", "json"):
            if body.get(key) is not None:
                body[key] = NOT_WRITTEN
    return out


def split_userinfo(url: str) -> tuple[str, str | None]:
    """(the URL without ``user:password@``, the Basic credentials it carried or None).

    A URL's userinfo is sent as HTTP Basic authentication, as curl and browsers do, and never
    kept in the URL that is written anywhere."""
    parts = urlsplit(url)
    if "@" not in parts.netloc:
        return url, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    user, _, password = userinfo.partition(":")
    credentials = f"{unquote(user)}:{unquote(password)}"
    KNOWN.add(userinfo)
    KNOWN.add(unquote(password))
    token = base64.b64encode(credentials.encode("utf-8")).decode("ascii")
    KNOWN.add(f"Basic {token}")
    return urlunsplit((parts.scheme, hostport, parts.path, parts.query, parts.fragment)), f"Basic {token}"


# --- text from outside, made safe to keep and show ---

def _escape(match: re.Match) -> str:
    ch = match.group(0)
    code = ord(ch)
    return f"\\x{code:02x}" if code < 0x100 else f"\\u{code:04x}"


def visible(text: str, limit: int = 0, newlines: bool = False) -> str:
    """Control and escape characters shown as ``\\xNN`` (``newlines``: line breaks kept), and text
    over ``limit`` characters cut, saying its length."""
    if not text:
        return text
    text = (_CONTROL if newlines else _CONTROL_ANY).sub(_escape, text)
    if limit and len(text) > limit:
        text = f"{text[:limit]}… ({len(text)} characters)"
    return text


def from_server(text: str, limit: int = 0, extra: Iterable[str] = (), cut: bool = False) -> str:
    """Text the tested server sent, as it may be kept and shown: secrets masked, controls made visible.
    ``cut``: the text may end mid-way (the start of a body), so may a secret it echoes."""
    if not text:
        return text
    return visible(KNOWN.scrub_cut(text, extra) if cut else KNOWN.scrub(text, extra), limit)


def terminal(text: str) -> str:
    """Text for a terminal: every control character visible but line breaks and tabs."""
    return _CONTROL.sub(_escape, KNOWN.scrub(text)) if text else text


def markdown(text: str, limit: int = 0) -> str:
    """Text for a Markdown table cell or line (summary.md, a PR comment): no HTML, no Markdown, one line."""
    text = visible(KNOWN.scrub(str(text)), limit)
    return _MARKDOWN.sub(r"\\\1", html.escape(text, quote=False))


__all__ = ["KNOWN", "REDACTED", "SECRET_NAMES", "SECRET_WORDS", "Secrets", "from_server", "is_secret_name",
           "markdown", "mask", "mask_headers", "mask_url", "remember", "remember_request", "scrub", "split_userinfo",
           "terminal", "visible"]
