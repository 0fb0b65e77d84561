"""``run.json``: the one module that writes it, and why a run is partial.

Every writer (a standalone Locust process, the master, the ``sseload`` supervisor marking an
interrupted run) goes through :func:`write` or :func:`add_partial_reason`, which replace the
file atomically, so a reader never sees half of one. A run is partial for a list of reasons,
each with a code, so a later, more specific reason replaces a generic one by code, not by
matching its words. Importing this module imports neither Locust nor gevent.
"""

from __future__ import annotations

import json
from datetime import datetime
from pathlib import Path

RUN_JSON = "run.json"

#: Reason codes, in the words a person reads in run.json's partial_reason.
SIGNAL = "signal"  # Locust got SIGINT/SIGTERM before the run time ended
INTERRUPTED = "interrupted"  # the sseload supervisor forwarded a signal (names it; replaces SIGNAL)
AUTH_STOP = "auth_stop"  # the first streams all failed authentication
FAILURE_STORM = "failure_storm"  # the first streams all failed the same other way
LOST_WORKERS = "lost_workers"  # workers that never sent their final report
WORKER = "worker"  # a worker's own reason
NOT_RECORDED = "not_recorded"  # streams started but not recorded
WRITE_ERROR = "write_error"
NOT_WRITTEN = "not_written"  # recorded but not in the files
RUNNING = "running"  # a snapshot taken while the load ran (the web UI's report link): streams were open


def new_run_id(name: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name}"


class PartialReasons:
    """Why a run is partial, in the order the reasons arose; one reason per code."""

    def __init__(self, reasons: list[dict] | None = None) -> None:
        self.reasons: list[dict] = list(reasons or [])

    def add(self, code: str, text: str) -> None:
        if not self.has(code):
            self.reasons.append({"code": code, "text": text})

    def replace(self, code: str, text: str, replaces: tuple[str, ...] = ()) -> None:
        """Set ``code``'s reason, dropping those of ``replaces`` (a generic reason it explains)."""
        self.reasons = [r for r in self.reasons if r["code"] != code and r["code"] not in replaces]
        self.reasons.insert(0, {"code": code, "text": text})

    def has(self, code: str) -> bool:
        return any(r["code"] == code for r in self.reasons)

    def __bool__(self) -> bool:
        return bool(self.reasons)

    @property
    def text(self) -> str:
        return "; ".join(r["text"] for r in self.reasons)

    def fields(self) -> dict:
        """run.json's partial fields."""
        return {"partial": bool(self.reasons), "partial_reason": self.text, "partial_reasons": list(self.reasons)}


def write(run_dir: Path, info: dict) -> Path:
    """Write run.json atomically (a reader sees the old file or the new one, never half)."""
    path = Path(run_dir) / RUN_JSON
    tmp = path.with_suffix(".json.tmp")
    tmp.write_text(json.dumps(info, indent=2, default=str))
    tmp.replace(path)
    return path


def read(run_dir: Path) -> dict | None:
    """run.json as written, or None where there is none."""
    path = Path(run_dir) / RUN_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def add_partial_reason(run_dir: Path, code: str, text: str, replaces: tuple[str, ...] = ()) -> bool:
    """Mark a written run partial for one more reason; False where it has no run.json yet."""
    info = read(run_dir)
    if info is None:
        return False
    reasons = PartialReasons(info.get("partial_reasons"))
    reasons.replace(code, text, replaces)
    info.update(reasons.fields())
    write(run_dir, info)
    return True


__all__ = ["PartialReasons", "add_partial_reason", "new_run_id", "read", "write"]
