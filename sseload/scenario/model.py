"""A scenario as data: what to send, how to authenticate, how to judge a stream, how much load.

Each table of a scenario file is one dataclass here, with its defaults and, beside a field that
takes one of a few values, those values (``choices`` in the field's metadata), and beside a number
its range (sseload.scenario.ranges.bounded), which sseload.scenario.load's ``validate`` enforces and
words. Reading a file, checking it and picking
a run's scenario are sseload.scenario.load's; the request flags, sseload.scenario.flags'.
Nothing here imports Locust, gevent or the reference target.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import urlsplit

from sseload.protocol.decoding import DEFAULT_MAX_DECODE_RATIO, DEFAULT_MAX_DECODED_BYTES
from sseload.protocol.dialects import BUILT_IN, OUTPUT_KINDS, Dialect, declared, for_url
from sseload.protocol.gateway import DEFAULT_LIMIT_S, DEFAULT_MAX_BODY_BYTES
from sseload.protocol.sse import DEFAULT_MAX_EVENT_BYTES
from sseload.scenario.ranges import DAY_S, HOUR_S, MAX_BODY_SIZE_BYTES, MAX_RUN_S, MAX_USERS, bounded

log = logging.getLogger("sseload")
DEFAULT_PATH = "/v1/infers/00000000-0000-4000-8000-000000000000/v1/stream"
BODYLESS_METHODS = frozenset({"GET", "HEAD", "DELETE", "OPTIONS"})  # sent without a body unless one is given
MAX_SENT_BODY_BYTES = 1 << 30  # a body sseload builds and sends at most (held in memory by every process)
#: A choice written like this stands for the prefix and any name after it (``event:done``).
ANY_NAME = "NAME"


class ScenarioError(ValueError):
    """A scenario that cannot be used; the message says where and how to fix it."""


def one_of(default: Any, choices: tuple[str, ...], *, glosses: Mapping[str, str] | None = None,
           quoted: bool = True, lead: str = "use", purpose: str = "") -> Any:
    """A field that takes one of ``choices`` (for a list: any of them, at least one), declared with them.

    ``glosses`` say what a choice means, ``quoted`` whether the message quotes them, ``lead`` how
    it starts; ``purpose`` (lists) says what the list is for."""
    meta = {"choices": tuple(choices), "glosses": dict(glosses or {}), "quoted": quoted, "lead": lead,
            "purpose": purpose}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta)
    return field(default=default, metadata=meta)


def allowed(value: Any, choices: tuple[str, ...]) -> bool:
    """``value`` is one of ``choices``; ``event:NAME`` takes any name after ``event:``."""
    if not isinstance(value, str):
        return False
    for choice in choices:
        if choice.endswith(ANY_NAME):
            prefix = choice[: -len(ANY_NAME)]
            if value.startswith(prefix) and len(value) > len(prefix):
                return True
        elif value == choice:
            return True
    return False


def advice(meta: Mapping) -> str:
    """How a message says a field's choices: ``use 'a', 'b' (what b is) or 'c'``."""
    said = [(repr(c) if meta["quoted"] else c) + (f" ({meta['glosses'][c]})" if c in meta["glosses"] else "")
            for c in meta["choices"]]
    listed = said[0] if len(said) == 1 else ", ".join(said[:-1]) + " or " + said[-1]
    if meta["purpose"]:
        return f"list {meta['purpose']}, any of {', '.join(said)}"
    return f"{meta['lead']} {listed}"


AUTH_METHODS = ("none", "token", "iam", "aksk", "app_key", "app_code")
LOAD_SHAPES = ("constant", "ramp", "step", "spike", "soak")


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
    method: str = one_of("none", AUTH_METHODS, quoted=False, lead="use one of")
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
    stop_after_failures: int = bounded(5, 0, 1_000_000, why="0: never")  # streams failed auth and none passed


@dataclass
class Body:
    json: Any = None  # inline JSON value
    text: str | None = None  # a body sent as is (UTF-8); "" is an empty body (None: not given)
    file: str = ""  # a file sent as is
    size_bytes: int = bounded(0, 0, MAX_BODY_SIZE_BYTES, why="0: none")  # generate a body of this size
    sizes: list[int] = bounded([], 0, MAX_BODY_SIZE_BYTES, why="each size")  # sweep: users take these in turn
    kind: str = one_of("json", ("json", "binary"))  # generated bodies
    over_limit: str = one_of("skip", ("skip", "send"))  # bodies over gateway.max_body_bytes: not sent, or sent
    # prompt workloads (LLM services): a body per prompt, [body] json as the template
    dataset: str = ""  # JSON lines: a prompt string, {"messages": [...]}, {"prompt": ...}, or a ShareGPT record
    order: str = one_of("sequential", ("sequential", "shuffle", "random"))  # dataset: shuffle once by seed; random
    seed: int = bounded(0, 0, 2**32 - 1)
    prompts: int = bounded(0, 0, 1_000_000, why="0: none")  # synthetic: each with a prefix of its own (no shared cache)
    input_words: str = bounded("100", 1, 1_000_000, form="dist")  # synthetic prompt words: 100, "uniform:50:150"
    # each body's max_tokens: a number or a distribution as input_words; "" keeps the template's
    max_tokens: str = bounded("", 1, 1_000_000, form="dist or empty")
    shared_prefix_words: int = bounded(0, 0, 1_000_000)  # synthetic: words every prompt starts with (a prefix cache)
    include_usage: bool = False  # JSON bodies ask for the usage chunk (stream_options.include_usage): exact tokens
    multi_turn: bool = False  # dataset: each line a conversation, its turns sent in order with the answers so far
    write: bool = False  # write the body's text and JSON into run.json (off: a body may carry secrets)


@dataclass
class Stream:
    completion: str = one_of("close", ("close", "auto", "done", "event:" + ANY_NAME),
                             glosses={"auto": "a clean end or data: [DONE]", "done": "data: [DONE]"})
    max_event_bytes: int = bounded(DEFAULT_MAX_EVENT_BYTES, 1, 1 << 30)
    # a compressed body (gzip, deflate): the most content per stream, and per compressed byte past the
    # first MiB (sseload.protocol.decoding); more is a protocol_error
    max_decoded_bytes: int = bounded(DEFAULT_MAX_DECODED_BYTES, 1, why="bytes of a compressed body's content")
    max_decode_ratio: float = bounded(DEFAULT_MAX_DECODE_RATIO, 1, why="content bytes per compressed byte")
    connect_timeout_s: float = bounded(10.0, 0, HOUR_S, above=True)
    read_timeout_s: float = bounded(30.0, 0, DAY_S, above=True)
    grace_s: float = bounded(5.0, 0, DAY_S)  # the harness's own deadline is gateway.limit_s + grace_s
    truth: bool = True  # read each event's send time (send_time_key) to measure delivery delay
    send_time_key: str = "t_send_ns"  # the JSON field in an event's data carrying its send time (wall clock)
    send_time_unit: str = one_of("ns", ("ns", "us", "ms"), quoted=False)  # a whole number since the Unix epoch
    max_redirects: int = bounded(3, 0, 100, why="0: follow none")  # redirects on the same host to reach the stream
    reconnect: bool = False  # a long-lived feed: reconnect as EventSource does (retry:, Last-Event-ID)
    format: str = one_of("auto", ("auto", "sse", *BUILT_IN, "json"),  # an LLM API's chunks: token metrics (llm.md)
                         glosses={"auto": "by the request path (docs/llm.md)", "sse": "plain events, no tokens",
                                  "json": "the paths of [stream.dialect]"})
    # a custom API's chunks, as JSON paths (sseload.protocol.dialects.declared): output, reasoning,
    # output_tokens, prompt_tokens, reasoning_tokens, finish, error, id
    dialect: dict[str, str] = field(default_factory=dict)
    reconnect_ms: float = bounded(3000.0, 0, DAY_S * 1000)  # the wait before reconnecting until the server sends retry:
    tokenizer: str = ""  # LLM: a local tokenizer.json counting output tokens when the server sends no usage
    output: list[str] = one_of(list(OUTPUT_KINDS), tuple(OUTPUT_KINDS),  # LLM: a chunk's output
                               purpose="what counts as a chunk's output (TTFT, ITL)")
    tls_verify: bool = True
    ca_bundle: str = ""
    connection: str = one_of("keep-alive", ("keep-alive", "new"),
                             glosses={"keep-alive": "a user's streams share its connection",
                                      "new": "a connection, and its handshake, per stream"})
    tls_resume: bool = True  # a new TLS connection resumes the last one's session (false: a full handshake each)


@dataclass
class Slo:
    """Service-level objectives of an LLM stream (0: none); a stream meeting all of them counts in goodput."""

    ttft_ms: float = bounded(0.0, 0, why="0: none")
    tpot_ms: float = bounded(0.0, 0, why="0: none")
    e2e_ms: float = bounded(0.0, 0, why="0: none")
    answer_ttft_ms: float = bounded(0.0, 0, why="0: none")  # to the first answer token, after any reasoning
    max_stall_ms: float = bounded(0.0, 0, why="0: none")  # the largest gap between a stream's output chunks


@dataclass
class Gateway:
    limit_s: float = bounded(DEFAULT_LIMIT_S, 0, DAY_S, above=True)
    max_body_bytes: int = bounded(DEFAULT_MAX_BODY_BYTES, 0, MAX_BODY_SIZE_BYTES)


@dataclass
class Load:
    users: int = bounded(10, 1, MAX_USERS)
    spawn_rate: float = bounded(10.0, 0, MAX_USERS, above=True, why="users started per second")
    run_time: str = bounded("10s", 0, MAX_RUN_S, above=True, form="span")
    wait_s: float = bounded(0.0, 0, DAY_S)  # pause between a user's streams (closed model)
    shape: str = one_of("constant", LOAD_SHAPES, quoted=False)  # see users_at
    start_users: int = bounded(1, 0, MAX_USERS)
    step_users: int = bounded(10, 0, MAX_USERS)
    step_s: float = bounded(30.0, 0, MAX_RUN_S, above=True)
    spike_users: int = bounded(0, 0, MAX_USERS)
    spike_at_s: float = bounded(0.0, 0, MAX_RUN_S)
    spike_s: float = bounded(0.0, 0, MAX_RUN_S)
    arrival: str = one_of("closed", ("closed", "constant", "poisson"), quoted=False)  # open model: rate_per_s
    rate_per_s: float = bounded(0.0, 0, MAX_USERS, why="0: the closed model")
    stop_after_failures: int = bounded(20, 0, 1_000_000, why="0: never")  # first streams all failed the same way
    failure_backoff_s: float = bounded(0.1, 0, HOUR_S, why="0: never wait")  # a fast failure's wait, doubling to 2 s
    # LLM streams: abandon a stream whose first output has not come in patience_s (0: never), as a
    # user would; patience_share of the users are that impatient (the others wait)
    patience_s: float = bounded(0.0, 0, why="0: never")
    patience_share: float = bounded(1.0, 0, 1, why="the share of users who give up")
    # trace replay (sseload.scenario.trace, docs/traces.md): a JSONL file, one request per line at its time
    trace: str = ""
    speed: float = bounded(1.0, 0, above=True, why="trace: 2 replays it twice as fast")


SEARCH_OVER = ("users", "rate")


@dataclass
class Search:
    """``sseload search``: the highest load that holds, found by a bounded search (sseload.run.search;
    docs/search.md). ``min``, ``max`` and ``require`` are users (whole numbers) or streams/s, as ``over`` says."""

    over: str = one_of("users", SEARCH_OVER, glosses={"users": "closed model", "rate": "streams/s, open model"})
    min: float = bounded(1.0, 0, MAX_USERS, above=True)
    max: float = bounded(64.0, 0, MAX_USERS, above=True)
    share: float = bounded(0.95, 0, 1, above=True)  # a point holds when this share of its streams meets [slo]
    point_s: float = bounded(30.0, 1, DAY_S)  # each point's least length
    budget_s: float = bounded(600.0, 1, MAX_RUN_S)  # the whole search
    require: float = bounded(0.0, 0, MAX_USERS, why="0: no gate")  # exit 1 when the capacity found is below this
    # rate: a bracket whose width is at most this share of its low end is narrow enough
    resolution: float = bounded(0.05, 0, 1, above=True)


@dataclass
class ServerMetrics:
    """The service's own Prometheus metrics, scraped during the run (docs/server-metrics.md)."""

    url: str = ""  # http://host:port/metrics; empty: none scraped
    interval_ms: float = bounded(1000.0, 100, why="milliseconds between scrapes")
    series: list[str] = field(default_factory=list)  # metric names the report charts beside the usual ones


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
    search: Search = field(default_factory=Search)
    server_metrics: ServerMetrics = field(default_factory=ServerMetrics)
    thresholds: dict[str, float] = field(default_factory=dict)
    # the embedded target's settings, checked where `sseload run` starts it (sseload.run.supervisor)
    target: dict[str, Any] = field(default_factory=dict)
    source: str = ""  # the file it came from


#: The tables of a scenario file, by name.
TABLES = {"request": Request, "auth": Auth, "body": Body, "stream": Stream, "gateway": Gateway, "load": Load,
          "slo": Slo, "search": Search,
          "server_metrics": ServerMetrics}


def limit_s_of(written: Mapping) -> float:
    """The gateway's limit of a scenario as run.json keeps it (``dataclasses.asdict``); the default where
    it says none."""
    return float((written.get("gateway") or {}).get("limit_s", DEFAULT_LIMIT_S))


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


def dialect_of(s: Scenario, url: str) -> Dialect | None:
    """The LLM API whose chunks the streams are read as (token metrics), or None for plain SSE:
    [stream] format says so; ``auto`` (the default) chooses by the request path, or takes
    [stream.dialect] where one is declared. Raises ScenarioError for a declared dialect that cannot be used."""
    fmt = s.stream.format
    if fmt == "sse":
        return None
    if fmt == "json" or (fmt == "auto" and s.stream.dialect):
        try:
            return declared(s.stream.dialect)
        except ValueError as err:
            raise ScenarioError(f"{s.source or 'the scenario'}: {err}") from None
    if fmt in BUILT_IN:
        return BUILT_IN[fmt]
    return for_url(url)


def check_url(url: str, where: str) -> None:
    """A URL a stream (or a token fetch) can be sent to: http or https, a host, and a port from 1 to 65535
    where one is given. The message names the host and port, never the URL's user:password@."""
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        raise ScenarioError(f"{where} is not an http:// or https:// URL with a host (e.g. https://gateway.example.com)")
    try:
        port = parts.port
    except ValueError:  # not a number, or past 65535
        port = -1
    if port is not None and not 1 <= port <= 65535:
        given = parts.netloc.rpartition("@")[2]
        raise ScenarioError(f"{where}: {given!r} has no port sseload can connect to; give a port from 1 to 65535 "
                            f"(e.g. {parts.scheme}://{given.rpartition(':')[0]}:8080), or none for the scheme's own")


def request_url(request: Request, host: str) -> str:
    """The URL a stream requests: -H's base joined to [request] path, unless -H names a path itself
    (a --path flag takes -H's path off first: sseload.scenario.load.select)."""
    parts = urlsplit(host)
    if parts.path not in ("", "/") or parts.query:
        return host
    return host.rstrip("/") + request.path


# --- what a value sent in a request may be ---

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
    is refused: sent in a header it would end the request head early. [auth] credentials and
    ``${VAR}`` references both come through here."""
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
