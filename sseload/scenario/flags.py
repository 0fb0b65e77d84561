"""The one-off request flags, the same for ``sseload run`` and ``locust -f``: --path, --method,
--header, --body, --body-file. Declared once (:func:`add_request_flags`), applied once
(:func:`apply_request_flags`), and passed on by ``sseload run`` to its Locust processes as given
(:func:`request_flags_argv`)."""

from __future__ import annotations

from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sseload.scenario.model import BODYLESS_METHODS, Body, Scenario, ScenarioError, check_header, check_method

#: Each flag and the attribute argparse gives it.
FLAGS = (("--path", "path"), ("--method", "method"), ("--header", "header"), ("--body", "body"),
         ("--body-file", "body_file"))


def add_request_flags(parser) -> None:
    """The flags on an argparse parser or group (Locust's parser takes the same calls)."""
    parser.add_argument("--path", default=None, help="request path, e.g. /v1/chat/completions "
                        "(default: the scenario's, or the -H URL's)")
    parser.add_argument("--method", default=None, help="HTTP method (default: the scenario's; GET for -H "
                        "without a scenario unless a body is given, then POST)")
    parser.add_argument("--header", action="append", default=None, metavar="'NAME: VALUE'",
                        help="a request header, repeatable; replaces the scenario's (and sseload's default) "
                        "of that name (default: none)")
    parser.add_argument("--body", default=None, help="request body sent as is (default: the scenario's)")
    parser.add_argument("--body-file", default=None, help="a file sent as the request body (default: the scenario's)")


def request_flags_argv(opts: Any) -> list[str]:
    """The flags that were given, as arguments again: what ``sseload run`` passes to Locust."""
    out: list[str] = []
    for flag, attr in FLAGS:
        value = getattr(opts, attr, None)
        if value is None:
            continue
        for item in value if isinstance(value, list) else [value]:
            out += [flag, item]
    return out


def apply_request_flags(scenario: Scenario, opts: Any) -> None:
    """Apply the flags that were given to ``scenario`` (its [request] and [body])."""
    req = scenario.request
    path, method = getattr(opts, "path", None), getattr(opts, "method", None)
    headers, text, file = getattr(opts, "header", None), getattr(opts, "body", None), getattr(opts, "body_file", None)
    if text is not None or file:
        scenario.body = Body(text=text, file=file or "", over_limit=scenario.body.over_limit)
        if file and text is not None:
            raise ScenarioError("give --body or --body-file, not both")
        if method is None and req.method in BODYLESS_METHODS:
            req.method = "POST"
    if path is not None:
        req.path = path if path.startswith("/") else "/" + path
        if req.url:  # the scenario's URL keeps its host; the flag's path replaces its own
            url = urlsplit(req.url)
            path_part, _, query = req.path.partition("?")
            req.url = urlunsplit((url.scheme, url.netloc, path_part, query, ""))
    if method is not None:
        check_method(method, "--method")
        req.method = method.upper()
    for header in headers or ():
        name, sep, value = header.partition(":")
        if not sep or not name.strip():  # (never the flag itself: it may hold a secret)
            raise ScenarioError("a --header is not 'Name: value' (a name, a colon, then the value); write e.g. "
                                "--header 'X-Tenant: t-1'")
        name, value = name.strip(), value.strip()
        check_header(name, value, "--header")
        req.headers = {k: v for k, v in req.headers.items() if k.lower() != name.lower()}
        req.headers[name] = value
