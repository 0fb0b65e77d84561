"""``run.json``: the one module that writes it, and why a run is partial.

Every writer (a standalone Locust process, the master, the ``sseload`` supervisor marking an
interrupted run) goes through :func:`write` or :func:`add_partial_reason`, which replace the
file atomically, so a reader never sees half of one. A run is partial for a list of reasons,
each with a code, so a later, more specific reason replaces a generic one by code, not by
matching its words. Importing this module imports neither Locust nor gevent.
"""

from __future__ import annotations

import json
import os
import re
import stat
from datetime import datetime
from pathlib import Path

from sseload.record import redact

RUN_JSON = "run.json"

#: Reason codes, in the words a person reads in run.json's partial_reason.
SIGNAL = "signal"  # Locust got SIGINT/SIGTERM before the run time ended
INTERRUPTED = "interrupted"  # the sseload supervisor forwarded a signal (names it; replaces SIGNAL)
AUTH_STOP = "auth_stop"  # the first streams all failed authentication
FAILURE_STORM = "failure_storm"  # the first streams all failed the same other way
LOST_WORKERS = "lost_workers"  # workers that never sent their final report
REFUSED_MESSAGES = "refused_messages"  # messages to the master not signed with the run key (sseload.record.runkey)
WORKER = "worker"  # a worker's own reason
NOT_RECORDED = "not_recorded"  # streams started but not recorded
WRITE_ERROR = "write_error"
NOT_WRITTEN = "not_written"  # recorded but not in the files
RUNNING = "running"  # a snapshot taken while the load ran (the web UI's report link): streams were open


def new_run_id(name: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name}"


# --- the run's folder: one home for what a run id may be and how its folder comes to exist ---

RUN_ID_MAX_CHARS = 128
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # used with fullmatch: no "$" that lets a final "\n" by
_NAME_MAX_CHARS = 64  # the scenario's part of a default id (room for the time and a -N suffix)
_SAME_SECOND_TRIES = 1000
#: What `sseload run` (the supervisor) lets Locust write in a run's folder before its child adopts it.
SUPERVISOR_FILES = ("locust", ".write-test")


class RunDirError(ValueError):
    """A run folder that cannot be used; the message says which and what to do (exit code 2)."""


def check_run_id(run_id: str, results_dir: Path) -> str:
    """``run_id`` when it is one safe folder name inside ``results_dir``; else RunDirError."""
    if not (isinstance(run_id, str) and _RUN_ID.fullmatch(run_id) and ".." not in run_id
            and len(run_id) <= RUN_ID_MAX_CHARS):
        raise RunDirError(f"--run-id {run_id!r} must be one folder name inside {results_dir}/: letters, digits, "
                          f"'.', '_' and '-', starting with a letter or digit and without '..' (at most "
                          f"{RUN_ID_MAX_CHARS} characters)")
    return run_id


def safe_name(name: str) -> str:
    """A scenario's name as the tail of a default run id: one safe folder name, never empty."""
    safe = re.sub(r"[^A-Za-z0-9._-]+", "-", name).replace("..", "-").strip("-.")
    return safe[:_NAME_MAX_CHARS].rstrip("-.") or "run"


def create_run_dir(results_dir: Path, run_id: str | None, name: str) -> Path:
    """Create a run's folder exclusively and return it: the one way a run folder comes to exist.

    ``run_id`` (``--run-id``) is checked, and refused when its folder exists at all, even empty
    and even as a symbolic link; without one the default id is the time and the scenario's
    ``name``, and a second run in the same second gets ``-2``, ``-3``... Each candidate is taken
    by ``mkdir``, which fails on anything already there, so two runs never share a folder and no
    run writes through a link planted where its folder would be. ``results_dir`` itself is made
    as needed (it may be a link the user made to a bigger disk)."""
    results_dir = Path(results_dir)
    if run_id is not None:
        check_run_id(run_id, results_dir)
    try:
        results_dir.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        why = "a file is there, not a folder" if results_dir.exists() and not results_dir.is_dir() \
            else (err.strerror or str(err))
        raise RunDirError(f"cannot write results to {results_dir} ({why}); pick another --results-dir") from None
    if run_id is not None:
        path = results_dir / run_id
        if not _take(path):
            raise RunDirError(_refusal(path))
        return path
    base = new_run_id(safe_name(name))
    for n in range(1, _SAME_SECOND_TRIES + 1):
        path = results_dir / (base if n == 1 else f"{base}-{n}")
        if _take(path):
            return path
    raise RunDirError(f"{results_dir}/{base} and {_SAME_SECOND_TRIES - 1} more like it already exist; "
                      "give --run-id, or clear out the results folder")


def adopt_run_dir(results_dir: Path, run_id: str) -> Path:
    """The folder `sseload run` created for its Locust child (``--sseload-managed``): it must exist,
    be a real folder (not a link) and hold nothing but what Locust writes beside sseload
    (:data:`SUPERVISOR_FILES`). The child never creates it again."""
    results_dir = Path(results_dir)
    path = results_dir / check_run_id(run_id, results_dir)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist: `sseload run` creates a run's folder before it starts Locust "
                          "(--sseload-managed is for its children only; leave it out)") from None
    except OSError as err:
        raise RunDirError(f"cannot use {path} ({err.strerror}); pick another --results-dir") from None
    if not stat.S_ISDIR(st.st_mode):
        raise RunDirError(f"{path} is not the folder `sseload run` created (a symbolic link or a file is there); "
                          "sseload never writes a run through one: remove it and run again")
    try:
        others = sorted(e for e in os.listdir(path) if not e.startswith(SUPERVISOR_FILES))
    except OSError as err:
        raise RunDirError(f"cannot read {path} ({err.strerror}); pick another --results-dir") from None
    if others:
        raise RunDirError(f"{path} already holds files ({', '.join(others[:3])}) that are not this run's; "
                          "give another --run-id so no run is overwritten")
    return path


def _take(path: Path) -> bool:
    """``mkdir`` ``path``: True when this call made it, False when anything was already there
    (a folder, a file, a link: mkdir never follows one); else RunDirError."""
    try:
        os.mkdir(path)
    except FileExistsError:
        return False
    except OSError as err:
        raise RunDirError(f"cannot create {path} ({err.strerror}); pick another --results-dir or free some "
                          "space") from None
    # What was just made must still be that folder, not a link swapped in since (O_NOFOLLOW).
    try:
        fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | getattr(os, "O_NOFOLLOW", 0))
    except OSError:
        raise RunDirError(f"{path} was replaced right after sseload created it (by a symbolic link or a file); "
                          "check who else writes in the results folder") from None
    try:
        same = os.path.samestat(os.fstat(fd), os.lstat(path))
    finally:
        os.close(fd)
    if not same:
        raise RunDirError(f"{path} was replaced right after sseload created it; check who else writes in the "
                          "results folder")
    return True


def _refusal(path: Path) -> str:
    """Why an explicit --run-id's place is refused, in one sentence."""
    if path.is_symlink():
        return (f"{path} is a symbolic link; sseload never writes a run through one: remove it or give another "
                "--run-id")
    try:
        held = path.is_dir() and any(path.iterdir())
    except OSError:
        held = True
    if held:
        return (f"{path} already holds a run; give another --run-id (or move that folder away) so the earlier run "
                "is not overwritten")
    return f"{path} already exists; give another --run-id (or remove that folder): each run gets a folder of its own"


class PartialReasons:
    """Why a run is partial, in the order the reasons arose; one reason per code."""

    def __init__(self, reasons: list[dict] | None = None) -> None:
        self.reasons: list[dict] = list(reasons or [])

    def add(self, code: str, text: str) -> None:
        if not self.has(code):
            self.reasons.append({"code": code, "text": text})

    def set(self, code: str, text: str) -> None:
        """``code``'s reason as it stands now: its text updated in place, or added last."""
        for i, reason in enumerate(self.reasons):
            if reason["code"] == code:
                self.reasons[i] = {"code": code, "text": text}
                return
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
    tmp.write_text(json.dumps(redact.mask(info), indent=2, default=str))  # no known secret, wherever it came from
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


__all__ = ["PartialReasons", "RunDirError", "add_partial_reason", "adopt_run_dir", "check_run_id", "create_run_dir",
           "new_run_id", "read", "safe_name", "write"]
