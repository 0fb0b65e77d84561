"""How a stream is judged, built once per scenario: the completion rule, limits and timeouts,
and what an LLM stream's chunks are read for. Plain data with no parser behind it, so the run's
plan (sseload.run.plan) builds it without loading httptools."""

from __future__ import annotations

from dataclasses import dataclass

from sseload.protocol.gateway import DEFAULT_LIMIT_S
from sseload.protocol.openai import ALL_OUTPUT
from sseload.protocol.sse import DEFAULT_MAX_EVENT_BYTES

MAX_HEAD_BYTES = 64 * 1024  # a response head longer than this is refused (an endless head must not grow memory)


@dataclass(frozen=True)
class StreamRules:
    """How a stream is judged; built once per scenario."""

    completion: str = "close"  # "close", "auto" (close or data: [DONE]), "done", or "event:NAME"
    max_event_bytes: int = DEFAULT_MAX_EVENT_BYTES
    max_head_bytes: int = MAX_HEAD_BYTES
    connect_timeout_s: float = 10.0
    read_timeout_s: float = 30.0
    deadline_s: float = DEFAULT_LIMIT_S + 5.0  # gateway limit + the scenario's default [stream] grace_s
    limit_s: float = DEFAULT_LIMIT_S
    truth: bool = True
    send_time_key: str = "t_send_ns"  # the JSON field in each event's data that carries its send time
    max_redirects: int = 3  # same-origin redirects followed (0: none)
    openai: bool = False  # OpenAI-style chunks: the log keeps each event's output and usage (token metrics)
    keep_output: bool = False  # openai: the log keeps the output chunks' data (a tokenizer, a conversation)
    output_kinds: int = ALL_OUTPUT  # openai: what counts as output (sseload.protocol.openai.OUTPUT_KINDS' bits)
    tokenizer: object = None  # openai: counts output tokens where the server sends no usage (sseload.record.tokens)
    new_connection: bool = False  # a connection per stream (Connection: close), not kept alive
    tls_resume: bool = True  # a new TLS connection resumes the last session; False: a full handshake each time

    @property
    def cutoff_after_s(self) -> float:
        """An abnormal end this late is the gateway's cut, not a random reset."""
        return self.limit_s - min(1.0, 0.05 * self.limit_s)
