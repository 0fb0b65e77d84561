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


def bodies(spec: Body, base_dir: Path | None = None, method: str = "POST") -> list[bytes]:
    """The distinct bodies a scenario sends, in the order streams take them."""
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
    if spec.sizes:
        return [generated(n, spec.kind) for n in spec.sizes]
    if spec.size_bytes:
        return [generated(spec.size_bytes, spec.kind)]
    if method.upper() in BODYLESS_METHODS:
        return [b""]
    return [json.dumps({"model": "sseload", "stream": True,
                        "messages": [{"role": "user", "content": "hi"}]}).encode()]
