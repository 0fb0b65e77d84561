"""An LLM chunk read per event without a JSON parser, by a dialect's scan program: the definition
of what the event log's dialect mode records (scan.c beside it is the compiled twin).

A program (sseload.protocol.dialects.program makes one from a dialect's paths) is a few rules, each
on a quoted key as it stands as a key in the event's data (the key, blanks, a colon, blanks; not
escaped inside a string: no backslash before its opening quote):

- ``O`` output: the chunk carries output of ``kind`` when the value is a non-empty string
  (``shape`` "s"), a non-empty list ("l") or an object ("o"); with ``cond``, only where a value
  of that key starts with one of ``values`` (``negate``: only where none does);
- ``N`` a usage number: ``arg`` says which (c: output tokens, p: prompt, r: reasoning, k: cached
  prompt tokens), the first occurrence's digits (up to 18), -1 when absent;
- ``A`` act on the event: a value of the key starts with one of ``values``.

tests/test_dialects.py holds :func:`scan` to ``json.loads`` for every dialect, and the compiled
twin to :func:`scan` at every input.
"""

from __future__ import annotations

import re
import struct
from typing import NamedTuple

ANSWER, REASONING, TOOL = 1, 2, 4  # output kinds, as bits: the answer, reasoning (thinking), tool calls
NUMBERS = "cprk"  # the usage numbers a program reads, in Facts' order
_BLANKS = " \t\n\r"


class Rule(NamedTuple):
    op: str  # "O", "N" or "A"
    kind: int = 0  # O: the output kind's bit
    arg: str = ""  # O: the shape; N: which number
    key: str = ""  # quoted: '"content"'
    cond: str = ""  # O: a quoted key whose value decides whether the rule applies
    values: tuple[str, ...] = ()  # O: cond's values; A: the key's values (prefixes)
    negate: bool = False  # O: the rule applies where cond's value is none of values


class Program:
    """A dialect's scan program: its rules, in order, and ``blob``, the same as the compiled twin
    takes it (made once: the logs of a run share one program, compiled once)."""

    __slots__ = ("blob", "rules")

    def __init__(self, rules: tuple[Rule, ...]) -> None:
        self.rules = tuple(rules)
        self.blob = self._blob()

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Program) and other.rules == self.rules

    def __hash__(self) -> int:
        return hash(self.rules)

    def __repr__(self) -> str:
        return f"Program({self.rules!r})"

    def __reduce__(self):
        return Program, (self.rules,)

    def _blob(self) -> bytes:
        """Per rule, its op, the count of its fields and each field as a length byte and its UTF-8
        bytes (kind, arg, key, cond, negate, values...)."""
        out = bytearray()
        for r in self.rules:
            parts = [bytes([r.kind]), r.arg.encode(), r.key.encode(), r.cond.encode(), b"1" if r.negate else b"0",
                     *(v.encode() for v in r.values)]
            if any(len(p) > 255 for p in parts) or len(parts) > 255:
                raise ValueError(f"a scan rule's key or value is over 255 bytes: {r}")
            out += r.op.encode() + struct.pack("B", len(parts))
            for p in parts:
                out += struct.pack("B", len(p)) + p
        return bytes(out)


class Facts(NamedTuple):
    """What one event says, by a program: the output kinds it carries, its usage numbers (-1: absent)
    and whether the response must act on it."""

    kinds: int
    output_tokens: int
    prompt_tokens: int
    reasoning_tokens: int
    cached_tokens: int
    act: bool


def _values(data: str, key: str):
    """Where the value after each occurrence of ``key`` (quoted) as a key starts."""
    k = data.find(key)
    while k >= 0:
        if k == 0 or data[k - 1] != "\\":
            j = k + len(key)
            while j < len(data) and data[j] in _BLANKS:
                j += 1
            if j < len(data) and data[j] == ":":
                j += 1
                while j < len(data) and data[j] in _BLANKS:
                    j += 1
                yield j
        k = data.find(key, k + len(key))


def _number(data: str, key: str) -> int:
    for j in _values(data, key):
        m = re.match(r"[0-9]+", data[j:j + 19])  # 19 digits: over the 18 the compiled twin reads
        return int(m[0]) if m and len(m[0]) <= 18 else -1
    return -1


def _starts(data: str, key: str, values: tuple[str, ...]) -> bool:
    return any(data.startswith(v, j) for j in _values(data, key) for v in values)


def _carries(data: str, key: str, shape: str) -> bool:
    n = len(data)
    for j in _values(data, key):
        if shape == "s" and j + 1 < n and data[j] == '"' and data[j + 1] != '"':
            return True
        if shape == "o" and j < n and data[j] == "{":
            return True
        if shape == "l" and j < n and data[j] == "[":
            e = j + 1
            while e < n and data[e] in _BLANKS:
                e += 1
            if e < n and data[e] != "]":
                return True
    return False


def scan(data: str, program: Program) -> Facts:
    """One event's facts by ``program``."""
    kinds, act = 0, False
    numbers = dict.fromkeys(NUMBERS, -1)
    for r in program.rules:
        if r.op == "O":
            if kinds & r.kind or (r.cond and _starts(data, r.cond, r.values) == r.negate):
                continue
            if _carries(data, r.key, r.arg):
                kinds |= r.kind
        elif r.op == "N":
            if numbers[r.arg] < 0:
                numbers[r.arg] = _number(data, r.key)
        elif not act:
            act = _starts(data, r.key, r.values)
    return Facts(kinds, *numbers.values(), act)


__all__ = ["ANSWER", "NUMBERS", "REASONING", "TOOL", "Facts", "Program", "Rule", "scan"]
