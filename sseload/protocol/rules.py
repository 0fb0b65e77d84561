"""How a stream is judged, built once per scenario: the completion rule, limits and timeouts,
and what an LLM stream's chunks are read for. Plain data with no parser behind it, so the run's
plan (sseload.run.plan) builds it without loading httptools."""

from __future__ import annotations

from dataclasses import dataclass, field

from sseload.protocol.decoding import DEFAULT_MAX_DECODE_RATIO, DEFAULT_MAX_DECODED_BYTES
from sseload.protocol.dialects import Dialect, program
from sseload.protocol.gateway import DEFAULT_LIMIT_S
from sseload.protocol.scan import Program
from sseload.protocol.sse import ALL_OUTPUT, DEFAULT_MAX_EVENT_BYTES

SEND_TIME_UNITS_NS = {"ns": 1, "us": 1_000, "ms": 1_000_000}  # a send time's unit, in ns


def truth_key(field: str) -> bytes:
    """What precedes a send time in an event's data: the JSON field's name, quoted, and a colon."""
    return f'"{field}":'.encode()


MAX_HEAD_BYTES = 64 * 1024  # a response head longer than this is refused (an endless head must not grow memory)


@dataclass(frozen=True)
class StreamRules:
    """How a stream is judged; built once per scenario."""

    completion: str = "close"  # "close", "auto" (close or data: [DONE]), "done", or "event:NAME"
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_head_bytes: int = MAX_HEAD_BYTES
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES  # a compressed body's content (sseload.protocol.decoding)
    max_decode_ratio: float = DEFAULT_MAX_DECODE_RATIO  # its content per compressed byte, past the first MiB
    max_decoded_bytes: int = DEFAULT_MAX_DECODED_BYTES  # a compressed body's content (sseload.protocol.decoding)
    max_decode_ratio: float = DEFAULT_MAX_DECODE_RATIO  # its content per compressed byte, past the first MiB
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    deadline_s: float = DEFAULT_LIMIT_S + 5.0  # gateway limit + the scenario's default [stream] grace_s
    limit_s: float = DEFAULT_LIMIT_S
    truth: bool = True
    send_time_key: str = "t_send_ns"  # the JSON field in each event's data that carries its send time
    max_redirects: int = 3  # same-origin redirects followed (0: none)
    dialect: Dialect | None = None  # an LLM API's chunks (sseload.protocol.dialects): token metrics; None: plain SSE
    keep_output: bool = False  # dialect: the log keeps the output chunks' data (a tokenizer, a conversation)
    output_kinds: int = ALL_OUTPUT  # dialect: what counts as output (sseload.protocol.dialects.OUTPUT_KINDS' bits)
    tokenizer: object = None  # dialect: counts output tokens where the server sends no usage (sseload.record.tokens)
    patience_s: float = 0.0  # dialect: abandon a stream whose first output has not come in this long (0: never)
    new_connection: bool = False  # a connection per stream (Connection: close), not kept alive
    tls_resume: bool = True  # a new TLS connection resumes the last session; False: a full handshake each time

    #: The dialect's scan program, made once (every stream's event log shares it).
    program: Program | None = field(init=False, compare=False, repr=False, default=None)

    def __post_init__(self) -> None:
        object.__setattr__(self, "program", program(self.dialect) if self.dialect is not None else None)

    @property
    def llm(self) -> bool:
        """The streams are an LLM API's: their chunks are read for tokens."""
        return self.dialect is not None

    @property
    def cutoff_after_s(self) -> float:
        """An abnormal end this late is the gateway's cut, not a random reset."""
        return self.limit_s - min(1.0, 0.05 * self.limit_s)
