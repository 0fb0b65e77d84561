"""Request bodies, built once per process and shared by every stream that sends them."""

from __future__ import annotations

import json
import random
from pathlib import Path

from sseload.scenario import BODYLESS_METHODS, Body, ScenarioError

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


def bodies(spec: Body, base_dir: Path | None = None, method: str = "POST",
           skip_over: int | None = None) -> list[bytes | int]:
    """The distinct bodies a scenario sends, in the order streams take them. A generated body over
    ``skip_over`` bytes (the gateway's limit, with over_limit = "skip") is never built: its size
    stands in for it."""
    if spec.json is not None:
        return [json.dumps(spec.json, separators=(",", ":")).encode()]
    if spec.text:
        return [spec.text.encode()]
    if spec.file:
        path = Path(spec.file)
        if not path.is_absolute() and base_dir is not None:
            path = base_dir / path
        try:
            return [path.read_bytes()]
        except OSError as err:
            raise ScenarioError(f"[body] file {str(path)!r} cannot be read: {err.strerror}") from None
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
