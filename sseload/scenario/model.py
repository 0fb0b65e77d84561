"""Scenarios: what to send, how to authenticate, how to judge a stream, how much load.

A scenario is a TOML file in ``scenarios/``. Every table and key is checked on load; an
error names the file, the field and the fix. With no file at all, :func:`default_scenario`
is the embedded default: the reference target on a free loopback port.
"""

from __future__ import annotations

import logging
import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sseload.protocol.gateway import DEFAULT_LIMIT_S, DEFAULT_MAX_BODY_BYTES
from sseload.protocol.sse import DEFAULT_MAX_EVENT_BYTES, OUTPUT_KINDS
from sseload.record.metrics import THRESHOLDS  # the names a [thresholds] table may use
from sseload.target.config import ConfigError, TargetConfig

log = logging.getLogger("sseload")
AUTH_METHODS = ("none", "token", "iam", "aksk", "app_key", "app_code")
DEFAULT_PATH = "/v1/infers/00000000-0000-4000-8000-000000000000/v1/stream"


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message says where and how to fix it."""


@dataclass
class Request:
    url: str = ""  # full URL; empty: host from -H (or the embedded target) plus path
    path: str = DEFAULT_PATH
    method: str = "POST"
    headers: dict[str, str] = field(default_factory=lambda: {"Content-Type": "application/json"})
    # header names whose values are credentials, beyond those sseload knows (sseload.record.redact): never written
    secret_headers: list[str] = field(default_factory=list)


@dataclass
class Auth:
    method: str = "none"
    token_env: str = "SSELOAD_TOKEN"
    ak_env: str = "SSELOAD_AK"
    sk_env: str = "SSELOAD_SK"
    security_token_env: str = ""  # temporary credentials (X-Security-Token)
    app_key_env: str = "SSELOAD_APP_KEY"
    app_secret_env: str = "SSELOAD_APP_SECRET"
    app_code_env: str = "SSELOAD_APP_CODE"
    iam_url: str = ""  # empty: the target's host (the embedded target emulates IAM)
    iam_user_env: str = "SSELOAD_IAM_USER"
    iam_password_env: str = "SSELOAD_IAM_PASSWORD"
    iam_domain_env: str = "SSELOAD_IAM_DOMAIN"
    project: str = "cn-southwest-2"
    unsigned_payload: bool = False
    stop_after_failures: int = 5  # stop the run when this many streams failed auth and none passed


@dataclass
class Body:
    json: Any = None  # inline JSON value
    text: str | None = None  # a body sent as is (UTF-8); "" is an empty body (None: not given)
    file: str = ""  # a file sent as is
    size_bytes: int = 0  # generate a body of this size
    sizes: list[int] = field(default_factory=list)  # sweep: users take these in turn
    kind: str = "json"  # generated bodies: "json" or "binary"
    over_limit: str = "skip"  # bodies over gateway.max_body_bytes: "skip" (not sent) or "send"
    # prompt workloads (LLM services): a body per prompt, [body] json as the template
    dataset: str = ""  # JSON lines: a prompt string, {"messages": [...]}, {"prompt": ...}, or a ShareGPT record
    order: str = "sequential"  # dataset: "sequential", "shuffle" (once, by seed) or "random" (with replacement)
    seed: int = 0
    prompts: int = 0  # synthetic: this many prompts, each with a prefix of its own (no shared cache)
    input_words: str = "100"  # synthetic prompt length in words: 100, "uniform:50:150", "lognormal:100:0.5"
    max_tokens: str = ""  # each body's max_tokens: a number or a distribution as input_words; "" keeps the template's
    shared_prefix_words: int = 0  # synthetic: words every prompt starts with (to test a prefix cache)
    include_usage: bool = False  # JSON bodies ask for the usage chunk (stream_options.include_usage): exact tokens
    multi_turn: bool = False  # dataset: each line a conversation, its turns sent in order with the answers so far
    write: bool = False  # write the body's text and JSON into run.json (off: a body may carry secrets)


@dataclass
class Stream:
    completion: str = "close"  # "close", "auto" (a clean end or data: [DONE]), "done" (data: [DONE]) or "event:NAME"
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    grace_s: float = 5.0  # the harness's own deadline is gateway.limit_s + grace_s
    truth: bool = True  # read each event's send time (send_time_key) to measure delivery delay
    send_time_key: str = "t_send_ns"  # the JSON field in an event's data carrying its send time (wall clock)
    send_time_unit: str = "ns"  # its unit: ns, us or ms (a whole number since the Unix epoch)
    max_redirects: int = 3  # redirects on the same host followed to reach the stream (0: none)
    reconnect: bool = False  # a long-lived feed: reconnect as EventSource does (retry:, Last-Event-ID)
    format: str = "auto"  # "sse", "openai" (token metrics of chat/completions chunks), "auto": by the path
    reconnect_ms: float = 3000.0  # the wait before reconnecting until the server sends a retry: field
    tokenizer: str = ""  # openai: a local tokenizer.json counting output tokens when the server sends no usage
    output: list[str] = field(default_factory=lambda: list(OUTPUT_KINDS))  # openai: what counts as a chunk's output
    tls_verify: bool = True
    ca_bundle: str = ""
    connection: str = "keep-alive"  # "keep-alive": a user's streams share its connection; "new": one per stream
    tls_resume: bool = True  # a new TLS connection resumes the last one's session (false: a full handshake each)


@dataclass
class Slo:
    """Service-level objectives of an LLM stream (0: none); a stream meeting all of them counts in goodput."""

    ttft_ms: float = 0.0
    tpot_ms: float = 0.0
    e2e_ms: float = 0.0


@dataclass
class Gateway:
    limit_s: float = DEFAULT_LIMIT_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES


@dataclass
class Load:
    users: int = 10
    spawn_rate: float = 10.0
    run_time: str = "10s"
    wait_s: float = 0.0  # pause between a user's streams (closed model)
    shape: str = "constant"  # constant, ramp, step, spike, soak (see sseload/shapes.py)
    start_users: int = 1
    step_users: int = 10
    step_s: float = 30.0
    spike_users: int = 0
    spike_at_s: float = 0.0
    spike_s: float = 0.0
    arrival: str = "closed"  # closed (users loop), constant or poisson (open model: rate_per_s)
    rate_per_s: float = 0.0
    stop_after_failures: int = 20  # stop when this many first streams all failed the same way (0: never)
    failure_backoff_s: float = 0.1  # a user whose streams fail fast waits this, doubling to 2 s (0: never)


@dataclass
class Scenario:
    name: str = "embedded"
    description: str = "The reference target on a free loopback port, 10 users for 10 s."
    request: Request = field(default_factory=Request)
    auth: Auth = field(default_factory=Auth)
    body: Body = field(default_factory=Body)
    stream: Stream = field(default_factory=Stream)
    gateway: Gateway = field(default_factory=Gateway)
    load: Load = field(default_factory=Load)
    slo: Slo = field(default_factory=Slo)
    thresholds: dict[str, float] = field(default_factory=dict)
    target: dict[str, Any] = field(default_factory=dict)  # settings for the embedded target
    source: str = ""  # the file it came from

    def target_config(self) -> TargetConfig:
        """The embedded target's settings: the scenario's [target] table plus the gateway's."""
        raw = {"limit_s": self.gateway.limit_s, "max_body_bytes": self.gateway.max_body_bytes}
        raw.update(self.target)
        try:
            return TargetConfig.from_dict(raw, f"{self.source or self.name}: [target]")
        except ConfigError as err:
            raise ScenarioError(str(err)) from None


def users_at(load: Load, t_s: float, run_s: float) -> int:
    """How many users a [load] shape wants ``t_s`` into a run of ``run_s``."""
    if load.shape == "ramp":
        frac = min(1.0, t_s / run_s) if run_s > 0 else 1.0
        return round(load.start_users + (load.users - load.start_users) * frac)
    if load.shape == "step":
        steps = int(t_s // load.step_s) if load.step_s > 0 else 0
        return min(load.users, load.start_users + steps * load.step_users)
    if load.shape == "spike":
        spiking = load.spike_at_s <= t_s < load.spike_at_s + load.spike_s
        return load.users + (load.spike_users if spiking else 0)
    return load.users  # constant, soak


_TIMESPAN = re.compile(r"^(?:(\d+)h)?\s*(?:(\d+)m)?\s*(?:(\d+)s)?$")


def parse_seconds(text: str) -> float:
    """Locust's time spans: ``90``, ``90s``, ``5m``, ``1h30m``."""
    text = str(text).strip()
    if text.isdigit():
        return float(text)
    match = _TIMESPAN.match(text)
    if not text or match is None or not any(match.groups()):
        raise ValueError(f"not a time span: {text!r}")
    h, m, sec = (int(g or 0) for g in match.groups())
    return float(h * 3600 + m * 60 + sec)


_TABLES = {"request": Request, "auth": Auth, "body": Body, "stream": Stream, "gateway": Gateway, "load": Load,
           "slo": Slo}


def default_scenario() -> Scenario:
    """The embedded default: reference target, plain events ending in ``event: done``."""
    scenario = Scenario()
    scenario.stream.completion = "event:done"
    return scenario


def for_host(host: str) -> Scenario:
    """The scenario of ``sseload run -H URL`` with no scenario file: a stream to a service nobody
    described. A clean end of the response (or ``data: [DONE]``) is ``ok``; the URL's path is the
    request's; GET unless a body is given (see :func:`apply_request_flags`)."""
    parts = urlsplit(host)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScenarioError(f"-H/--host {host!r} is not an http:// or https:// URL with a host")
    hostport = parts.hostname + (f":{parts.port}" if parts.port else "")  # never the URL's credentials
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", hostport).strip("-.") or "host"
    scenario = Scenario(name=name, source="")
    scenario.description = f"streams from {host} with no scenario (ok: a clean end of the response, or data: [DONE])"
    scenario.request.method = "GET"
    scenario.request.headers = {}
    scenario.request.path = "/"  # -H's own path, where it has one, is taken by request_url
    scenario.stream.completion = "auto"
    return scenario


STREAM_FORMATS = ("auto", "sse", "openai")


def is_openai(s: Scenario, url: str) -> bool:
    """OpenAI-style chunks (token metrics): said so, or by default a path ending in /completions
    (chat or completions)."""
    if s.stream.format != "auto":
        return s.stream.format == "openai"
    return urlsplit(url).path.rstrip("/").endswith("/completions")


def request_url(request: Request, host: str) -> str:
    """The URL a stream requests: -H's base joined to [request] path, unless -H names a path itself
    (a --path flag wins over both)."""
    parts = urlsplit(host)
    if getattr(request, "path_from_flag", False):
        return urlunsplit((parts.scheme, parts.netloc, "", "", "")) + request.path
    if parts.path not in ("", "/") or parts.query:
        return host
    return host.rstrip("/") + request.path


def add_request_flags(parser) -> None:
    """The one-off request flags, the same for ``sseload run`` and ``locust -f`` (argparse-like)."""
    parser.add_argument("--path", default=None, help="request path, e.g. /v1/chat/completions "
                        "(default: the scenario's, or the -H URL's)")
    parser.add_argument("--method", default=None, help="HTTP method (default: the scenario's; GET for -H "
                        "without a scenario unless a body is given, then POST)")
    parser.add_argument("--header", action="append", default=None, metavar="'NAME: VALUE'",
                        help="a request header, repeatable; replaces the scenario's (and sseload's default) "
                        "of that name (default: none)")
    parser.add_argument("--body", default=None, help="request body sent as is (default: the scenario's)")
    parser.add_argument("--body-file", default=None, help="a file sent as the request body (default: the scenario's)")


def apply_request_flags(scenario: Scenario, opts) -> None:
    """Apply --path, --method, --header, --body and --body-file (any that were given) to ``scenario``."""
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
        req.path_from_flag = True  # not a scenario key: request_url's to know (dataclasses.asdict skips it)
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


#: RFC 9110 section 5.6.2's token: what a header name and a method are made of.
_TOKEN = re.compile(r"[!#$%&'*+\-.^_`|~0-9A-Za-z]+")
#: What a header value may not hold (RFC 9110 section 5.5): control characters but tab, and DEL.
_VALUE_CONTROL = re.compile(r"[\x00-\x08\x0a-\x1f\x7f]")
_CONTROL_NAMES = {"\r": "a carriage return (CR)", "\n": "a line feed (LF)", "\0": "a NUL"}
TOKEN_CHARS = "letters, digits and !#$%&'*+-.^_`|~"


def check_method(method: str, where: str) -> None:
    """A method HTTP/1.1 can send: a token (no space or line break to end the request line)."""
    if not isinstance(method, str) or not _TOKEN.fullmatch(method):
        raise ScenarioError(f"{where} {method!r} is not an HTTP method: give a token such as GET or POST "
                            f"({TOKEN_CHARS}; no spaces or line breaks)")


def check_header(name: str, value: str, where: str) -> None:
    """One request header as HTTP/1.1 sends it: its name a token, its value on one line and in
    Latin-1 (header bytes). Checked once, where the scenario is compiled, so a stream never fails
    on it. The message names the header, never its value: a value may be a secret."""
    if not isinstance(name, str) or not _TOKEN.fullmatch(name):
        raise ScenarioError(f"{where}: the header name {str(name)[:80]!r} is not a token: {TOKEN_CHARS}, with no "
                            "spaces, colons or line breaks")
    if not isinstance(value, str):
        raise ScenarioError(f"{where} {name}: the value should be a string (in quotes)")
    bad = _VALUE_CONTROL.search(value)
    if bad:
        what = _CONTROL_NAMES.get(bad.group(), f"the control character {ord(bad.group()):#04x}")
        raise ScenarioError(f"{where} {name}: the value holds {what}, which would end or break the request head; "
                            "give the value on one line (it is not shown here: it may be a secret)")
    try:
        value.encode("latin-1")
    except UnicodeEncodeError as err:
        raise ScenarioError(f"{where} {name}: the value has a character HTTP/1.1 cannot send (header bytes are "
                            f"Latin-1; character {err.start + 1} is not); percent-encode it or use ASCII (the "
                            "value is not shown here: it may be a secret)") from None


_TRIMMED_VARS: set[str] = set()  # the variables whose line end was removed, said once per process


def from_env(var: str, value: str) -> str:
    """A value read from environment variable ``var``, without the one line end that a secret read
    from a file keeps (a Kubernetes secret made ``--from-file``, ``echo token >file``): removed and
    said once per variable and process, by name, never the value. A line break or NUL left inside
    is refused: sent in a header it would end the request head early."""
    for end in ("\r\n", "\n"):
        if value.endswith(end):
            value = value[: -len(end)]
            if var not in _TRIMMED_VARS:
                _TRIMMED_VARS.add(var)
                log.warning("sseload: $%s ended in a line break (as a value read from a file does); "
                            "sseload removed it", var)
            break
    if "\r" in value or "\n" in value or "\0" in value:
        raise ScenarioError(f"${var} holds a line break or NUL inside its value, which no header or URL may carry; "
                            "give it on one line (the value is not shown here: it may be a secret)")
    return value


BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})  # sent without a body unless one is given
MAX_SENT_BODY_BYTES = 1 << 30  # a body sseload builds and sends at most (held in memory by every process)


def _typed(where: str, key: str, value: Any, default: Any) -> Any:
    expected = type(default)
    if isinstance(default, bool):
        ok = isinstance(value, bool)
    elif isinstance(default, float):
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        value = float(value) if ok else value
    elif isinstance(default, int):
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif default is None:
        ok = True
    else:
        ok = isinstance(value, expected)
    if not ok:
        kind = {bool: "true or false", int: "an integer", float: "a number", str: "a string", list: "a list",
                dict: "a table"}.get(expected, f"a {expected.__name__}")
        example = ("true" if default else "false") if isinstance(default, bool) else repr(default)
        empty = isinstance(default, (str, list, dict)) and not default  # "like ''" shows nothing
        raise ScenarioError(f"{where}: {key} = {value!r} should be {kind}" + ("" if empty else f" (like {example})"))
    return value


def from_dict(raw: dict[str, Any], source: str = "<scenario>") -> Scenario:
    scenario = Scenario(name=Path(source).stem if source.endswith(".toml") else source, source=source)
    allowed = {"name", "description", "thresholds", "target", *_TABLES}
    unknown = sorted(set(raw) - allowed)
    if unknown:
        raise ScenarioError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
            f"a scenario has {', '.join(sorted(allowed))}"
        )
    for key in ("name", "description"):
        if key in raw:
            setattr(scenario, key, str(raw[key]))
    for table in _TABLES:
        values = raw.get(table, {})
        if not isinstance(values, dict):
            raise ScenarioError(f"{source}: [{table}] must be a table")
        obj = getattr(scenario, table)
        for key, value in values.items():
            if not hasattr(obj, key):
                known = ", ".join(k for k in vars(obj))
                raise ScenarioError(f"{source}: [{table}] has no key {key!r}; known keys: {known}")
            setattr(obj, key, _typed(f"{source}: [{table}]", key, value, getattr(obj, key)))
    thresholds = raw.get("thresholds", {})
    for key, value in thresholds.items():
        if key not in THRESHOLDS:
            raise ScenarioError(
                f"{source}: [thresholds] has no {key!r}; known thresholds: {', '.join(sorted(THRESHOLDS))}"
            )
        if not isinstance(value, (int, float)) or isinstance(value, bool):
            raise ScenarioError(f"{source}: [thresholds] {key} = {value!r} must be a number")
    scenario.thresholds = {k: float(v) for k, v in thresholds.items()}
    scenario.target = dict(raw.get("target", {}))
    validate(scenario)
    return scenario


def validate(s: Scenario) -> None:
    where = s.source or s.name
    if s.auth.method not in AUTH_METHODS:
        raise ScenarioError(f"{where}: [auth] method = {s.auth.method!r}; use one of {', '.join(AUTH_METHODS)}")
    c = s.stream.completion
    if not (c in ("close", "auto", "done") or (c.startswith("event:") and len(c) > 6)):
        raise ScenarioError(
            f"{where}: [stream] completion = {c!r}; use 'close', 'auto' (a clean end or data: [DONE]), "
            "'done' (data: [DONE]) or 'event:NAME'"
        )
    if s.body.kind not in ("json", "binary"):
        raise ScenarioError(f"{where}: [body] kind = {s.body.kind!r}; use 'json' or 'binary'")
    if s.body.over_limit not in ("skip", "send"):
        raise ScenarioError(f"{where}: [body] over_limit = {s.body.over_limit!r}; use 'skip' or 'send'")
    given = [name for name, on in (("json", s.body.json is not None), ("text", s.body.text is not None),
                                   ("file", bool(s.body.file)), ("size_bytes", s.body.size_bytes > 0),
                                   ("sizes", bool(s.body.sizes))) if on]
    if s.body.dataset or s.body.prompts:
        given = [g for g in given if g != "json"]  # json is the prompts' template
        given += ["dataset"] * bool(s.body.dataset) + ["prompts"] * bool(s.body.prompts)
    if len(given) > 1:
        raise ScenarioError(f"{where}: [body] sets {' and '.join(given)}; choose one way to make the body")
    if s.body.order not in ("sequential", "shuffle", "random"):
        raise ScenarioError(f"{where}: [body] order = {s.body.order!r}; use 'sequential', 'shuffle' or 'random'")
    if s.body.prompts < 0 or s.body.shared_prefix_words < 0:
        raise ScenarioError(f"{where}: [body] prompts and shared_prefix_words must be 0 or more")
    if s.body.json is not None and (s.body.dataset or s.body.prompts) and not isinstance(s.body.json, dict):
        raise ScenarioError(f"{where}: [body] json is the prompts' template here: give a table "
                            "(like {{model = \"m\", stream = true}})")
    if any(not isinstance(n, int) or n < 0 for n in s.body.sizes):
        raise ScenarioError(f"{where}: [body] sizes must be non-negative whole numbers of bytes")
    sent = [n for n in (s.body.size_bytes, *s.body.sizes)
            if n > MAX_SENT_BODY_BYTES and (s.body.over_limit == "send" or n <= s.gateway.max_body_bytes)]
    if sent:
        raise ScenarioError(f"{where}: [body] a body of {sent[0]} bytes is too large to build and send (at most "
                            f"{MAX_SENT_BODY_BYTES} bytes, held in memory by every process); use a smaller size, or "
                            "over_limit = \"skip\" to record bodies over the gateway limit as too_large unsent")
    check_method(s.request.method, f"{where}: [request] method =")
    for name, value in s.request.headers.items():
        check_header(name, value, f"{where}: [request] headers")
    if s.request.url and not s.request.url.startswith(("http://", "https://", "${")):
        raise ScenarioError(f"{where}: [request] url = {s.request.url!r} must start with http:// or https://")
    if s.gateway.limit_s <= 0:
        raise ScenarioError(f"{where}: [gateway] limit_s must be positive")
    if s.load.users < 1:
        raise ScenarioError(f"{where}: [load] users must be at least 1")
    if s.load.shape not in ("constant", "ramp", "step", "spike", "soak"):
        raise ScenarioError(f"{where}: [load] shape = {s.load.shape!r}; use constant, ramp, step, spike or soak")
    if s.load.arrival not in ("closed", "constant", "poisson"):
        raise ScenarioError(f"{where}: [load] arrival = {s.load.arrival!r}; use closed, constant or poisson")
    if s.load.arrival != "closed" and s.load.rate_per_s <= 0:
        raise ScenarioError(
            f"{where}: [load] arrival = {s.load.arrival!r} needs rate_per_s > 0 (streams started per second); "
            "users is then the most streams open at once"
        )
    try:
        parse_seconds(s.load.run_time)
    except ValueError:
        raise ScenarioError(f"{where}: [load] run_time = {s.load.run_time!r}; write e.g. 30s, 5m or 1h30m") from None
    if s.load.stop_after_failures < 0:
        raise ScenarioError(f"{where}: [load] stop_after_failures must be 0 (never stop) or more")
    if s.load.failure_backoff_s < 0:
        raise ScenarioError(f"{where}: [load] failure_backoff_s must be 0 (never wait) or more")
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", s.stream.send_time_key):
        raise ScenarioError(f"{where}: [stream] send_time_key = {s.stream.send_time_key!r}; give a JSON field name "
                            "such as t_send_ns")
    if s.stream.send_time_unit not in ("ns", "us", "ms"):
        raise ScenarioError(f"{where}: [stream] send_time_unit = {s.stream.send_time_unit!r}; use ns, us or ms "
                            "(a whole number of them since the Unix epoch)")
    if s.stream.max_redirects < 0:
        raise ScenarioError(f"{where}: [stream] max_redirects must be 0 (follow none) or more")
    if s.stream.format not in STREAM_FORMATS:
        raise ScenarioError(f"{where}: [stream] format = {s.stream.format!r}; use 'auto' (openai for a path ending "
                            "in /completions), 'sse' or 'openai'")
    for key, value in vars(s.slo).items():
        if value < 0:
            raise ScenarioError(f"{where}: [slo] {key} must be 0 (none) or more")
    if s.body.multi_turn and not s.body.dataset:
        raise ScenarioError(f"{where}: [body] multi_turn needs a dataset of conversations ([body] dataset)")
    if s.body.multi_turn and s.stream.reconnect:
        raise ScenarioError(f"{where}: [body] multi_turn and [stream] reconnect: a conversation's turns are "
                            "separate requests, a feed one long stream; choose one")
    unknown = [kind for kind in s.stream.output if kind not in OUTPUT_KINDS] if isinstance(s.stream.output, list) \
        else [s.stream.output]
    if unknown or not s.stream.output:
        raise ScenarioError(f"{where}: [stream] output = {s.stream.output!r}; list what counts as a chunk's output "
                            f"(TTFT, ITL), any of {', '.join(repr(k) for k in OUTPUT_KINDS)}")
    if s.stream.reconnect_ms < 0:
        raise ScenarioError(f"{where}: [stream] reconnect_ms must be 0 or more (milliseconds before reconnecting)")
    if s.stream.max_event_bytes < 1:
        raise ScenarioError(f"{where}: [stream] max_event_bytes must be positive")
    if s.body.text is not None and not isinstance(s.body.text, str):
        raise ScenarioError(f"{where}: [body] text = {s.body.text!r} should be a string (sent as it is, UTF-8; "
                            "'' sends an empty body)")
    if s.stream.connection not in ("keep-alive", "new"):
        raise ScenarioError(f"{where}: [stream] connection = {s.stream.connection!r}; use 'keep-alive' (a user's "
                            "streams share its connection) or 'new' (a connection, and its handshake, per stream)")
    s.target_config()  # validates [target]


_ENV_REF = re.compile(r"\$\{([A-Za-z_][A-Za-z0-9_]*)\}")


def request_headers(request: Request, basic: str | None = None,
                    environ: Mapping[str, str] = os.environ) -> dict[str, str]:
    """The headers sent: ``${VAR}`` in a value expanded (a credential stays out of the scenario file),
    and a URL's ``user:password@`` as Basic authentication (``basic``)."""
    headers = {name: expand_env(value, f"[request] headers {name}", environ) if "${" in value else value
               for name, value in request.headers.items()}
    if basic is not None:
        if any(name.lower() == "authorization" for name in headers):
            raise ScenarioError("the URL carries user:password@ and an Authorization header is given too; "
                                "keep one of them")
        headers["Authorization"] = basic
    for name, value in headers.items():  # a ${VAR}'s value is checked as the scenario's own are
        check_header(name, value, "[request] headers")
    return headers


def env_vars_used(s: Scenario) -> set[str]:
    """The variables the scenario's ``${VAR}`` references name (its URLs and header values)."""
    texts = [s.request.url, s.auth.iam_url, *(v for v in s.request.headers.values() if isinstance(v, str))]
    return {match.group(1) for text in texts for match in _ENV_REF.finditer(text)}


def expand_env(value: str, what: str, environ: Mapping[str, str] = os.environ) -> str:
    """Expand ``${VAR}`` references (scenario templates for real endpoints)."""

    def sub(match: re.Match) -> str:
        name = match.group(1)
        if not environ.get(name):
            raise ScenarioError(f"{what} uses ${{{name}}}, which is not set; export {name}=... first")
        return from_env(name, environ[name])

    return _ENV_REF.sub(sub, value)


def ready_dir() -> Path:
    """The ready scenarios: scenarios/ of the repository, shipped in the wheel as sseload/scenarios/
    (pyproject.toml maps one to the other); a source checkout or editable install reads the repository's."""
    package = Path(__file__).parents[1]
    shipped = package / "scenarios"
    return shipped if shipped.is_dir() else package.parent / "scenarios"


def ready() -> list[Path]:
    """The ready scenarios' files, by name."""
    return sorted(ready_dir().glob("*.toml"))


def resolve(name_or_path: str | Path) -> Path:
    """A scenario file: a path as given when it exists, else a ready scenario of that name
    (``openai-chat`` or ``openai-chat.toml``); else the path as given (load() then says so)."""
    path = Path(name_or_path)
    if path.exists() or path.parent != Path("."):
        return path
    packaged = ready_dir() / (path.name if path.suffix == ".toml" else f"{path.name}.toml")
    return packaged if packaged.exists() else path


def load(path: str | Path) -> Scenario:
    path = resolve(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        names = ", ".join(p.stem for p in ready())
        raise ScenarioError(f"{path}: no such scenario file, nor a ready scenario of that name ({names}; "
                            "`sseload scenarios` describes them)") from None
    except OSError as err:
        raise ScenarioError(f"{path}: cannot read the scenario: {err.strerror}") from None
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML ({err}); fix the syntax at that line") from None
    return from_dict(raw, str(path))
