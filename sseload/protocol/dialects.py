"""The LLM streaming APIs sseload reads, each declared once as data: where a chunk's output,
usage, finish reason, error and id stand in its JSON.

A :class:`Dialect` names JSON paths (``choices[].delta.content``: ``[]`` is every element of a
list). Two readings come from one declaration:

- per event, on the hot path, without a JSON parser: :func:`program` turns the paths' last keys
  into a scan program (sseload.protocol.scan runs it, scan.c is its compiled twin): which output
  kinds the chunk carries, its usage numbers, whether the response must act on it;
- for the few events acted on (the first, a finish, an error, the usage), with a JSON parser:
  :func:`read_event` follows the whole paths.

The built-in dialects follow each API's public reference (docs/llm.md cites them and maps every
number to other tools' definitions); a custom image's API is declared with the same fields in a
scenario's ``[stream.dialect]`` table (:func:`declared`).
"""

from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass
from typing import NamedTuple
from urllib.parse import urlsplit

from sseload.protocol.scan import ANSWER, REASONING, TOOL, Program, Rule

#: What may count as a chunk's output ([stream] output): each kind's bit.
OUTPUT_KINDS = {"content": ANSWER, "reasoning": REASONING, "tool_calls": TOOL}
ALL_OUTPUT = ANSWER | REASONING | TOOL


@dataclass(frozen=True)
class Output:
    """One way a chunk carries output: the text at ``path`` (non-empty), of ``kind``.

    ``shape`` "list" or "object": a non-empty list or an object there is the output (tool calls),
    and ``text`` is the path under it to the text a tokenizer counts. ``when``: only where the
    string at that path is one of ``values`` (``unless``: only where it is not)."""

    path: str
    kind: int = ANSWER
    shape: str = "text"
    text: str = ""
    when: str = ""
    values: tuple[str, ...] = ()
    unless: bool = False


@dataclass(frozen=True)
class Error:
    """How an error shows: the value at ``path`` ("" the chunk itself) is a string (the message) or
    an object (``message`` and ``code`` paths in it); ``when``: only where the string at that path
    is one of ``values``."""

    path: str
    message: str = "message"
    code: tuple[str, ...] = ("code", "type")
    when: str = ""
    values: tuple[str, ...] = ()


@dataclass(frozen=True)
class Dialect:
    """An LLM streaming API, as paths into its chunks' JSON. Paths in a tuple: the first present wins."""

    name: str
    api: str  # what it is, for people (run.json, docs)
    outputs: tuple[Output, ...]
    output_tokens: tuple[str, ...] = ()  # the usage's output (completion) tokens
    prompt_tokens: tuple[str, ...] = ()
    reasoning_tokens: tuple[str, ...] = ()
    cached_tokens: tuple[str, ...] = ()  # prompt tokens the server's cache served
    reasoning_in_output: bool = True  # output_tokens counts reasoning tokens (False: Gemini, add them)
    finish: tuple[str, ...] = ()
    errors: tuple[Error, ...] = ()
    ids: tuple[str, ...] = ()  # the service's id of the response (its log's join key)
    timings: tuple[str, ...] = ()  # the server's own timings of the request, kept as JSON (llama.cpp)
    act_on: tuple[tuple[str, tuple[str, ...]], ...] = ()  # more events to act on: (path, string values)
    act_on_finish: bool = True  # an event with a finish reason is acted on (False: act_on names them)
    paths: tuple[str, ...] = ()  # the API's request paths, for choosing it by URL (a suffix)


def _key(path: str) -> str:
    """A path's last key, quoted as the scan looks for it: ``choices[].delta.content`` -> ``"content"``."""
    return '"' + path.rsplit(".", 1)[-1].removesuffix("[]") + '"'


def _quoted(values: tuple[str, ...]) -> tuple[str, ...]:
    return tuple(json.dumps(v) if v not in ("true", "false") else v for v in values)


@functools.lru_cache(maxsize=64)
def program(dialect: Dialect) -> Program:
    """The scan program of a dialect (sseload.protocol.scan): output rules from its outputs'
    paths, usage numbers from its token paths, and events to act on: a finish reason (a string),
    an error (an object or a string), the server's timings (an object), the ``act_on`` values.
    A key counts wherever it stands as a key in the event, so a path's last key should be one the
    API uses for nothing else."""
    rules: list[Rule] = []
    for out in dialect.outputs:
        shape = {"text": "s", "list": "l", "object": "o"}[out.shape]
        cond = _key(out.when) if out.when else ""
        rules.append(Rule("O", out.kind, shape, _key(out.path), cond, _quoted(out.values), out.unless))
    for which, paths in (("c", dialect.output_tokens), ("p", dialect.prompt_tokens),
                         ("r", dialect.reasoning_tokens), ("k", dialect.cached_tokens)):
        rules += [Rule("N", 0, which, key) for key in dict.fromkeys(_key(p) for p in paths)]
    if dialect.act_on_finish:
        rules += [Rule("A", 0, "", _key(p), "", ('"',)) for p in dialect.finish]
    for err in dialect.errors:
        if err.when:
            rules.append(Rule("A", 0, "", _key(err.when), "", _quoted(err.values)))
        else:
            rules.append(Rule("A", 0, "", _key(err.path), "", ("{", '"')))
    rules += [Rule("A", 0, "", _key(path), "", _quoted(values)) for path, values in dialect.act_on]
    rules += [Rule("A", 0, "", _key(p), "", ("{",)) for p in dialect.timings]
    return Program(tuple(rules))


# --- the built-in dialects (docs/llm.md: their references) ---

OPENAI = Dialect(
    "openai", "OpenAI chat completions and completions (chat.completion.chunk, text_completion)",
    outputs=(Output("choices[].delta.content"), Output("choices[].text"),
             Output("choices[].delta.reasoning_content", REASONING), Output("choices[].delta.reasoning", REASONING),
             Output("choices[].delta.tool_calls", TOOL, "list", "function.arguments")),
    output_tokens=("usage.completion_tokens",), prompt_tokens=("usage.prompt_tokens",),
    reasoning_tokens=("usage.completion_tokens_details.reasoning_tokens",),
    cached_tokens=("usage.prompt_tokens_details.cached_tokens",),
    finish=("choices[].finish_reason",),
    errors=(Error("error"), Error("", when="object", values=("error",))),
    ids=("id",), timings=("timings",), paths=("/completions",))

RESPONSES = Dialect(
    "responses", "OpenAI Responses (response.output_text.delta events)",
    outputs=(Output("delta", ANSWER, when="type", values=("response.output_text.delta", "response.refusal.delta")),
             Output("delta", REASONING, when="type", values=("response.reasoning_text.delta",
                                                             "response.reasoning_summary_text.delta")),
             Output("delta", TOOL, when="type", values=("response.function_call_arguments.delta",))),
    output_tokens=("response.usage.output_tokens",), prompt_tokens=("response.usage.input_tokens",),
    reasoning_tokens=("response.usage.output_tokens_details.reasoning_tokens",),
    cached_tokens=("response.usage.input_tokens_details.cached_tokens",),
    finish=("response.incomplete_details.reason", "response.status"),
    errors=(Error("", when="type", values=("error",)), Error("response.error", when="type",
                                                              values=("response.failed",))),
    ids=("response.id",),
    act_on=(("type", ("response.created", "response.completed", "response.incomplete")),), act_on_finish=False,
    paths=("/responses",))

ANTHROPIC = Dialect(
    "anthropic", "Anthropic Messages (content_block_delta events)",
    outputs=(Output("delta.text"), Output("delta.thinking", REASONING), Output("delta.partial_json", TOOL)),
    output_tokens=("usage.output_tokens", "message.usage.output_tokens"),
    prompt_tokens=("message.usage.input_tokens", "usage.input_tokens"),
    cached_tokens=("message.usage.cache_read_input_tokens", "usage.cache_read_input_tokens"),
    finish=("delta.stop_reason",),
    errors=(Error("error", code=("type",), when="type", values=("error",)),),
    ids=("message.id",), paths=("/messages",))

TGI = Dialect(
    "tgi", "Hugging Face TGI generate_stream (token events)",
    outputs=(Output("token.text"),),
    output_tokens=("details.generated_tokens",),
    finish=("details.finish_reason",),
    errors=(Error("error", code=("error_type",)),), paths=("/generate_stream",))

TRITON = Dialect(
    "triton", "Triton / KServe generate_stream (text_output)",
    outputs=(Output("text_output"),),
    errors=(Error("error"),), ids=("id",), paths=("/v2/models/",))

GEMINI = Dialect(
    "gemini", "Google Gemini streamGenerateContent?alt=sse",
    outputs=(Output("candidates[].content.parts[].text", when="candidates[].content.parts[].thought", values=("true",),
                    unless=True),
             Output("candidates[].content.parts[].text", REASONING, when="candidates[].content.parts[].thought",
                    values=("true",)),
             Output("candidates[].content.parts[].functionCall", TOOL, "object", "args")),
    output_tokens=("usageMetadata.candidatesTokenCount",), prompt_tokens=("usageMetadata.promptTokenCount",),
    reasoning_tokens=("usageMetadata.thoughtsTokenCount",), cached_tokens=("usageMetadata.cachedContentTokenCount",),
    reasoning_in_output=False,
    finish=("candidates[].finishReason",),
    errors=(Error("error", code=("status", "code")),), ids=("responseId",), paths=(":streamGenerateContent",))

#: Every built-in dialect, by the name [stream] format gives it.
BUILT_IN: dict[str, Dialect] = {d.name: d for d in (OPENAI, RESPONSES, ANTHROPIC, TGI, TRITON, GEMINI)}


def for_url(url: str) -> Dialect | None:
    """The dialect a request path names, with no scenario saying: Triton's ``/v2/models/.../generate_stream``,
    TGI's ``/generate_stream``, Gemini's ``:streamGenerateContent``, ``/responses``, ``/messages``, a path
    ending in ``/completions``; None for any other (a plain SSE stream)."""
    path = urlsplit(url).path.rstrip("/")
    if "/v2/models/" in path and path.endswith("/generate_stream"):
        return TRITON
    for dialect in (TGI, RESPONSES, ANTHROPIC, OPENAI):
        if any(path.endswith(p) for p in dialect.paths):
            return dialect
    if ":streamGenerateContent" in path:
        return GEMINI
    return None


_PATH = re.compile(r"^[A-Za-z0-9_$@-]+(\[\])?(\.[A-Za-z0-9_$@-]+(\[\])?)*$")


def declared(table: dict) -> Dialect:
    """A custom API's dialect from a scenario's ``[stream.dialect]``: ``output`` (the answer text's
    path), optional ``reasoning``, ``output_tokens``, ``prompt_tokens``, ``finish``, ``error``, ``id``.
    Raises ValueError naming a key or a path that cannot be used."""
    known = {"output", "reasoning", "output_tokens", "prompt_tokens", "reasoning_tokens", "finish", "error", "id"}
    unknown = sorted(set(table) - known)
    if unknown:
        raise ValueError(f"[stream.dialect] has no key {unknown[0]!r}; its keys: {', '.join(sorted(known))}")
    if not table.get("output"):
        raise ValueError("[stream.dialect] needs output, the JSON path of a chunk's output text "
                         "(e.g. output = \"data.delta.text\")")
    for key, path in table.items():
        if not isinstance(path, str) or not _PATH.match(path):
            raise ValueError(f"[stream.dialect] {key} = {path!r} is not a JSON path: keys joined by dots, "
                             "[] after a list's key (e.g. \"choices[].delta.content\")")

    def one(key: str) -> tuple[str, ...]:
        return (table[key],) if table.get(key) else ()

    outputs = (Output(table["output"]),) + ((Output(table["reasoning"], REASONING),) if table.get("reasoning") else ())
    return Dialect("json", "declared by [stream.dialect]", outputs, output_tokens=one("output_tokens"),
                   prompt_tokens=one("prompt_tokens"), reasoning_tokens=one("reasoning_tokens"),
                   finish=one("finish"), errors=tuple(Error(p) for p in one("error")), ids=one("id"))


def facts(dialect: Dialect | None) -> dict | None:
    """What run.json says of the dialect a run read its streams as: its name and API, and the paths."""
    if dialect is None:
        return None
    return {"name": dialect.name, "api": dialect.api, "output": [o.path for o in dialect.outputs],
            "output_tokens": list(dialect.output_tokens), "finish": list(dialect.finish)}


# --- the reading with a JSON parser, for the events acted on ---

def values_at(obj, path: str) -> list:
    """Every value at ``path`` in parsed JSON (``a.b[].c``: ``[]`` is each element of a list); "" is ``obj``."""
    found = [obj]
    for part in path.split(".") if path else ():
        each = part.endswith("[]")
        name = part[:-2] if each else part
        found = [v[name] for v in found if isinstance(v, dict) and name in v]
        if each:
            found = [x for v in found if isinstance(v, list) for x in v]
    return found


def _first(obj, paths: tuple[str, ...], kind: type | tuple = str):
    for path in paths:
        for value in values_at(obj, path):
            if isinstance(value, kind) and not isinstance(value, bool) and value != "":
                return value
    return None


def _json(data: str):
    try:
        return json.loads(data)
    except ValueError:
        return None


class Reading(NamedTuple):
    """What an event acted on says (""/-1: nothing of that)."""

    finish: str
    error: str
    code: str
    response_id: str
    timings: str  # the server's timings object, as compact JSON


def _matches(obj, path: str, values: tuple[str, ...]) -> bool:
    return any((v is True and "true" in values) or (isinstance(v, str) and v in values) for v in values_at(obj, path))


def read_event(dialect: Dialect, data: str) -> Reading:
    """An event's finish reason, error, id and the server's timings, by the dialect's whole paths; a chunk
    that is not JSON but names an error is one (its first 200 characters)."""
    obj = _json(data)
    if not isinstance(obj, dict):
        return Reading("", data[:200] if '"error"' in data else "", "", "", "")
    finish = _first(obj, dialect.finish) or ""
    error = code = ""
    for rule in dialect.errors:
        if rule.when and not _matches(obj, rule.when, rule.values):
            continue
        for value in values_at(obj, rule.path):
            if isinstance(value, str) and value:
                error = value
            elif isinstance(value, dict):
                message = _first(value, (rule.message,))
                error = str(message) if message else json.dumps(value)[:200]
                found = _first(value, rule.code, (str, int))
                code = "" if found is None else str(found)
            if error:
                break
        if error:
            break
    timings = _first(obj, dialect.timings, dict)
    return Reading(str(finish), error, code, str(_first(obj, dialect.ids) or ""),
                   json.dumps(timings, separators=(",", ":"))[:2000] if timings else "")


def _texts(obj, out: Output) -> list[str]:
    """The output texts ``out`` finds in a parsed chunk. A condition beside the text (the same
    parent, as Gemini's ``thought`` beside a part's ``text``) is judged per parent; else once."""
    parent, _, name = out.path.rpartition(".")
    if out.when and out.when.rpartition(".")[0] == parent:
        cond = out.when.rpartition(".")[2]
        values = [p.get(name) for p in values_at(obj, parent) if isinstance(p, dict)
                  and (_matches(p, cond, out.values) != out.unless)]
    elif out.when and _matches(obj, out.when, out.values) == out.unless:
        return []
    else:
        values = values_at(obj, out.path)
    texts = []
    for value in values:
        if out.shape == "text":
            if isinstance(value, str):
                texts.append(value)
            continue
        for item in value if isinstance(value, list) else [value] if value is not None else []:
            texts += [t if isinstance(t, str) else json.dumps(t) for t in values_at(item, out.text)]
    return texts


def chunk_output(dialect: Dialect, data: str) -> tuple[str, str]:
    """(answer text, all output text) of a chunk that carried output: the answer, and beside it
    reasoning and tool-call arguments, all of which are output tokens."""
    obj = _json(data)
    answer, other = [], []
    for out in dialect.outputs:
        (answer if out.kind == ANSWER else other).extend(_texts(obj, out))
    text = "".join(answer)
    return text, text + "".join(other)


def answer_text(dialect: Dialect, outputs: list[str]) -> str:
    """The answer a stream gave, from the data of its output chunks."""
    return "".join(chunk_output(dialect, data)[0] for data in outputs)


__all__ = ["ALL_OUTPUT", "ANTHROPIC", "BUILT_IN", "GEMINI", "OPENAI", "OUTPUT_KINDS", "RESPONSES", "TGI", "TRITON",
           "Dialect", "Error", "Output", "Reading", "answer_text", "chunk_output", "declared", "facts", "for_url",
           "program",
           "read_event", "values_at"]
