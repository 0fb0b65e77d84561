"""What the reference target does: event timing, gateway limits, credentials, faults.

Each number is declared with its range beside it (sseload.scenario.ranges.bounded), as a scenario's
are: :meth:`TargetConfig.from_dict` holds a scenario's ``[target]`` table and ``sseload serve --config``
to it, ``sseload serve``'s flags take their key's (sseload.target.__main__), and docs/scenarios.md
says it in the same words (tests/test_numbers.py).
"""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Any

from sseload.protocol.gateway import DEFAULT_LIMIT_S, DEFAULT_MAX_BODY_BYTES
from sseload.scenario.dist import Dist
from sseload.scenario.ranges import DAY_S, MAX_BODY_SIZE_BYTES, MAX_RUN_S, bounded, range_missed

FAULTS = (
    "reset",  # connection reset mid-stream
    "stall",  # a pause of stall_s mid-stream
    "malformed",  # lines that are not valid SSE fields and invalid UTF-8
    "oversized",  # one event larger than oversized_bytes
    "wrong_content_type",  # text/html instead of text/event-stream
    "http_429",
    "http_500",
    "http_502",
    "http_503",
    "slow_headers",  # response headers after slow_headers_s
    "early_close",  # clean close halfway, without the completion event
    "gzip",  # Content-Encoding: gzip stream
    "split",  # every event written in pieces split at arbitrary bytes
    "error_event",  # an `event: error` halfway, then close
    "no_charset",  # Content-Type: text/event-stream without a charset
)


class ConfigError(ValueError):
    pass


DAY_MS = DAY_S * 1000  # the longest delay the target takes: a day (the gateway's longest limit)
MOST_EVENT_BYTES = 1 << 30  # the largest event it builds (the most [stream] max_event_bytes takes)


@dataclass
class TargetConfig:
    host: str = "127.0.0.1"
    port: int = bounded(0, 0, 65535, why="0: a free port")
    # event schedule
    ttfe_ms: Dist = bounded(Dist("fixed", 200.0), 0, DAY_MS, form="dist")
    gap_ms: Dist = bounded(Dist("fixed", 20.0), 0, DAY_MS, form="dist")
    events: int = bounded(50, 0, 1_000_000)  # (each stream's schedule is a list of this many times)
    payload_bytes: int = bounded(64, 0, MOST_EVENT_BYTES)
    seed: int | None = bounded(None, 0, 2**32 - 1)  # None: a new one each start
    # OpenAI-style streams (a path ending in /chat/completions): an LLM server's shape
    tokens_per_chunk: Dist = bounded(Dist("fixed", 1.0), 1, 10_000, form="dist")  # each content chunk's tokens
    # time to first token grows with the prompt (words of its messages)
    prefill_ms_per_word: float = bounded(0.0, 0, DAY_MS)
    # gateway (the ranges of [gateway]'s keys of the same names)
    limit_s: float = bounded(DEFAULT_LIMIT_S, 0, DAY_S, above=True)
    max_body_bytes: int = bounded(DEFAULT_MAX_BODY_BYTES, 0, MAX_BODY_SIZE_BYTES)
    cutoff: str = "cut"  # what happens to a stream past limit_s: "cut" (abort) or "close"
    max_skew_s: float = bounded(15 * 60.0, 0, DAY_S)
    lockout_failures: int = bounded(5, 1, 1_000_000)
    lockout_s: float = bounded(300.0, 0, DAY_S, why="0: never locked")
    # credentials; when none is set, no authentication is required
    tokens: list[str] = field(default_factory=list)
    aksk: dict[str, str] = field(default_factory=dict)
    app_keys: dict[str, str] = field(default_factory=dict)
    app_codes: list[str] = field(default_factory=list)
    iam_users: dict[str, str] = field(default_factory=dict)
    token_ttl_s: float = bounded(24 * 3600.0, 0, MAX_RUN_S, above=True)
    # fault injection: name -> rate
    faults: dict[str, float] = bounded({}, 0, 1, why="each fault's share of streams; together at most 1")
    stall_s: float = bounded(2.0, 0, DAY_S)
    slow_headers_s: float = bounded(2.0, 0, DAY_S)
    oversized_bytes: int = bounded(2 * 1024 * 1024, 0, MOST_EVENT_BYTES)

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens or self.aksk or self.app_keys or self.app_codes or self.iam_users)

    def validate(self, where: str = "target settings") -> TargetConfig:
        """Every value usable, or ConfigError naming ``where`` (a scenario's ``FILE: [target]``, a file
        of ``sseload serve --config``, or the flags' "target settings") and the key."""
        for name in self.faults:
            if name not in FAULTS:
                raise said(where, f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
        for f in fields(self):
            missed = "range" in f.metadata and number_missed(f.name, getattr(self, f.name))
            if missed:
                raise said(where, missed)
        if sum(self.faults.values()) > 1.0 + 1e-9:
            raise said(where, "fault rates add up to more than 1; at most one fault applies per stream")
        if self.cutoff not in ("cut", "close"):
            raise said(where, f"cutoff {self.cutoff!r} must be 'cut' or 'close'")
        return self

    @classmethod
    def from_dict(cls, raw: dict, where: str = "target settings") -> TargetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise said(where, f"unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}")
        values = dict(raw)
        for name in ("ttfe_ms", "gap_ms", "tokens_per_chunk"):
            if name in values and not isinstance(values[name], Dist):
                missed = number_missed(name, values[name])  # (a distribution it cannot read misses too)
                if missed:
                    raise said(where, missed)
                values[name] = Dist.parse(values[name], f"{where}: {name}")
        if not isinstance(values.get("faults", {}), dict):
            raise said(where, f"faults = {values['faults']!r} should be a table of fault name = rate, e.g. "
                              "faults = { reset = 0.02 }")
        try:
            return cls(**values).validate(where)
        except TypeError as err:
            raise said(where, str(err)) from None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ttfe_ms"] = str(self.ttfe_ms)
        out["gap_ms"] = str(self.gap_ms)
        out["tokens_per_chunk"] = str(self.tokens_per_chunk)
        return out


#: The fields whose numbers are whole.
WHOLE = frozenset(f.name for f in fields(TargetConfig) if f.type in ("int", "int | None"))


def said(where: str, message: str) -> ConfigError:
    """The error of ``message`` about the settings read from ``where``: ``x.toml: [target] events = ...``."""
    return ConfigError(f"{where}{' ' if where.endswith(']') else ': '}{message}")


def number_missed(name: str, value: Any) -> str | None:
    """What the value of key ``name`` misses of its range (sseload.scenario.ranges), as the sentence's
    end naming the key (``events = -1 must be at least 0 ...``), or None: a fault's rate is each value
    of ``faults``; a ``seed`` of None is none given."""
    if value is None and name == "seed":
        return None
    meta = TargetConfig.__dataclass_fields__[name].metadata
    for fault, number in value.items() if isinstance(value, dict) else [("", value)]:
        missed = range_missed(number, meta, whole=name in WHOLE)
        if missed:
            return f"{name}{f' {fault}' if fault else ''} = {number!r} {missed}"
    return None
