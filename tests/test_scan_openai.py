"""The OpenAI chunk scan held to a JSON parser.

sseload.protocol.scan reads each chunk without one, by the OpenAI dialect's program
(sseload.protocol.dialects.OPENAI), and so does its compiled twin (the event log's dialect mode).
Here both read generated chat.completion.chunk
and text_completion objects, serialised every way json.dumps can, with any text in the strings
(quotes, backslashes, the scanned keys themselves, unicode), nested objects, finish reasons, usage
and error objects; what they say must be what ``json.loads`` says.

The scan finds a key wherever it stands as a key. In a chunk those keys stand only where OpenAI
puts them, so the generated objects use them there and nowhere else as keys; inside strings (text,
tool-call arguments that are JSON themselves) anything goes.
"""

from __future__ import annotations

import json

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from sseload.protocol.dialects import OPENAI, OUTPUT_KINDS, program
from sseload.protocol.scan import scan
from sseload.protocol.sse import KIND_BITS, PyEventLog
from tests.event_logs import BOTH, needs_c

try:
    from sseload._sse import EventLog as CEventLog
except ImportError:
    CEventLog = None

pytestmark = pytest.mark.unit
PROGRAM = program(OPENAI)


def openai_facts(data: str, kinds: int = 7) -> tuple[bool, int, int]:
    facts = scan(data, PROGRAM)
    return bool(facts.kinds & kinds), facts.output_tokens, facts.prompt_tokens


def openai_notable(data: str) -> bool:
    return scan(data, PROGRAM).act

SCANNED = ("content", "text", "reasoning_content", "reasoning", "tool_calls", "finish_reason", "error", "object",
           "completion_tokens", "prompt_tokens")
TRICKY = ['"', "\\", '\\"', "\\\\", '"content":"x"', '\\"content\\": \\"x\\"', '"text": ""', '"finish_reason":"stop"',
          '{"error": {"message": "m"}}', '"object": "error"', '"completion_tokens": 5', '"prompt_tokens":7',
          '"tool_calls": [1]', "\\u0022", "\n", "\r\n", "\t", "\u2028", "\u0085", "é", "😀", "\x00", "[", "]", "{", "}"]

texts = st.one_of(st.text(st.characters(codec="utf-8"), max_size=12), st.sampled_from(TRICKY),
                  st.lists(st.sampled_from(TRICKY + list(SCANNED)), max_size=4).map("".join))
keys = texts.filter(lambda k: k not in SCANNED)  # a scanned name is a key only where OpenAI puts it
floats = st.floats(allow_nan=False, allow_infinity=False)
tokens = st.one_of(st.none(), st.integers(0, 2000), st.integers(-10, 10**19),
                   st.sampled_from([0, 10**18 - 1, 10**18, 2**63, 10**30]))  # past 18 digits: not read
json_values = st.recursive(st.none() | st.booleans() | st.integers() | floats | texts,
                           lambda inner: st.lists(inner, max_size=3) | st.dictionaries(keys, inner, max_size=3),
                           max_leaves=8)
# tool-call arguments: JSON text in a string, where the scanned names may be keys
arguments = st.dictionaries(st.sampled_from(SCANNED) | keys, json_values, max_size=3).map(json.dumps) | texts


def shuffled(strategy):
    """The objects ``strategy`` draws, their keys in any order."""
    return strategy.flatmap(lambda d: st.permutations(list(d.items())).map(dict))


function = st.fixed_dictionaries({}, optional={"name": texts, "arguments": arguments})
tool_call = shuffled(st.fixed_dictionaries({"index": st.integers(0, 3), "function": function},
                                           optional={"id": texts, "type": st.just("function")}))
delta = shuffled(st.fixed_dictionaries({}, optional={
    "role": st.sampled_from(["assistant", None]), "content": st.none() | texts,
    "reasoning_content": st.none() | texts, "reasoning": st.none() | texts, "refusal": st.none() | texts,
    "tool_calls": st.none() | st.lists(tool_call, max_size=2)}))
top_logprob = st.fixed_dictionaries({"token": texts, "logprob": floats})
token_logprob = st.fixed_dictionaries({"token": texts, "logprob": floats,
                                       "bytes": st.lists(st.integers(0, 255), max_size=4),
                                       "top_logprobs": st.lists(top_logprob, max_size=2)})
chat_logprobs = st.fixed_dictionaries({"content": st.none() | st.lists(token_logprob, max_size=2)})
completion_logprobs = st.fixed_dictionaries({
    "tokens": st.lists(texts, max_size=2), "token_logprobs": st.lists(floats, max_size=2),
    "top_logprobs": st.lists(st.dictionaries(keys, floats, max_size=2), max_size=2),
    "text_offset": st.lists(st.integers(0, 99), max_size=2)})
finish_reason = st.none() | st.sampled_from(["stop", "length", "tool_calls", "content_filter", ""]) | texts
chat_choice = shuffled(st.fixed_dictionaries(
    {"index": st.integers(0, 3), "delta": delta},
    optional={"logprobs": st.none() | chat_logprobs, "finish_reason": finish_reason}))
completion_choice = shuffled(st.fixed_dictionaries(
    {"index": st.integers(0, 3), "text": texts},
    optional={"logprobs": st.none() | completion_logprobs, "finish_reason": finish_reason}))
usage = shuffled(st.fixed_dictionaries(
    {"prompt_tokens": tokens, "completion_tokens": tokens},
    optional={"total_tokens": tokens, "completion_tokens_details": st.fixed_dictionaries({"reasoning_tokens": tokens}),
              "prompt_tokens_details": st.fixed_dictionaries({"cached_tokens": tokens})}))
error = st.fixed_dictionaries({"message": texts}, optional={"type": texts, "param": st.none() | texts,
                                                            "code": st.none() | texts | st.integers()}) | texts
objects = st.sampled_from(["chat.completion.chunk", "text_completion", "error", "errors"]) | texts
chunk = shuffled(st.fixed_dictionaries(
    {"choices": st.lists(chat_choice, max_size=3) | st.lists(completion_choice, max_size=2)},
    optional={"id": texts, "object": objects, "created": st.integers(0, 2**40), "model": texts,
              "system_fingerprint": st.none() | texts, "usage": st.none() | usage, "error": st.none() | error,
              "message": texts, "metadata": json_values}))
serialised = st.fixed_dictionaries({"ensure_ascii": st.booleans(), "indent": st.sampled_from([None, 1, "\t"]),
                                    "separators": st.sampled_from([(",", ":"), (", ", ": "), (",", " : ")])})


def truth(obj: dict, kinds: int) -> tuple[bool, int, int, bool]:
    """(carries output, usage.completion_tokens, usage.prompt_tokens, notable) as json.loads reads them."""
    choices = [c for c in obj.get("choices") or () if isinstance(c, dict)]

    def said(where: dict, *names: str) -> bool:
        return any(isinstance(where.get(name), str) and where[name] for name in names)

    out = False
    for choice in choices:
        d = choice.get("delta") if isinstance(choice.get("delta"), dict) else {}
        out |= bool(kinds & OUTPUT_KINDS["content"]) and (said(d, "content") or said(choice, "text"))
        out |= bool(kinds & OUTPUT_KINDS["reasoning"]) and said(d, "reasoning_content", "reasoning")
        calls = d.get("tool_calls")
        out |= bool(kinds & OUTPUT_KINDS["tool_calls"]) and isinstance(calls, list) and bool(calls)
    use = obj.get("usage") if isinstance(obj.get("usage"), dict) else {}

    def count(value) -> int:
        return value if type(value) is int and 0 <= value < 10**18 else -1

    notable = (any(isinstance(c.get("finish_reason"), str) for c in choices)
               or isinstance(obj.get("error"), (dict, str)) or obj.get("object") == "error")
    return out, count(use.get("completion_tokens")), count(use.get("prompt_tokens")), notable


@settings(max_examples=800, deadline=None)
@given(obj=chunk, kinds=st.integers(1, 7), form=serialised)
def test_the_scan_reads_a_chunk_as_json_loads_does(obj, kinds, form):
    data = json.dumps(obj, **form)
    assert (*openai_facts(data, kinds), openai_notable(data)) == truth(json.loads(data), kinds), data


def sse(data: str) -> bytes:
    """One event carrying ``data`` (a data line per line of it)."""
    return "".join(f"data: {line}\n" for line in data.split("\n")).encode() + b"\n"


@pytest.mark.parametrize("cls", BOTH)
@settings(max_examples=300, deadline=None)
@given(objs=st.lists(chunk, min_size=1, max_size=4), kinds=st.integers(1, 7), form=serialised)
def test_the_event_log_records_per_chunk_what_json_loads_reads(cls, objs, kinds, form):
    datas = [json.dumps(obj, **form) for obj in objs]
    log = cls(program=PROGRAM, keep_output=True, output_kinds=kinds)
    notable = log.feed(b"".join(sse(data) for data in datas), 1)
    facts = [truth(json.loads(data), kinds) for data in datas]
    assert [v % KIND_BITS != 0 for v in _ints(log.llm())] == [out for out, *_ in facts]
    assert [v // KIND_BITS - 1 for v in _ints(log.llm())] == [completion for _, completion, _, _ in facts]
    assert log.prompt_tokens == next((p for _, _, p, _ in reversed(facts) if p >= 0), -1)
    # the first event is always handed back (its id), and then those that end a choice or report an error
    assert [e.data for e in notable] == [data for i, (data, f) in enumerate(zip(datas, facts, strict=True))
                                         if f[3] or i == 0]
    assert log.outputs() == [data for data, f in zip(datas, facts, strict=True) if f[0]]


@needs_c
@settings(max_examples=300, deadline=None)
@given(obj=chunk, kinds=st.integers(1, 7), form=serialised)
def test_the_compiled_scan_is_the_definitions(obj, kinds, form):
    event = sse(json.dumps(obj, **form))
    compiled, defined = CEventLog(program=PROGRAM, output_kinds=kinds), PyEventLog(program=PROGRAM, output_kinds=kinds)
    assert (compiled.feed(event, 1), compiled.llm(), compiled.prompt_tokens) == \
        (defined.feed(event, 1), defined.llm(), defined.prompt_tokens)


def test_a_chunk_that_is_not_json_says_nothing():
    for data in ("[DONE]", "", "content", '"content"'):
        assert (*openai_facts(data), openai_notable(data)) == (False, -1, -1, False), data


def _ints(raw: bytes) -> list[int]:
    return memoryview(raw).cast("q").tolist()
