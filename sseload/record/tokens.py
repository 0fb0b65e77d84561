"""A stream's token facts, from the chunks its event log recorded: what the record of an LLM stream holds.

The event log's openai mode (sseload.protocol.openai.openai_facts defines it) keeps, per event,
whether the chunk carried output and the ``usage.completion_tokens`` it reported, packed as
``output + 2 * (completion_tokens + 1)``. From those and the events' read times come, per stream,
what the token metrics of sseload.record.metrics need: time to first token, output tokens and
where that count came from. The definitions and how they map to other tools' are written once,
in sseload.record.metrics and docs/llm.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sseload.protocol.openai import chunk_output

#: Where a stream's output token count came from.
FROM_USAGE = "usage"  # the server's usage.completion_tokens (include_usage, or per-chunk usage)
FROM_TOKENIZER = "tokenizer"  # no usage: the output text counted by the scenario's tokenizer ([stream] tokenizer)
FROM_CHUNKS = "chunks"  # neither: the chunks that carried output, one token each


def unpack(llm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output flags as bool, usage.completion_tokens with -1 where absent) of packed events."""
    return (llm & 1).astype(bool), (llm >> 1) - 1


class StreamTokens(NamedTuple):
    """One stream's token facts."""

    ttft_ns: int  # to the read that completed the first chunk carrying output; -1: none came
    output_tokens: int  # -1: not an OpenAI-style stream (no event)
    tokens_from: str  # FROM_USAGE, FROM_TOKENIZER or FROM_CHUNKS; "" without events
    chunk_tokens: np.ndarray  # per event, the output tokens it carried; -1 where unknown


def stream_tokens(llm: bytes, t_ns: bytes, t0_ns: int, outputs: list[str] | None = None,
                  tokenizer=None) -> StreamTokens:
    """A stream's token facts from its events (packed ``llm``, read times ``t_ns``) and, with a
    tokenizer, the data of its chunks that carried output (the event log's ``outputs()``).

    The total is the server's ``usage.completion_tokens`` where it sent one, else the tokenizer's
    count of the output text, else the chunks that carried output. What each chunk carried: the
    step of the cumulative usage where every output chunk reports one (per-chunk usage), else the
    tokenizer's tokens that begin in the chunk's text, else one per chunk when chunks are the count;
    unknown (-1) when only a final usage chunk gave the total. Chunks without output carry 0.
    """
    packed = np.frombuffer(llm, dtype=np.int64)
    if packed.size == 0:
        return StreamTokens(-1, -1, "", np.zeros(0, np.int64))
    output, usage = unpack(packed)
    ttft_ns = -1
    if output.any():
        ttft_ns = int(np.frombuffer(t_ns, dtype=np.int64)[int(np.argmax(output))]) - t0_ns
    counted = token_counts(tokenizer, outputs) if tokenizer is not None and outputs is not None else None
    chunk = np.zeros(packed.size, np.int64)
    if output.any() and (usage[output] >= 0).all():
        chunk = np.diff(np.maximum.accumulate(np.maximum(usage, 0)), prepend=0)
    elif counted is not None:
        chunk[output] = counted
    elif (usage >= 0).any():
        chunk[output] = -1
    else:
        chunk[output] = 1
    if (usage >= 0).any():
        return StreamTokens(ttft_ns, int(usage.max()), FROM_USAGE, chunk)
    if counted is not None:
        return StreamTokens(ttft_ns, int(counted.sum()), FROM_TOKENIZER, chunk)
    return StreamTokens(ttft_ns, int(output.sum()), FROM_CHUNKS, chunk)


def load_tokenizer(path: str):
    """A Hugging Face ``tokenizer.json`` read from disk (nothing is downloaded); raises ValueError
    saying what to do when it cannot be used."""
    try:
        from tokenizers import Tokenizer
    except ImportError:
        raise ValueError("[stream] tokenizer needs the tokenizers package: pip install 'sseload[llm]'") from None
    try:
        return Tokenizer.from_file(path)
    except Exception as err:  # tokenizers raises its own Exception types for a bad file
        raise ValueError(f"[stream] tokenizer {path!r} is not a tokenizer.json that tokenizers can read: {err}") \
            from None


def token_counts(tokenizer, outputs: list[str]) -> np.ndarray:
    """Per chunk, the tokens of the stream's whole output text (the chunks' texts joined) that begin in
    that chunk's text: the whole text is tokenized once, as the server's tokenizer saw it."""
    texts = [chunk_output(data)[1] for data in outputs]
    if not texts:
        return np.zeros(0, np.int64)
    encoding = tokenizer.encode("".join(texts), add_special_tokens=False)
    starts = np.fromiter((start for start, _ in encoding.offsets), np.int64, len(encoding.offsets))
    ends = np.cumsum([len(t) for t in texts])
    return np.bincount(np.searchsorted(ends, starts, side="right"), minlength=len(texts))[:len(texts)]


__all__ = ["FROM_CHUNKS", "FROM_TOKENIZER", "FROM_USAGE", "StreamTokens", "load_tokenizer", "stream_tokens",
           "token_counts", "unpack"]
