"""The room a run's folder holds back on its disk, so that a disk that fills mid-run still takes the
run's last words (run.json, health.parquet).

It is held when a role makes or adopts the folder (sseload.run.roles), before any load, and freed
when the disk fills (the recorder finds it: sseload.record.recorder) or the run is over. What a
full disk means for the run is decided where every run's fate is: a partial reason
(sseload.run.runinfo.DISK_FULL) that stops it, exit code 2 (sseload.run.verdict). Importing this
module imports neither Locust nor gevent.
"""

from __future__ import annotations

import contextlib
import os
from pathlib import Path

RESERVE = ".reserve"  # the file that holds the room, in the run's folder
RESERVE_BYTES = 1 << 20  # run.json is a few KiB; health.parquet an hour's seconds


class NoRoom(ValueError):
    """Not even the reserve fits in the run's folder; the message says what to do (exit code 2)."""


def hold(run_dir: Path) -> Path:
    """Hold back :data:`RESERVE_BYTES` in ``run_dir`` (random bytes, which no file system compresses
    away) and return it; NoRoom where they do not fit."""
    held = Path(run_dir) / RESERVE
    try:
        held.write_bytes(os.urandom(RESERVE_BYTES))
    except OSError as err:
        with contextlib.suppress(OSError):
            held.unlink(missing_ok=True)
        raise NoRoom(f"cannot write results to {run_dir} ({err.strerror}); pick another --results-dir or free "
                     "some space") from None
    return Path(run_dir)


def release(run_dir: Path) -> bool:
    """Give the room back (the disk filled, or the run is over); False where none was held."""
    try:
        (Path(run_dir) / RESERVE).unlink()
    except FileNotFoundError:
        return False
    return True


def replace_whole(path: Path, text: str) -> None:
    """``path`` replaced by ``text`` at once (written beside it first); a write that fails (the disk
    is full) is tried once more in the room of the reserve of ``path``'s folder, freed for it."""
    tmp = path.with_name(path.name + ".tmp")
    for last in (False, True):
        try:
            tmp.write_text(text)
            tmp.replace(path)
            return
        except OSError:
            with contextlib.suppress(OSError):
                tmp.unlink(missing_ok=True)
            if last or not release(path.parent):
                raise


def disk_full_text(run_dir: Path, err: OSError) -> str:
    """How a run whose disk filled says so, once: the folder, the system's words, what is kept."""
    why = os.strerror(err.errno) if err.errno else str(err)  # (pyarrow's own words wrap the system's)
    return (f"the disk holding {run_dir} is full ({why}): the run stopped there; the streams written before are "
            "kept and readable, those recorded after are not in the files")


__all__ = ["RESERVE", "RESERVE_BYTES", "NoRoom", "disk_full_text", "hold", "release", "replace_whole"]
