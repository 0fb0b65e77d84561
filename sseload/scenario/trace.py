"""A trace: requests with their start times, replayed on their schedule ([load] trace; docs/traces.md).

One JSON object a line, in either of two forms:

- Mooncake's (``{"timestamp": 27482, "input_length": 6955, "output_length": 52, "hash_ids": [46, 47]}``):
  the prompt is built of blocks of :data:`BLOCK_TOKENS` words, one per hash id, each block's words a
  function of its id alone, so lines that share leading ids share a prefix, and a prefix cache hits
  as it did in production; ``output_length`` is sent as ``max_tokens``.
- sseload's own (``{"timestamp": 0, "messages": [...], "max_tokens": 64}``, or ``"prompt": "..."``):
  the line's messages or prompt as the dataset's lines are sent ([body] dataset).

``timestamp`` is in milliseconds; times count from the trace's earliest line. The schedule, and
which process sends which line, is sseload.scenario.arrivals.TraceArrivals'; a line's body is
built when it is taken (a production trace's prompts would not fit in memory all at once).
"""

from __future__ import annotations

import json
import random
from functools import lru_cache
from pathlib import Path

import numpy as np

from sseload.scenario.bodies import WORDS, _template, _usage_asked
from sseload.scenario.model import Body, ScenarioError

#: Tokens per hash id in Mooncake's traces; a block here is that many words (one token each, mostly).
BLOCK_TOKENS = 512
_BLOCKS_CACHED = 4096


@lru_cache(maxsize=_BLOCKS_CACHED)
def block(seed: int | str) -> str:
    """The words of one block: the same for the same seed in every process and run."""
    rng = random.Random(seed)
    return " ".join(rng.choice(WORDS) for _ in range(BLOCK_TOKENS))


def prompt_of(hash_ids: list[int], input_length: int, line: int) -> str:
    """``input_length`` words: the blocks of ``hash_ids`` in order, cut at the length (or, past the
    last id, blocks of this line's own that no other line shares)."""
    words: list[str] = []
    ids = list(hash_ids)
    k = 0
    while len(words) < input_length:
        seed = ids[k] if k < len(ids) else f"line{line}:{k}"
        words += block(seed).split(" ")
        k += 1
    return " ".join(words[:input_length])


class Trace:
    """A trace's lines, sorted by time: their times (``times_ms``, from the earliest) and bodies."""

    def __init__(self, lines: list[dict], spec: Body, name: str = "trace") -> None:
        if not lines:
            raise ScenarioError(f"[load] trace {name} has no lines")
        self.name = name
        checked = [_checked(record, name, n) for n, record in enumerate(lines, 1)]
        order = sorted(range(len(checked)), key=lambda i: checked[i][0])
        self.lines = [checked[i][1] for i in order]
        self.line_numbers = [i + 1 for i in order]
        times = np.array([checked[i][0] for i in order], dtype=np.float64)
        self.times_ms = times - times[0]
        self._template = _template(spec)
        if spec.include_usage:
            self._template = _usage_asked(self._template)

    @classmethod
    def load(cls, path: str, spec: Body, base_dir: Path | None = None) -> Trace:
        where = Path(path) if Path(path).is_absolute() or base_dir is None else base_dir / path
        try:
            text = where.read_text(encoding="utf-8")
        except (OSError, UnicodeDecodeError) as err:
            raise ScenarioError(f"[load] trace {str(where)!r} cannot be read: {err}") from None
        lines = []
        for n, line in enumerate(text.splitlines(), 1):
            if line.strip():
                try:
                    lines.append(json.loads(line))
                except ValueError:
                    raise ScenarioError(f"[load] trace {where.name} line {n} is not JSON") from None
        return cls(lines, spec, where.name)

    def __len__(self) -> int:
        return len(self.lines)

    def body(self, i: int) -> bytes:
        """The body of line ``i`` (in time order): the template with the line's prompt or messages
        and its max_tokens."""
        record = self.lines[i]
        obj = dict(self._template)
        if "hash_ids" in record or "input_length" in record:
            text = prompt_of(record.get("hash_ids") or [], _input_length(record), self.line_numbers[i])
            if "prompt" in obj:
                obj["prompt"] = text
            else:
                obj["messages"] = [{"role": "user", "content": text}]
        elif "messages" in record:
            obj["messages"] = record["messages"]
        else:
            obj["prompt"] = record["prompt"]
        max_tokens = record.get("max_tokens", record.get("output_length"))
        if max_tokens is not None:
            obj["max_tokens"] = max_tokens
        return json.dumps(obj, separators=(",", ":")).encode()


def _input_length(record: dict) -> int:
    given = record.get("input_length")
    return int(given) if given is not None else BLOCK_TOKENS * len(record.get("hash_ids") or [])


def _checked(record, name: str, n: int) -> tuple[float, dict]:
    """(the line's time in ms, the line) once it is a line sseload can send; else the sentence why not."""
    where = f"[load] trace {name} line {n}"
    if not isinstance(record, dict):
        raise ScenarioError(f"{where}: a line is a JSON object with a timestamp (ms) and hash_ids or "
                            "input_length (Mooncake), messages or a prompt")
    t = record.get("timestamp")
    if isinstance(t, bool) or not isinstance(t, (int, float)) or not t >= 0:
        raise ScenarioError(f"{where}: timestamp = {t!r}; give the request's start in milliseconds (0 or more)")
    ids = record.get("hash_ids")
    if ids is not None and not (isinstance(ids, list) and all(isinstance(h, int) for h in ids)):
        raise ScenarioError(f"{where}: hash_ids must be a list of whole numbers (Mooncake's prefix blocks)")
    for key in ("input_length", "output_length", "max_tokens"):
        v = record.get(key)
        if v is not None and (isinstance(v, bool) or not isinstance(v, int) or v < (0 if key == "input_length" else 1)):
            raise ScenarioError(f"{where}: {key} = {v!r}; give a whole number of tokens")
    has_prompt = isinstance(record.get("prompt"), str)
    has_messages = isinstance(record.get("messages"), list)
    if not (ids is not None or "input_length" in record or has_prompt or has_messages):
        raise ScenarioError(f"{where}: no request in it: give hash_ids or input_length (Mooncake), messages, or "
                            "a prompt")
    return float(t), record
