"""A stream's token facts, from the chunks its event log recorded: what the record of an LLM stream holds.

The event log's dialect mode (sseload.protocol.scan defines it) keeps, per event, the output kinds
the chunk carried (the answer, reasoning, tool calls: sseload.protocol.scan's bits) and the output
tokens its usage reported, packed as ``kinds + KIND_BITS * (output_tokens + 1)``. From those and
the events' read times come, per stream, what the token metrics of sseload.record.metrics need:
time to first token and to the first answer token, time to second token, the largest stall,
output tokens and where that count came from. The definitions and how they map to other tools'
are written once, in sseload.record.metrics and docs/llm.md.
"""

from __future__ import annotations

from typing import NamedTuple

import numpy as np

from sseload.protocol.dialects import OPENAI, Dialect, chunk_output
from sseload.protocol.scan import ANSWER
from sseload.protocol.sse import KIND_BITS

#: Where a stream's output token count came from.
FROM_USAGE = "usage"  # the server's usage (its output tokens: include_usage, per-chunk usage, a final count)
FROM_TOKENIZER = "tokenizer"  # no usage: the output text counted by the scenario's tokenizer ([stream] tokenizer)
FROM_CHUNKS = "chunks"  # neither: the chunks that carried output, one token each


def unpack(llm: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(output kinds' bits, usage output tokens with -1 where absent) of packed events."""
    return llm % KIND_BITS, llm // KIND_BITS - 1


class StreamTokens(NamedTuple):
    """One stream's token facts (times from the stream's t0; -1: did not happen)."""

    ttft_ns: int  # to the read that completed the first chunk carrying output
    output_tokens: int  # -1: not an LLM stream (no event)
    tokens_from: str  # FROM_USAGE, FROM_TOKENIZER or FROM_CHUNKS; "" without events
    chunk_tokens: np.ndarray  # per event, the output tokens it carried; -1 where unknown
    answer_ttft_ns: int = -1  # to the first chunk carrying answer (after reasoning or tool calls)
    ttst_ns: int = -1  # to the chunk that carried the second output token
    max_stall_ns: int = -1  # the largest gap between two consecutive output chunks' reads
    tokenizer_tokens: int = -1  # the scenario's tokenizer's count of the output, where one was given


def stream_tokens(llm: bytes, t_ns: bytes, t0_ns: int, outputs: list[str] | None = None,
                  tokenizer=None, dialect: Dialect = OPENAI, reasoning_tokens: int = -1) -> StreamTokens:
    """A stream's token facts from its events (packed ``llm``, read times ``t_ns``) and, with a
    tokenizer, the data of its chunks that carried output (the event log's ``outputs()``).

    The total is the server's usage where it sent one (plus ``reasoning_tokens`` where the dialect
    counts them apart, as Gemini does), else the tokenizer's count of the output text, else the
    chunks that carried output. What each chunk carried: the step of the cumulative usage where
    every output chunk reports one (per-chunk usage), else the tokenizer's tokens that begin in the
    chunk's text, else one per chunk when chunks are the count; unknown (-1) when only a final usage
    gave the total. Chunks without output carry 0. The second token: the chunk where the known
    counts reach two, else the second output chunk.
    """
    packed = np.frombuffer(llm, dtype=np.int64)
    if packed.size == 0:
        return StreamTokens(-1, -1, "", np.zeros(0, np.int64))
    kinds, usage = unpack(packed)
    output = kinds != 0
    times = np.frombuffer(t_ns, dtype=np.int64)
    at = np.flatnonzero(output)
    counted = token_counts(tokenizer, outputs, dialect) if tokenizer is not None and outputs is not None else None
    chunk = np.zeros(packed.size, np.int64)
    if at.size and (usage[output] >= 0).all():
        chunk = np.diff(np.maximum.accumulate(np.maximum(usage, 0)), prepend=0)
    elif counted is not None:
        chunk[output] = counted
    elif (usage >= 0).any():
        chunk[output] = -1
    else:
        chunk[output] = 1
    ttft = answer = second = stall = -1
    if at.size:
        ttft = int(times[at[0]]) - t0_ns
        answers = np.flatnonzero(kinds & ANSWER)
        answer = int(times[answers[0]]) - t0_ns if answers.size else -1
        known = chunk[at]
        if (known >= 0).all() and known.sum() >= 2:
            second = int(times[at[int(np.argmax(np.cumsum(known) >= 2))]]) - t0_ns
        elif at.size >= 2:
            second = int(times[at[1]]) - t0_ns
        stall = int(np.diff(times[at]).max()) if at.size >= 2 else -1
    extra = dict(answer_ttft_ns=answer, ttst_ns=second, max_stall_ns=stall,
                 tokenizer_tokens=int(counted.sum()) if counted is not None else -1)
    if (usage >= 0).any():
        total = int(usage.max()) + (reasoning_tokens if not dialect.reasoning_in_output and reasoning_tokens > 0 else 0)
        return StreamTokens(ttft, total, FROM_USAGE, chunk, **extra)
    if counted is not None:
        return StreamTokens(ttft, int(counted.sum()), FROM_TOKENIZER, chunk, **extra)
    return StreamTokens(ttft, int(output.sum()), FROM_CHUNKS, chunk, **extra)


class TokenTally:
    """A long LLM stream's token facts, its chunks taken part by part while it is open (the recorder
    spills them: sseload.record.recorder), the stream's last part given to :meth:`stream`.

    What each chunk carried is decided per part: the step of the cumulative usage where every output
    chunk of the part reports one (a part of none: where any chunk does), else one per output chunk
    while no usage has come (the chunks are the count), else unknown (-1; a tokenizer's counts need the
    whole text: its last part only). The stream's facts (TTFT, second token, stall, its count) are
    :func:`stream_tokens`' over all its chunks."""

    __slots__ = ("answer_ns", "any_usage", "counted_second_ns", "cumulative", "known", "last_output_ns", "outputs",
                 "parts", "second_output_ns", "stall_ns", "ttft_ns", "usage_max")

    def __init__(self) -> None:
        self.parts = self.outputs = 0  # parts taken; chunks carrying output so far
        self.ttft_ns = self.answer_ns = self.last_output_ns = self.stall_ns = -1
        self.second_output_ns = self.counted_second_ns = -1  # the second output chunk; where known counts reach 2
        self.usage_max = self.cumulative = 0  # the largest usage; the tokens the chunks are known to carry
        self.any_usage = False
        self.known = True  # every output chunk's tokens known so far

    def part(self, llm: bytes, t_ns: bytes, tokenizer: bool = False) -> np.ndarray:
        """Take a part's chunks (packed ``llm``, read times ``t_ns``, perf ns); what each carried."""
        self.parts += 1
        kinds, usage = unpack(np.frombuffer(llm, dtype=np.int64))
        times = np.frombuffer(t_ns, dtype=np.int64)
        output = kinds != 0
        at = np.flatnonzero(output)
        chunk = np.zeros(kinds.size, np.int64)
        if (usage[output] >= 0).all() and (at.size or (usage >= 0).any()) and not tokenizer:
            running = np.maximum.accumulate(np.r_[self.usage_max, np.maximum(usage, 0)])
            chunk = np.diff(running)
        elif not tokenizer and not self.any_usage and not (usage >= 0).any():
            chunk[output] = 1
        else:
            chunk[output] = -1
        if (usage >= 0).any():
            self.any_usage = True
            self.usage_max = max(self.usage_max, int(usage.max()))
        self._outputs(kinds, times[at], chunk[at])
        return chunk

    def _outputs(self, kinds: np.ndarray, times: np.ndarray, carried: np.ndarray) -> None:
        if not times.size:
            return
        if self.ttft_ns < 0:
            self.ttft_ns = int(times[0])
        if self.answer_ns < 0 and (answers := np.flatnonzero(kinds[kinds != 0] & ANSWER)).size:
            self.answer_ns = int(times[answers[0]])
        if self.outputs < 2 <= self.outputs + times.size:
            self.second_output_ns = int(times[1 - self.outputs])
        self.known &= bool((carried >= 0).all())
        if self.known and self.counted_second_ns < 0 and self.cumulative + carried.sum() >= 2:
            self.counted_second_ns = int(times[int(np.argmax(self.cumulative + np.cumsum(carried) >= 2))])
        self.cumulative += int(carried[carried > 0].sum())
        gaps = np.diff(np.r_[self.last_output_ns, times]) if self.last_output_ns >= 0 else np.diff(times)
        if gaps.size:
            self.stall_ns = max(self.stall_ns, int(gaps.max()))
        self.last_output_ns = int(times[-1])
        self.outputs += times.size

    def stream(self, llm: bytes, t_ns: bytes, t0_ns: int, outputs: list[str] | None = None, tokenizer=None,
               dialect: Dialect = OPENAI, reasoning_tokens: int = -1) -> StreamTokens:
        """The stream's facts, its last part (the chunks still held) taken."""
        counted = token_counts(tokenizer, outputs, dialect) if tokenizer is not None and outputs is not None else None
        chunk = self.part(llm, t_ns, tokenizer=counted is not None)
        if counted is not None:  # the whole text's counts: the last part's chunks are its last
            output = np.flatnonzero(unpack(np.frombuffer(llm, dtype=np.int64))[0] != 0)
            chunk[output] = counted[counted.size - output.size:] if output.size <= counted.size else -1

        def since(t: int) -> int:
            return t - t0_ns if t >= 0 else -1

        second = self.counted_second_ns if self.known and self.counted_second_ns >= 0 else self.second_output_ns
        extra = dict(answer_ttft_ns=since(self.answer_ns), ttst_ns=since(second), max_stall_ns=self.stall_ns,
                     tokenizer_tokens=int(counted.sum()) if counted is not None else -1)
        ttft = since(self.ttft_ns)
        if self.any_usage:
            total = self.usage_max + (reasoning_tokens if not dialect.reasoning_in_output and reasoning_tokens > 0
                                      else 0)
            return StreamTokens(ttft, total, FROM_USAGE, chunk, **extra)
        if counted is not None:
            return StreamTokens(ttft, int(counted.sum()), FROM_TOKENIZER, chunk, **extra)
        return StreamTokens(ttft, self.outputs, FROM_CHUNKS, chunk, **extra)


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


def token_counts(tokenizer, outputs: list[str], dialect: Dialect = OPENAI) -> np.ndarray:
    """Per chunk, the tokens of the stream's whole output text (the chunks' texts joined) that begin in
    that chunk's text: the whole text is tokenized once, as the server's tokenizer saw it."""
    texts = [chunk_output(dialect, data)[1] for data in outputs]
    if not texts:
        return np.zeros(0, np.int64)
    encoding = tokenizer.encode("".join(texts), add_special_tokens=False)
    starts = np.fromiter((start for start, _ in encoding.offsets), np.int64, len(encoding.offsets))
    ends = np.cumsum([len(t) for t in texts])
    return np.bincount(np.searchsorted(ends, starts, side="right"), minlength=len(texts))[:len(texts)]


__all__ = ["FROM_CHUNKS", "FROM_TOKENIZER", "FROM_USAGE", "StreamTokens", "TokenTally", "load_tokenizer",
           "stream_tokens", "token_counts", "unpack"]
