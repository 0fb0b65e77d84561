"""Request bodies, built once per process and shared by every stream that sends them."""

from __future__ import annotations

import json
import random
from dataclasses import dataclass
from pathlib import Path

from sseload.scenario import files
from sseload.scenario.dist import Dist, DistError
from sseload.scenario.model import BODYLESS_METHODS, Body, ScenarioError

_JSON_HEAD = b'{"model":"sseload","stream":true,"messages":[{"role":"user","content":"'
_JSON_TAIL = b'"}]}'


def generated(size_bytes: int, kind: str = "json") -> bytes:
    """A body of exactly ``size_bytes``: a chat request padded with text, or random bytes."""
    if kind == "binary":
        return random.Random(size_bytes).randbytes(size_bytes)
    fixed = len(_JSON_HEAD) + len(_JSON_TAIL)
    if size_bytes < fixed:
        pad = max(size_bytes - 8, 0)
        body = b'{"p":"' + b"x" * pad + b'"}'
        return body if len(body) == size_bytes else b" " * size_bytes
    return _JSON_HEAD + b"x" * (size_bytes - fixed) + _JSON_TAIL


#: The template of prompt bodies when [body] json gives none.
DEFAULT_TEMPLATE = {"model": "sseload", "stream": True}
#: Synthetic prompts' words: plain English, so a tokenizer counts them as it would real text.
WORDS = ("the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "seven", "wise", "owls",
         "watch", "from", "an", "old", "oak", "tree", "and", "count", "every", "star", "in", "cold", "night",
         "sky", "before", "dawn")


def _resolve(path: str, base_dir: Path | None) -> Path:
    p = Path(path)
    return p if p.is_absolute() or base_dir is None else base_dir / p


def _messages_of(record, where: str) -> dict:
    """What one dataset line adds to the template: messages, or a prompt (completions API)."""
    if isinstance(record, str):
        return {"messages": [{"role": "user", "content": record}]}
    if isinstance(record, dict):
        if "messages" in record or "prompt" in record:
            return record
        turns = record.get("conversations") or record.get("conversation")
        if isinstance(turns, list):  # ShareGPT: the first human turn is the prompt
            for turn in turns:
                if isinstance(turn, dict) and turn.get("from") in ("human", "user"):
                    return {"messages": [{"role": "user", "content": str(turn.get("value", ""))}]}
    raise ScenarioError(f"{where}: a line must be a prompt string, an object with messages or prompt, or a "
                        "ShareGPT record with conversations")


def _with_max_tokens(obj: dict, spec: Body, rng: random.Random) -> dict:
    if spec.max_tokens:
        obj["max_tokens"] = _drawn(_dist(spec.max_tokens, "[body] max_tokens"), rng, "max_tokens")
    return obj


def _drawn(dist: Dist, rng: random.Random, key: str) -> int:
    """A whole number drawn from ``dist``, within [body] ``key``'s range (a lognormal's tail reaches past any)."""
    low, high = Body.__dataclass_fields__[key].metadata["range"]
    return min(high, max(low, round(dist.sample(rng))))


def _dist(text: str, what: str) -> Dist:
    try:
        return Dist.parse(text, what)
    except DistError as err:
        raise ScenarioError(str(err)) from None


def _dataset_lines(spec: Body, base_dir: Path | None) -> tuple[str, list]:
    """(the dataset's file name, its lines as JSON values)."""
    path = _resolve(spec.dataset, base_dir)
    records = []
    for n, line in files.lines(path, "[body] dataset", files.MOST_HELD_BYTES, "held in memory by every process"):
        try:
            records.append(json.loads(line))
        except ValueError:
            raise ScenarioError(f"[body] dataset {path.name} line {n} is not JSON") from None
    if not records:
        raise ScenarioError(f"[body] dataset {str(path)!r} has no lines")
    return path.name, records


def _in_order(items: list, spec: Body, rng: random.Random) -> list:
    if spec.order == "shuffle":
        rng.shuffle(items)
    elif spec.order == "random":
        items = [rng.choice(items) for _ in items]
    return items


def _template(spec: Body) -> dict:
    """A copy of the prompts' template: [body] json where it is a table, else DEFAULT_TEMPLATE."""
    return dict(spec.json if isinstance(spec.json, dict) else DEFAULT_TEMPLATE)


def dataset_bodies(spec: Body, base_dir: Path | None) -> list[bytes]:
    """One body per dataset line (the template merged with the line), in the order asked."""
    name, records = _dataset_lines(spec, base_dir)
    template = _template(spec)
    rng = random.Random(spec.seed)
    out = [json.dumps(_with_max_tokens({**template, **_messages_of(record, f"[body] dataset {name} line {n}")},
                                       spec, rng), separators=(",", ":")).encode()
           for n, record in enumerate(records, 1)]
    return _in_order(out, spec, rng)


@dataclass(frozen=True)
class Conversation:
    """One line of a multi-turn dataset: what every turn's body holds beside its messages, the
    messages before the first user turn (a system prompt), and the user turns in order."""

    head: dict
    system: tuple[dict, ...]
    turns: tuple[str, ...]

    def body(self, history: list[dict], turn: int) -> bytes:
        """The body of turn ``turn`` (0 first): the system messages, the history so far (each user
        turn with the answer it got), and this turn. Built when the turn is sent: it carries the
        answers, which only the service knows."""
        messages = [*self.system, *history, {"role": "user", "content": self.turns[turn]}]
        return json.dumps({**self.head, "messages": messages}, separators=(",", ":")).encode()


_HUMAN, _SYSTEM = ("human", "user"), ("system",)


def _conversation_of(record, head: dict, where: str) -> Conversation:
    """A conversation from a dataset line: a ShareGPT record (its human turns; the recorded answers
    are dropped for the service's own), an object with messages (its user turns), or a list of turns."""
    if isinstance(record, str):
        record = [record]
    if isinstance(record, list) and all(isinstance(t, str) for t in record):
        messages = [{"role": "user", "content": t} for t in record]
    elif isinstance(record, dict) and isinstance(record.get("messages"), list):
        messages = record["messages"]
        head = {**head, **{k: v for k, v in record.items() if k != "messages"}}
    elif isinstance(record, dict) and isinstance(record.get("conversations") or record.get("conversation"), list):
        messages = [{"role": "user" if t.get("from") in _HUMAN else str(t.get("from")), "content": t.get("value")}
                    for t in record.get("conversations") or record["conversation"] if isinstance(t, dict)]
    else:
        raise ScenarioError(f"{where}: a multi-turn line must be a list of turns, an object with messages, or a "
                            "ShareGPT record with conversations")
    messages = [m for m in messages if isinstance(m, dict)]
    roles = [m.get("role") for m in messages]
    first_user = roles.index("user") if "user" in roles else -1
    if first_user < 0:
        raise ScenarioError(f"{where}: the conversation has no user turn")
    system = tuple(m for m in messages[:first_user] if m.get("role") in _SYSTEM)
    turns = tuple(str(m.get("content") or "") for m in messages[first_user:] if m.get("role") in _HUMAN)
    return Conversation(head, system, turns)


def conversations(spec: Body, base_dir: Path | None) -> list[Conversation]:
    """[body] multi_turn: one conversation per dataset line, in the order asked."""
    name, records = _dataset_lines(spec, base_dir)
    rng = random.Random(spec.seed)
    def head() -> dict:  # every turn's body is built when sent, so it asks for usage itself
        template = _with_max_tokens(_template(spec), spec, rng)
        return _usage_asked(template) if spec.include_usage else template

    out = [_conversation_of(record, head(), f"[body] dataset {name} line {n}") for n, record in enumerate(records, 1)]
    return _in_order(out, spec, rng)


def synthetic_bodies(spec: Body) -> list[bytes]:
    """``prompts`` chat bodies of ``input_words`` words each, every one with a prefix of its own
    (its number) after ``shared_prefix_words`` common words, so no two share a cacheable prefix
    beyond what is asked."""
    rng = random.Random(spec.seed)
    length = _dist(spec.input_words, "[body] input_words")
    template = _template(spec)
    shared = " ".join(WORDS[k % len(WORDS)] for k in range(spec.shared_prefix_words))
    out = []
    for k in range(spec.prompts):
        words = _drawn(length, rng, "input_words")
        text = " ".join(rng.choice(WORDS) for _ in range(words))
        content = " ".join(part for part in (shared, f"#{k}", text) if part)
        obj = _with_max_tokens({**template, "messages": [{"role": "user", "content": content}]}, spec, rng)
        out.append(json.dumps(obj, separators=(",", ":")).encode())
    return out


def bodies(spec: Body, base_dir: Path | None = None, method: str = "POST",
           skip_over: int | None = None) -> list[bytes | int]:
    """The distinct bodies a scenario sends, in the order streams take them. A generated body over
    ``skip_over`` bytes (the gateway's limit, with over_limit = "skip") is never built: its size
    stands in for it. With ``include_usage``, every JSON object body asks for the usage chunk."""
    built = _bodies(spec, base_dir, method, skip_over)
    return [_with_usage(b) for b in built] if spec.include_usage else built


def _with_usage(body: bytes | int) -> bytes | int:
    try:
        obj = json.loads(body) if isinstance(body, bytes) and body[:1] == b"{" else None
    except ValueError:
        obj = None
    if not isinstance(obj, dict):
        return body  # not a JSON object (a size stand-in, binary, text): as it is
    return json.dumps(_usage_asked(obj), separators=(",", ":")).encode()


def _usage_asked(obj: dict) -> dict:
    obj["stream_options"] = {**(obj.get("stream_options") or {}), "include_usage": True}
    return obj


def _bodies(spec: Body, base_dir: Path | None, method: str, skip_over: int | None) -> list[bytes | int]:
    if spec.multi_turn:  # each conversation's first turn: what a stream of it sends before any answer
        return [conv.body([], 0) for conv in conversations(spec, base_dir)]
    if spec.dataset:
        return dataset_bodies(spec, base_dir)
    if spec.prompts:
        return synthetic_bodies(spec)
    if spec.json is not None:
        return [json.dumps(spec.json, separators=(",", ":")).encode()]
    if spec.text is not None:  # "" too: an empty body, as asked (--body '')
        return [spec.text.encode()]
    if spec.file:  # over the gateway's limit and skipped: its size alone, the file never read
        return [files.body_file(_resolve(spec.file, base_dir), skip_over)]
    def make(n: int) -> bytes | int:
        return n if skip_over is not None and n > skip_over else generated(n, spec.kind)

    if spec.sizes:
        return [make(n) for n in spec.sizes]
    if spec.size_bytes:
        return [make(spec.size_bytes)]
    if method.upper() in BODYLESS_METHODS:
        return [b""]
    return [json.dumps({"model": "sseload", "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}).encode()]
