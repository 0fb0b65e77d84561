"""Reading a scenario: the file (or a ready scenario by name), its types and values checked, and
the one choice of a run's scenario that ``sseload run`` and ``locust -f`` share (:func:`select`).

Every table and key is checked on load, each number against the range declared beside it
(sseload.scenario.ranges); an error names the file, the field and the fix. With no
file at all, :func:`default_scenario` is the embedded default: the reference target on a free
loopback port. The ``[target]`` table is the reference target's, checked where ``sseload run``
starts it (sseload.run.supervisor), not here: a scenario says nothing the harness needs of it.
"""

from __future__ import annotations

import os
import re
import tomllib
from collections.abc import Mapping
from dataclasses import fields
from pathlib import Path
from types import MappingProxyType
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from sseload.record.metrics import THRESHOLDS  # the names a [thresholds] table may use
from sseload.scenario import files
from sseload.scenario import flags as request_flags
from sseload.scenario.model import (
    MAX_SENT_BODY_BYTES,
    TABLES,
    Request,
    Scenario,
    ScenarioError,
    advice,
    allowed,
    check_header,
    check_method,
    check_url,
    from_env,
)
from sseload.scenario.ranges import range_missed, range_text, threshold_range


def default_scenario() -> Scenario:
    """The embedded default: reference target, plain events ending in ``event: done``."""
    scenario = Scenario()
    scenario.stream.completion = "event:done"
    return scenario


def for_host(host: str) -> Scenario:
    """The scenario of ``sseload run -H URL`` with no scenario file: a stream to a service nobody
    described. A clean end of the response (or ``data: [DONE]``) is ``ok``; the URL's path is the
    request's; GET unless a body is given (see sseload.scenario.flags.apply_request_flags)."""
    check_url(host, "-H/--host")
    parts = urlsplit(host)
    hostport = parts.hostname + (f":{parts.port}" if parts.port else "")  # never the URL's credentials
    name = re.sub(r"[^A-Za-z0-9._-]+", "-", hostport).strip("-.") or "host"
    scenario = Scenario(name=name, source="")
    scenario.description = f"streams from {host} with no scenario (ok: a clean end of the response, or data: [DONE])"
    scenario.request.method = "GET"
    scenario.request.headers = {}
    scenario.request.path = "/"  # -H's own path, where it has one, is taken by request_url
    scenario.stream.completion = "auto"
    return scenario


def select(path: str | Path | None, host: str | None, flags: Any = None,
           embedded: bool = False) -> tuple[Scenario, str | None]:
    """The scenario a run takes and the host its streams go to, the same for ``sseload run`` and
    ``locust -f``: the file (or ready scenario) given; else, with -H naming a service (not the
    reference target ``sseload run`` started, ``embedded``), a stream to it judged by its clean
    end; else the embedded default. Then the request flags (sseload.scenario.flags); a --path
    flag takes -H's own path and query off the host, so the flag's path is the one requested. The
    host's URL, and every file the result names (sseload.scenario.files), are checked here, once."""
    if host:
        check_url(host, "-H/--host")
    if path:
        scenario = load(path)
    elif host and not embedded:
        scenario = for_host(host)
    else:
        scenario = default_scenario()
    if flags is not None:
        request_flags.apply_request_flags(scenario, flags)
        if host and getattr(flags, "path", None) is not None:
            parts = urlsplit(host)
            host = urlunsplit((parts.scheme, parts.netloc, "", "", ""))
    files.check_named(scenario)
    return scenario, host


# --- reading a file ---

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
    if not os.path.lexists(path):
        names = ", ".join(p.stem for p in ready())
        raise ScenarioError(f"{path}: no such scenario file, nor a ready scenario of that name ({names}; "
                            "`sseload scenarios` describes them)")
    text = files.read_text(path, "the scenario", files.MOST_SCENARIO_BYTES, "a TOML file")
    try:
        raw = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        raise ScenarioError(f"{path}: not valid TOML ({err}); fix the syntax at that line") from None
    return from_dict(raw, str(path))


def _typed(where: str, key: str, value: Any, default: Any, meta: Mapping = MappingProxyType({})) -> Any:
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
        bounds = f", {range_text(meta)}" if "range" in meta else ""
        raise ScenarioError(f"{where}: {key} = {value!r} should be {kind}" + ("" if empty else f" (like {example})")
                            + bounds)
    return value


def from_dict(raw: dict[str, Any], source: str = "<scenario>") -> Scenario:
    scenario = Scenario(name=Path(source).stem if source.endswith(".toml") else source, source=source)
    allowed_keys = {"name", "description", "thresholds", "target", *TABLES}
    unknown = sorted(set(raw) - allowed_keys)
    if unknown:
        raise ScenarioError(
            f"{source}: unknown top-level key(s) {', '.join(unknown)}; "
            f"a scenario has {', '.join(sorted(allowed_keys))}"
        )
    for key in ("name", "description"):
        if key in raw:
            setattr(scenario, key, str(raw[key]))
    for table in TABLES:
        values = raw.get(table, {})
        if not isinstance(values, dict):
            raise ScenarioError(f"{source}: [{table}] must be a table")
        obj = getattr(scenario, table)
        for key, value in values.items():
            if not hasattr(obj, key):
                known = ", ".join(k for k in vars(obj))
                raise ScenarioError(f"{source}: [{table}] has no key {key!r}; known keys: {known}")
            meta = obj.__dataclass_fields__[key].metadata
            setattr(obj, key, _typed(f"{source}: [{table}]", key, value, getattr(obj, key), meta))
    thresholds = raw.get("thresholds", {})
    for key, value in thresholds.items():
        if key not in THRESHOLDS:
            raise ScenarioError(
                f"{source}: [thresholds] has no {key!r}; known thresholds: {', '.join(sorted(THRESHOLDS))}"
            )
        missed = range_missed(value, threshold_range(key))
        if missed:
            raise ScenarioError(f"{source}: [thresholds] {key} = {value!r} {missed}")
    scenario.thresholds = {k: float(v) for k, v in thresholds.items()}
    target = raw.get("target", {})
    if not isinstance(target, dict):
        raise ScenarioError(f"{source}: [target] must be a table")
    scenario.target = dict(target)
    validate(scenario)
    return scenario


def _check_choices(where: str, s: Scenario) -> None:
    """Every field declared with its choices (sseload.scenario.model.one_of) holds one of them."""
    for table, cls in TABLES.items():
        obj = getattr(s, table)
        for f in fields(cls):
            meta = f.metadata
            if "choices" not in meta:
                continue
            value = getattr(obj, f.name)
            if meta["purpose"]:  # a list: any of the choices, at least one
                ok = isinstance(value, list) and bool(value) and all(allowed(v, meta["choices"]) for v in value)
            else:
                ok = allowed(value, meta["choices"])
            if not ok:
                raise ScenarioError(f"{where}: [{table}] {f.name} = {value!r}; {advice(meta)}")


def check_flag(value: Any, meta: Mapping, flag: str, example: str) -> Any:
    """A command-line flag's value, held to ``meta``'s range (a flag over a scenario key: the key's)."""
    missed = range_missed(value, meta)
    if missed:
        raise ScenarioError(f"{flag} is {value!r}: it {missed}" + ("" if "e.g." in missed else f"; e.g. {example}"))
    return value


def _check_ranges(where: str, s: Scenario) -> None:
    """Every number declared with its range (sseload.scenario.ranges.bounded) is in it; a list's, each one."""
    for table, cls in TABLES.items():
        for f in fields(cls):
            if "range" not in f.metadata:
                continue
            value = getattr(getattr(s, table), f.name)
            for number in value if isinstance(value, list) else [value]:
                missed = range_missed(number, f.metadata, whole=f.type == "list[int]")
                if missed:
                    said = f"holds {number!r}, which" if isinstance(value, list) else f"= {number!r}"
                    raise ScenarioError(f"{where}: [{table}] {f.name} {said} {missed}")


def _check_search(where: str, s: Scenario) -> None:
    """[search]: a range to search, in whole users for the closed model."""
    search = s.search
    if search.min > search.max:
        raise ScenarioError(f"{where}: [search] min = {search.min:g} is more than max = {search.max:g}; "
                            "give min <= max")
    if search.over == "users" and not all(float(v).is_integer() for v in (search.min, search.max)):
        raise ScenarioError(f"{where}: [search] over = \"users\" takes whole numbers of users for min and max "
                            f"(not {search.min:g} and {search.max:g})")
    if search.budget_s < search.point_s:
        raise ScenarioError(f"{where}: [search] budget_s = {search.budget_s:g} is shorter than one point "
                            f"(point_s = {search.point_s:g}); give a budget of several points")


def validate(s: Scenario) -> None:
    where = s.source or s.name
    _check_choices(where, s)
    _check_ranges(where, s)
    _check_search(where, s)
    given = [name for name, on in (("json", s.body.json is not None), ("text", s.body.text is not None),
                                   ("file", bool(s.body.file)), ("size_bytes", s.body.size_bytes > 0),
                                   ("sizes", bool(s.body.sizes))) if on]
    if s.body.dataset or s.body.prompts:
        given = [g for g in given if g != "json"]  # json is the prompts' template
        given += ["dataset"] * bool(s.body.dataset) + ["prompts"] * bool(s.body.prompts)
    if len(given) > 1:
        raise ScenarioError(f"{where}: [body] sets {' and '.join(given)}; choose one way to make the body")
    if s.body.json is not None and (s.body.dataset or s.body.prompts) and not isinstance(s.body.json, dict):
        raise ScenarioError(f"{where}: [body] json is the prompts' template here: give a table "
                            "(like {{model = \"m\", stream = true}})")
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
    for key, url in (("[request] url", s.request.url), ("[auth] iam_url", s.auth.iam_url)):
        if url and "${" not in url:  # a ${VAR}'s value is checked where it is read (sseload.run.plan)
            check_url(url, f"{where}: {key}")
    if s.load.arrival != "closed" and s.load.rate_per_s <= 0:
        raise ScenarioError(
            f"{where}: [load] arrival = {s.load.arrival!r} needs rate_per_s > 0 (streams started per second); "
            "users is then the most streams open at once"
        )
    if not re.fullmatch(r"[A-Za-z_][A-Za-z0-9_.-]*", s.stream.send_time_key):
        raise ScenarioError(f"{where}: [stream] send_time_key = {s.stream.send_time_key!r}; give a JSON field name "
                            "such as t_send_ns")
    if s.body.multi_turn and not s.body.dataset:
        raise ScenarioError(f"{where}: [body] multi_turn needs a dataset of conversations ([body] dataset)")
    if s.body.multi_turn and s.stream.reconnect:
        raise ScenarioError(f"{where}: [body] multi_turn and [stream] reconnect: a conversation's turns are "
                            "separate requests, a feed one long stream; choose one")
    if s.body.text is not None and not isinstance(s.body.text, str):
        raise ScenarioError(f"{where}: [body] text = {s.body.text!r} should be a string (sent as it is, UTF-8; "
                            "'' sends an empty body)")
    _check_trace(where, s)
    if s.server_metrics.url and not s.server_metrics.url.startswith(("http://", "https://", "${")):
        raise ScenarioError(f"{where}: [server_metrics] url = {s.server_metrics.url!r} must start with http:// or "
                            "https:// (the service's Prometheus page, e.g. http://127.0.0.1:8000/metrics)")


def _check_trace(where: str, s: Scenario) -> None:
    """[load] trace: the requests and their times come from the trace (sseload.scenario.trace), so
    what would also say them is refused, naming both."""
    if not s.load.trace:
        return
    if s.load.arrival != "closed":
        raise ScenarioError(f"{where}: [load] trace and arrival = {s.load.arrival!r}: a trace gives every start "
                            "time itself; leave arrival and rate_per_s out (speed scales the trace's times)")
    others = [name for name, on in (("dataset", bool(s.body.dataset)), ("prompts", s.body.prompts > 0),
                                    ("text", s.body.text is not None), ("file", bool(s.body.file)),
                                    ("size_bytes", s.body.size_bytes > 0), ("sizes", bool(s.body.sizes)),
                                    ("multi_turn", s.body.multi_turn)) if on]
    if others:
        raise ScenarioError(f"{where}: [load] trace and [body] {', '.join(others)}: a trace gives each request's "
                            "body (its prompt, messages or lengths); keep [body] json as the template only")
    if s.stream.reconnect:
        raise ScenarioError(f"{where}: [load] trace and [stream] reconnect: a trace's lines are requests, a feed "
                            "one long stream; choose one")
    if s.load.shape != "constant":
        raise ScenarioError(f"{where}: [load] trace and shape = {s.load.shape!r}: the trace is the load's shape; "
                            "leave shape out")


# --- values from the environment ---

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
