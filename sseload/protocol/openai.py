"""OpenAI-style stream chunks (chat.completion.chunk and text completions), sans I/O.

Two readings of a chunk's JSON. Per event, on the hot path, without a JSON parser:
:func:`openai_facts` (does it carry output, its usage) and :func:`openai_notable` (must the
response act on it); these define the compiled event log's openai mode (openai.c beside it),
and tests/test_openai_scan.py holds both to ``json.loads``. Once or twice a stream, or after it,
with one: :func:`chunk_ending` (finish_reason, error) and :func:`chunk_output` (the text).
What the token metrics make of these facts is sseload.record.tokens.
"""

from __future__ import annotations

import json
import re

#: What may count as a chunk's output ([stream] output): each kind's bit in ``output_kinds``.
OUTPUT_KINDS = {"content": 1, "reasoning": 2, "tool_calls": 4}
ALL_OUTPUT = sum(OUTPUT_KINDS.values())
_OUTPUT_KEYS = ((OUTPUT_KINDS["content"], ('"content"', '"text"')),
                (OUTPUT_KINDS["reasoning"], ('"reasoning_content"', '"reasoning"')))
_BLANKS = " \t\n\r"


# --- the scan, per event (the compiled twin's definition) ---

def _values(data: str, key: str):
    """Where the value after each occurrence of ``key`` (quoted) as a key starts: the key, blanks,
    a colon, blanks; not escaped inside a string (no backslash before its opening quote)."""
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


def openai_facts(data: str, output_kinds: int = ALL_OUTPUT) -> tuple[bool, int, int]:
    """What a chunk says: whether it carries output (of the ``output_kinds`` asked, OUTPUT_KINDS'
    bits: a non-empty ``content`` or ``text`` string, a non-empty ``reasoning_content`` or
    ``reasoning`` string, a non-empty ``tool_calls`` list; role-only, empty and usage-only chunks
    never do), and its ``usage.completion_tokens`` and ``usage.prompt_tokens`` (-1 when absent).

    A key counts wherever it stands as a key: in a chunk those keys stand only where OpenAI puts
    them (a choice's delta, a completion's choice, the usage)."""
    out = any(j + 1 < len(data) and data[j] == '"' and data[j + 1] != '"'
              for bit, keys in _OUTPUT_KEYS if output_kinds & bit for key in keys for j in _values(data, key))
    if not out and output_kinds & OUTPUT_KINDS["tool_calls"]:
        for j in _values(data, '"tool_calls"'):
            if j < len(data) and data[j] == "[":
                e = j + 1
                while e < len(data) and data[e] in _BLANKS:
                    e += 1
                if e < len(data) and data[e] != "]":
                    out = True
                    break
    return out, _number(data, '"completion_tokens"'), _number(data, '"prompt_tokens"')


def openai_notable(data: str) -> bool:
    """A chunk the response acts on (the event log returns it beside typed and sentinel events):
    one that ends a choice (a ``finish_reason`` string: null does not) or reports an error (an
    ``error`` object or string, or ``"object": "error"``)."""
    n = len(data)
    return (any(j < n and data[j] == '"' for j in _values(data, '"finish_reason"'))
            or any(j < n and data[j] in '{"' for j in _values(data, '"error"'))
            or any(data.startswith('"error"', j) for j in _values(data, '"object"')))


# --- the reading with a JSON parser, for the few chunks that need one ---

def _json(data: str):
    try:
        return json.loads(data)
    except ValueError:
        return None


def chunk_ending(data: str) -> tuple[str, str, str]:
    """(finish_reason, error message, error code) of a chunk the event log returned to act on
    (:func:`openai_notable`: once or twice a stream, so a JSON parser is affordable here); ""
    where the chunk says none. An error object is OpenAI's ``{"error": {...}}`` or vLLM's
    ``{"object": "error", ...}``; a chunk that is not JSON but names an error is one."""
    obj = _json(data)
    if not isinstance(obj, dict):
        return "", (data[:200] if '"error"' in data else ""), ""
    finish = ""
    choices = obj.get("choices")
    for choice in choices if isinstance(choices, list) else ():
        if isinstance(choice, dict) and isinstance(choice.get("finish_reason"), str):
            finish = choice["finish_reason"]
    error = obj if obj.get("object") == "error" else obj.get("error")
    if isinstance(error, dict):
        code = error.get("code", error.get("type", ""))
        return finish, str(error.get("message") or json.dumps(error)[:200]), "" if code is None else str(code)
    return finish, (str(error) if error else ""), ""


def chunk_output(data: str) -> tuple[str, str]:
    """(answer text, all output text) of a chunk that carried output: the content (chat) or text
    (completions), and beside it reasoning and tool-call arguments, all of which are output tokens."""
    obj = _json(data)
    choices = obj.get("choices") if isinstance(obj, dict) else None
    answer, other = [], []
    for choice in choices if isinstance(choices, list) else ():
        if not isinstance(choice, dict):
            continue
        delta = choice.get("delta") if isinstance(choice.get("delta"), dict) else choice
        for key, into in (("content", answer), ("text", answer), ("reasoning_content", other), ("reasoning", other)):
            if isinstance(delta.get(key), str):
                into.append(delta[key])
        for call in delta.get("tool_calls") or ():
            function = call.get("function") if isinstance(call, dict) else None
            if isinstance(function, dict) and isinstance(function.get("arguments"), str):
                other.append(function["arguments"])
    text = "".join(answer)
    return text, text + "".join(other)


def answer_text(outputs: list[str]) -> str:
    """The answer a stream gave (its content or completion text), from the data of its output chunks."""
    return "".join(chunk_output(data)[0] for data in outputs)


__all__ = ["ALL_OUTPUT", "OUTPUT_KINDS", "answer_text", "chunk_ending", "chunk_output", "openai_facts",
           "openai_notable"]
