"""``run.json`` and the run's folder: the one module that decides their content and writes them.

What run.json says is composed here (:func:`compose`), from the facts the process that writes it
hands over: how the run was set up (:class:`Identity`) and what it recorded (:class:`Tally`). A
standalone Locust process and the master differ only in the facts they have; which reasons make a
run partial, and in which words, is decided here once. Every writer (those two, and the
``sseload`` supervisor marking an interrupted run) goes through :func:`write` or
:func:`mark_interrupted`, which replace the file atomically, so a reader never sees half of one. A
run is partial for a list of reasons, each with a code, so a later, more specific reason replaces a
generic one by code, not by matching its words. Importing this module imports neither Locust nor
gevent.
"""

from __future__ import annotations

import contextlib
import json
import os
import platform
import re
import socket
import stat
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import sseload
from sseload.record import redact
from sseload.run import room

RUN_JSON = "run.json"

#: Reason codes, in the words a person reads in run.json's partial_reason.
SIGNAL = "signal"  # Locust got SIGINT/SIGTERM before the run time ended
INTERRUPTED = "interrupted"  # the sseload supervisor forwarded a signal (names it; replaces SIGNAL)
AUTH_STOP = "auth_stop"  # the first streams all failed authentication
FAILURE_STORM = "failure_storm"  # the first streams all failed the same other way
LOST_WORKERS = "lost_workers"  # workers that never sent their final report
REFUSED_MESSAGES = "refused_messages"  # messages to the master not signed with the run key (sseload.record.runkey)
NOT_RECORDED = "not_recorded"  # streams started but not recorded
WRITE_ERROR = "write_error"
NOT_WRITTEN = "not_written"  # recorded but not in the files
RUNNING = "running"  # a snapshot taken while the load ran (the web UI's report link): streams were open
DISK_FULL = "disk_full"  # the run's disk filled: the run stopped there, or a file was not written (sseload.run.room)
#: The write test each new run folder passes before any load: a run that cannot be written never starts.
PROBE_BYTES = 65536


def new_run_id(name: str) -> str:
    return f"{datetime.now().strftime('%Y%m%d-%H%M%S')}-{name}"


# --- the run's folder: one home for what a run id may be and how its folder comes to exist ---

RUN_ID_MAX_CHARS = 128
_RUN_ID = re.compile(r"[A-Za-z0-9][A-Za-z0-9._-]*")  # used with fullmatch: no "$" that lets a final "\n" by
_NAME_MAX_CHARS = 64  # the scenario's part of a default id (room for the time and a -N suffix)
_SAME_SECOND_TRIES = 1000
#: Locust's own files, which `sseload run` (the supervisor) moves into a run's folder once Locust is gone.
SUPERVISOR_FILES = ("locust",)


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
    as needed (it may be a link the user made to a bigger disk). Before it is returned, the folder
    takes a write (:data:`PROBE_BYTES`): a full disk or a read-only mount fails here, before any load."""
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
        return _writable(path)
    base = new_run_id(safe_name(name))
    for n in range(1, _SAME_SECOND_TRIES + 1):
        path = results_dir / (base if n == 1 else f"{base}-{n}")
        if _take(path):
            return _writable(path)
    raise RunDirError(f"{results_dir}/{base} and {_SAME_SECOND_TRIES - 1} more like it already exist; "
                      "give --run-id, or clear out the results folder")


def adopt_run_dir(results_dir: Path, run_id: str) -> Path:
    """The folder `sseload run` created for its Locust child (named in the run-plan file): it must exist,
    be a real folder (not a link) and hold nothing but what Locust writes beside sseload
    (:data:`SUPERVISOR_FILES`). The child never creates it again."""
    results_dir = Path(results_dir)
    path = results_dir / check_run_id(run_id, results_dir)
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        raise RunDirError(f"{path} does not exist: `sseload run` creates a run's folder before it starts Locust "
                          "(its run-plan file, --sseload-plan, is for its children only; leave it out)") from None
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


def is_run_dir(path: Path) -> bool:
    """``path`` is a run's folder (whatever the run recorded): it has run.json, or the files Locust
    writes beside sseload's (:data:`SUPERVISOR_FILES`) in the folder `sseload run` made."""
    path = Path(path)
    try:
        return (path / RUN_JSON).exists() or any(e.startswith(SUPERVISOR_FILES) for e in os.listdir(path))
    except OSError:
        return False


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


def _writable(path: Path) -> Path:
    """``path`` once a write there succeeded; else RunDirError with what to do."""
    probe = path / ".write-test"
    try:
        probe.write_bytes(b"x" * PROBE_BYTES)
        probe.unlink()
    except OSError as err:
        with contextlib.suppress(OSError):  # made by this run a moment ago: nothing of any run is in it
            probe.unlink(missing_ok=True)
            path.rmdir()
        raise RunDirError(f"cannot write results to {path} ({err.strerror}); pick another --results-dir or free "
                          "some space") from None
    return path


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


# --- run.json's content ---

def lost_workers_text(lost: list[str]) -> str:
    """How a run's lost workers are said: in run.json's reason, and by the verdict they fail."""
    return (f"{len(lost)} worker(s) stopped without their final report ({', '.join(lost)}): the streams they had "
            "open or unsent are missing")


@dataclass(frozen=True)
class Identity:
    """What run.json says of how the run was set up, known before any load."""

    run_id: str
    target_url: str  # masked: no credential in it
    auth_method: str
    insecure_tls: bool
    embedded_target: bool  # the reference target `sseload run` started: lateness is then the harness's own error
    scenario: dict  # as run (sseload.record.redact.scenario_to_write)
    tuning: dict
    locust_version: str
    machine: dict  # this_machine()
    python: str
    dialect: dict | None = None  # the LLM API the streams were read as (name, api, paths); None: plain SSE


def this_machine() -> dict:
    """The machine a run's numbers were measured on."""
    return {"hostname": socket.gethostname(), "platform": platform.platform(), "cpus": os.cpu_count()}


@dataclass
class Tally:
    """What the process writing run.json counted of the run: its own streams, or the workers'."""

    streams_started: int = 0
    streams_recorded: int = 0
    events_recorded: int = 0
    outcomes: dict = field(default_factory=dict)
    buffered_streams: int = 0
    health: dict = field(default_factory=dict)
    streams_on_disk: int | None = None  # in the files a reader will find (None: not counted apart)
    write_error: str | None = None
    workers: int = 0  # a master's: the workers that took part, the lost ones included
    worker_health: list | None = None
    lost_workers: list[str] = field(default_factory=list)
    refused_messages: int = 0  # not signed with the run key (sseload.record.runkey.MessageGate)
    refused_reason: str = ""
    worker_reasons: list[dict] = field(default_factory=list)  # the partial reasons each worker reported
    server_metrics: dict | None = None  # [server_metrics]: the scraper's account (sseload.run.scraper)


def compose(identity: Identity, load: dict, started_at: datetime | None, ended_at: datetime | None,
            tally: Tally, partial: PartialReasons, open_streams: str = "") -> dict:
    """run.json's fields. ``partial`` holds what happened during the run (a signal, an early stop);
    the reasons that follow from the tally are added here. ``open_streams`` (a snapshot taken while
    the load runs, the web UI's report link) says what was open and so is not in it: such a
    snapshot counts no stream as missing, and ``partial`` is left as it was, so the final run.json
    does not inherit the snapshot's reason."""
    reasons = PartialReasons(partial.reasons)
    if tally.lost_workers:
        reasons.add(LOST_WORKERS, lost_workers_text(tally.lost_workers))
    if tally.refused_reason:
        reasons.set(REFUSED_MESSAGES, tally.refused_reason)
    if open_streams:
        reasons.add(RUNNING, f"a snapshot while the load ran: {open_streams} and are not in it")
        ended_at = datetime.now(UTC)
    else:
        for reason in tally.worker_reasons:
            reasons.add(reason["code"], reason["text"])
        if tally.write_error is not None:
            reasons.add(WRITE_ERROR, f"writing results failed: {tally.write_error}")
        if tally.streams_started != tally.streams_recorded:
            reasons.add(NOT_RECORDED, f"{tally.streams_started - tally.streams_recorded} streams started but not "
                                      "recorded")
        if tally.streams_on_disk is not None and tally.streams_on_disk < tally.streams_recorded:
            after = " after its disk filled" if reasons.has(DISK_FULL) else ""
            reasons.add(NOT_WRITTEN, f"{tally.streams_recorded - tally.streams_on_disk} streams recorded{after} but "
                                     "not written to the run's folder")
    return {
        "schema_version": sseload.SCHEMA_VERSION,
        "run_id": identity.run_id,
        "sseload_version": sseload.__version__,
        "locust_version": identity.locust_version,
        "python": identity.python,
        "machine": identity.machine,
        "target_url": identity.target_url,
        "auth_method": identity.auth_method,
        "insecure_tls": identity.insecure_tls,
        "embedded_target": identity.embedded_target,
        "dialect": identity.dialect,
        "scenario": identity.scenario,
        "users": load.get("users"),
        "spawn_rate": load.get("spawn_rate"),
        "run_time": load.get("run_time"),
        "started_at": started_at.isoformat() if started_at else None,
        "ended_at": ended_at.isoformat() if ended_at else None,
        **reasons.fields(),
        "interrupted_by": None,  # set by mark_interrupted
        "streams_started": tally.streams_started,
        "streams_recorded": tally.streams_recorded,
        "events_recorded": tally.events_recorded,
        "outcomes": dict(tally.outcomes),
        "buffered_streams": tally.buffered_streams,
        "workers": tally.workers,
        "lost_workers": list(tally.lost_workers),
        "refused_messages": tally.refused_messages,
        "health": tally.health,
        "worker_health": tally.worker_health,
        "tuning": identity.tuning,
        "server_metrics": tally.server_metrics,
    }


# --- writing it ---

def write(run_dir: Path, info: dict) -> Path:
    """Write run.json atomically (a reader sees the old file or the new one, never half), as strict
    JSON: a number that is not finite (NaN, an infinity) is written null."""
    path = Path(run_dir) / RUN_JSON
    text = json.dumps(redact.mask(info), default=str)  # no known secret, wherever it came from
    room.replace_whole(path, json.dumps(json.loads(text, parse_constant=lambda _: None), indent=2, allow_nan=False))
    return path


def read(run_dir: Path) -> dict | None:
    """run.json as written, or None where there is none."""
    path = Path(run_dir) / RUN_JSON
    try:
        return json.loads(path.read_text())
    except FileNotFoundError:
        return None


def add_partial_reason(run_dir: Path, code: str, text: str, replaces: tuple[str, ...] = (),
                       **fields: object) -> bool:
    """Mark a written run partial for one more reason (and set ``fields``); False where it has no run.json yet."""
    info = read(run_dir)
    if info is None:
        return False
    reasons = PartialReasons(info.get("partial_reasons"))
    reasons.replace(code, text, replaces)
    info.update(reasons.fields(), **fields)
    write(run_dir, info)
    return True


def mark_interrupted(run_dir: Path, signal_name: str) -> bool:
    """`sseload run` forwarded ``signal_name`` to stop the run: run.json names it (``interrupted_by``,
    which the verdict turns into the signal's exit code) in place of Locust's generic reason."""
    return add_partial_reason(run_dir, INTERRUPTED, f"interrupted by {signal_name}", replaces=(SIGNAL,),
                              interrupted_by=signal_name)


__all__ = ["Identity", "PartialReasons", "RunDirError", "Tally", "add_partial_reason", "adopt_run_dir", "check_run_id",
           "compose", "create_run_dir", "mark_interrupted", "new_run_id", "read", "safe_name", "write"]
