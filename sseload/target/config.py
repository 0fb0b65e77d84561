"""What the reference target does: event timing, gateway limits, credentials, faults."""

from __future__ import annotations

from dataclasses import dataclass, field, fields

from sseload.protocol.gateway import DEFAULT_LIMIT_S, DEFAULT_MAX_BODY_BYTES
from sseload.scenario.dist import Dist, DistError

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


@dataclass
class TargetConfig:
    host: str = "127.0.0.1"
    port: int = 0
    # event schedule
    ttfe_ms: Dist = field(default_factory=lambda: Dist("fixed", 200.0))
    gap_ms: Dist = field(default_factory=lambda: Dist("fixed", 20.0))
    events: int = 50
    payload_bytes: int = 64
    seed: int | None = None
    # OpenAI-style streams (a path ending in /chat/completions): an LLM server's shape
    tokens_per_chunk: Dist = field(default_factory=lambda: Dist("fixed", 1.0))  # each content chunk's tokens
    prefill_ms_per_word: float = 0.0  # time to first token grows with the prompt (words of its messages)
    # gateway
    limit_s: float = DEFAULT_LIMIT_S
    max_body_bytes: int = DEFAULT_MAX_BODY_BYTES
    cutoff: str = "cut"  # what happens to a stream past limit_s: "cut" (abort) or "close"
    max_skew_s: float = 15 * 60
    lockout_failures: int = 5
    lockout_s: float = 300.0
    # credentials; when none is set, no authentication is required
    tokens: list[str] = field(default_factory=list)
    aksk: dict[str, str] = field(default_factory=dict)
    app_keys: dict[str, str] = field(default_factory=dict)
    app_codes: list[str] = field(default_factory=list)
    iam_users: dict[str, str] = field(default_factory=dict)
    token_ttl_s: float = 24 * 3600.0
    # fault injection: name -> rate in [0, 1]
    faults: dict[str, float] = field(default_factory=dict)
    stall_s: float = 2.0
    slow_headers_s: float = 2.0
    oversized_bytes: int = 2 * 1024 * 1024

    @property
    def auth_required(self) -> bool:
        return bool(self.tokens or self.aksk or self.app_keys or self.app_codes or self.iam_users)

    def validate(self, where: str = "target settings") -> TargetConfig:
        def fail(message: str) -> None:
            raise ConfigError(f"{where}: {message}")

        for name, rate in self.faults.items():
            if name not in FAULTS:
                fail(f"unknown fault {name!r}; known faults: {', '.join(FAULTS)}")
            if not isinstance(rate, (int, float)) or not 0.0 <= float(rate) <= 1.0:
                fail(f"fault {name!r} has rate {rate!r}; a rate is a number between 0 and 1")
        if sum(self.faults.values()) > 1.0 + 1e-9:
            fail("fault rates add up to more than 1; at most one fault applies per stream")
        if self.cutoff not in ("cut", "close"):
            fail(f"cutoff {self.cutoff!r} must be 'cut' or 'close'")
        if self.events < 0 or self.payload_bytes < 0 or self.prefill_ms_per_word < 0:
            fail("events, payload_bytes and prefill_ms_per_word must not be negative")
        return self

    @classmethod
    def from_dict(cls, raw: dict, where: str = "target settings") -> TargetConfig:
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(raw) - known)
        if unknown:
            raise ConfigError(
                f"{where}: unknown key(s) {', '.join(unknown)}; known keys: {', '.join(sorted(known))}"
            )
        values = dict(raw)
        for name in ("ttfe_ms", "gap_ms", "tokens_per_chunk"):
            if name in values and not isinstance(values[name], Dist):
                try:
                    values[name] = Dist.parse(values[name], f"{where}: {name}")
                except DistError as err:
                    raise ConfigError(str(err)) from None
        try:
            return cls(**values).validate(where)
        except TypeError as err:
            raise ConfigError(f"{where}: {err}") from None

    def to_dict(self) -> dict:
        out = {f.name: getattr(self, f.name) for f in fields(self)}
        out["ttfe_ms"] = str(self.ttfe_ms)
        out["gap_ms"] = str(self.gap_ms)
        out["tokens_per_chunk"] = str(self.tokens_per_chunk)
        return out
