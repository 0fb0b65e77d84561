"""The run key a Locust master and its workers share, and the signatures made with it.

``SSELOAD_RUN_KEY`` holds it (``sseload run --workers N`` makes a new one per run; with plain
``locust --master``/``--worker`` the user sets the same on every machine). A worker signs every
sseload message it sends (sseload.record.distributed: a batch, its final report, the live numbers in
Locust's stats report) with an HMAC-SHA256 over the message's type, its sender and its content;
the master's :class:`MessageGate` drops, counts and names whatever is not signed so, or repeats a
message already taken. So a process that merely reaches the master's port can neither add streams
to the results nor pass for a worker that finished. The key authenticates; it does not encrypt:
the port still belongs on a private network (docs/workers.md). Pure functions and small state,
no sockets: importing this module imports neither Locust, gevent nor Arrow.
"""

from __future__ import annotations

import hmac
import itertools
import json
import logging
import os
from collections.abc import Mapping
from datetime import datetime

log = logging.getLogger("sseload")

RUN_KEY_ENV = "SSELOAD_RUN_KEY"
MIN_RUN_KEY_CHARS = 16
SIGNATURE = "sseload_hmac"  # the field of a signed message that holds its HMAC (hex)
SEQUENCE = "sseload_seq"  # the sender's message number, signed: a message replayed is refused
MAX_SENDERS_NAMED = 1000  # refused senders counted by name; past that, together
REPLAY_WINDOW = 4096  # messages of one sender may arrive this far out of order (greenlets, one socket)
_SIGNED_FORMAT = "sseload-signed-v1"


class RunKeyError(ValueError):
    """The run key is missing or too short; the message says how to set it."""


def _canonical(value, blobs: list):
    """``value`` as plain JSON types, each bytes value replaced by its length and appended to
    ``blobs`` (maps walked in sorted key order). What msgpack hands the master back (lists for
    tuples, plain str for a StrEnum, a datetime to the microsecond) gives the same result."""
    if isinstance(value, (bytes, bytearray, memoryview)):
        blobs.append(value)
        return {"$bytes": len(value)}
    if isinstance(value, Mapping):
        items = [(k if isinstance(k, str) else f"${type(k).__name__}:{k!r}", v) for k, v in value.items()]
        return {str.__str__(k): _canonical(v, blobs) for k, v in sorted(items, key=lambda item: item[0])}
    if isinstance(value, (list, tuple)):
        return [_canonical(v, blobs) for v in value]
    if isinstance(value, datetime):  # as Locust's msgpack hook carries it
        return {"$datetime": value.strftime("%Y%m%dT%H:%M:%S.%f")}
    return value


def signature(secret: bytes, kind: str, node_id: str, data: Mapping) -> str:
    """HMAC-SHA256 (hex) of one message: its type and sender (a batch cannot pass for a final
    report, nor one worker's message for another's), a canonical JSON of its fields but the
    signature (a bytes field as its length), then the bytes fields themselves in that order."""
    blobs: list = []
    fields = _canonical({k: v for k, v in data.items() if k != SIGNATURE}, blobs)
    head = json.dumps([_SIGNED_FORMAT, kind, node_id, fields], sort_keys=True, separators=(",", ":"))
    mac = hmac.new(secret, head.encode(), "sha256")
    for blob in blobs:
        mac.update(blob)
    return mac.hexdigest()


class RunKey:
    """The secret the master and its workers share, and the worker's message numbers."""

    def __init__(self, secret: str | bytes) -> None:
        self._secret = secret.encode() if isinstance(secret, str) else bytes(secret)
        self._numbers = itertools.count(1)

    def __repr__(self) -> str:  # never the secret, in a log or a traceback
        return "RunKey(...)"

    @classmethod
    def from_env(cls, role: str, environ: Mapping[str, str] = os.environ) -> RunKey:
        """The key in SSELOAD_RUN_KEY; a RunKeyError, saying how to set it, when there is none."""
        value = environ.get(RUN_KEY_ENV, "")
        how = (f"set the same secret in the environment of the master and of every worker, e.g. "
               f"export {RUN_KEY_ENV}=$(python -c 'import secrets; print(secrets.token_hex(32))') on the "
               f"master's machine and that value on each worker's (`sseload run --workers N` makes one itself); "
               f"see docs/workers.md")
        if not value:
            does = ("signs every batch and report it sends the master with it" if role == "worker" else
                    "takes only the batches and reports signed with it, so that nothing else that reaches its port "
                    "can add streams to the results")
            raise RunKeyError(f"{RUN_KEY_ENV} (the run key) is not set: a Locust {role} of sseload's {does}; {how}")
        if len(value) < MIN_RUN_KEY_CHARS:
            raise RunKeyError(f"{RUN_KEY_ENV} has {len(value)} characters, fewer than {MIN_RUN_KEY_CHARS}: "
                              f"too easy to guess; {how}")
        return cls(value)

    def sign(self, kind: str, node_id: str, data: Mapping) -> dict:
        """``data`` with the sender's next message number and the signature added (a new dict)."""
        signed = {**data, SEQUENCE: next(self._numbers)}
        signed[SIGNATURE] = signature(self._secret, kind, node_id, signed)
        return signed

    def verify(self, kind: str, node_id: str, data) -> bool:
        """``data`` was signed with this key, as a message of ``kind`` from ``node_id``."""
        if not isinstance(data, Mapping) or not isinstance(data.get(SIGNATURE), str) \
                or type(data.get(SEQUENCE)) is not int or not isinstance(node_id, str):
            return False
        try:
            expected = signature(self._secret, kind, node_id, data)
        except (TypeError, ValueError, RecursionError):  # not JSON-able, or nested too deep: not a worker's
            return False
        return hmac.compare_digest(data[SIGNATURE].encode("utf-8", "replace"), expected.encode())


class MessageGate:
    """The master's check of every sseload message a worker sends: signed with the run key, as
    that type from that sender, and not seen before. A refused message is dropped and counted
    per sender; the first from each sender is logged (a flood of them is not)."""

    def __init__(self, key: RunKey) -> None:
        self.key = key
        self.refused: dict[str, int] = {}  # sender -> messages refused
        self._numbers: dict[str, set[int]] = {}  # sender -> message numbers seen (the last REPLAY_WINDOW)
        self._highest: dict[str, int] = {}

    @property
    def refused_messages(self) -> int:
        return sum(self.refused.values())

    def admit(self, kind: str, node_id: str, data) -> bool:
        if not self.key.verify(kind, node_id, data):
            return self._refuse(kind, node_id, "it is not signed with this run's key")
        number = data[SEQUENCE]
        seen = self._numbers.setdefault(node_id, set())
        highest = self._highest.get(node_id, 0)
        if number in seen or number <= highest - REPLAY_WINDOW:
            return self._refuse(kind, node_id, f"it repeats message {number} of that sender")
        seen.add(number)
        if number > highest:
            self._highest[node_id] = highest = number
        if len(seen) > 2 * REPLAY_WINDOW:
            self._numbers[node_id] = {n for n in seen if n > highest - REPLAY_WINDOW}
        return True

    def _refuse(self, kind: str, node_id, why: str) -> bool:
        sender = str(node_id)[:200]
        if sender not in self.refused and len(self.refused) >= MAX_SENDERS_NAMED:
            sender = "(more senders)"
        self.refused[sender] = self.refused.get(sender, 0) + 1
        if self.refused[sender] == 1:
            log.error("sseload: refused a %s message from %r: %s (every worker needs the master's %s; this "
                      "sender's further refused messages are counted in run.json, not logged)",
                      kind, sender, why, RUN_KEY_ENV)
        return False

    def partial_reason(self) -> str:
        """Why refused messages make the run partial, naming their senders ('' when none were)."""
        if not self.refused:
            return ""
        senders = ", ".join(sorted(self.refused)[:10]) + (" and more" if len(self.refused) > 10 else "")
        return (f"{self.refused_messages} message(s) from {len(self.refused)} sender(s) ({senders}) were refused: "
                f"not signed with the run key ({RUN_KEY_ENV}); their streams and reports are not in the results")


__all__ = ["RUN_KEY_ENV", "MessageGate", "RunKey", "RunKeyError", "signature"]
