"""LLM streams (OpenAI-style chunks): a stream's token facts from its event log, sans I/O.

The compiled event log (sseload._sse, openai mode; its definition sseload.sse.openai_facts) keeps
per event whether the chunk carried output and the ``usage.completion_tokens`` it reported, packed
as ``output + 2 * (completion_tokens + 1)``. From those and the events' read times come, per
stream, what the token metrics of sseload.metrics need: time to first token, output tokens and
where that count came from. The definitions and how they map to other tools' are written once,
in sseload.metrics and docs/llm.md.
"""

from __future__ import annotations

import numpy as np

#: Where a stream's output token count came from.
FROM_USAGE = "usage"  # the server's usage.completion_tokens (include_usage, or per-chunk usage)
FROM_CHUNKS = "chunks"  # no usage: the chunks that carried output, one token each


def unpack(llm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output flags as bool, usage.completion_tokens with -1 where absent) of packed events."""
    return (llm & 1).astype(bool), (llm >> 1) - 1


def stream_tokens(llm: bytes, t_ns: bytes, t0_ns: int) -> tuple[int, int, str]:
    """(TTFT ns or -1, output tokens or -1, FROM_USAGE/FROM_CHUNKS/"") of one stream's events."""
    packed = np.frombuffer(llm, dtype=np.int64)
    if packed.size == 0:
        return -1, -1, ""
    output, usage = unpack(packed)
    ttft_ns = -1
    if output.any():
        ttft_ns = int(np.frombuffer(t_ns, dtype=np.int64)[int(np.argmax(output))]) - t0_ns
    if (usage >= 0).any():
        return ttft_ns, int(usage.max()), FROM_USAGE
    return ttft_ns, int(output.sum()), FROM_CHUNKS


__all__ = ["FROM_CHUNKS", "FROM_USAGE", "stream_tokens", "unpack"]
