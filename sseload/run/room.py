"""The room a run's folder holds back on its disk, so that a disk that fills mid-run still takes the
run's last words (run.json, health.parquet).

It is held when a role makes or adopts the folder (sseload.run.roles), before any load, and freed
when the disk fills (the recorder finds it: sseload.record.sink) or the run is over. What a
full disk means for the run is decided where every run's fate is: a partial reason
(sseload.run.runinfo.DISK_FULL) that stops it, exit code 2 (sseload.run.verdict).

The files written into the folder once the run is over (the report, the summaries, thresholds.xml,
Locust's own CSV and JSON) go through :func:`whole`: each replaces its old self at once or not at all,
and one its full disk cannot take is :class:`DiskFull`, whose words are the one sentence a person
reads (exit code 2 too: sseload.run.verdict). Importing this module imports neither Locust nor gevent.
"""

from __future__ import annotations

import contextlib
import errno
import os
import shutil
from collections.abc import Callable, Iterator
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


def is_disk_full(err: BaseException) -> bool:
    """A write that found no room: the recorder's test (sseload.record.sink, imported only once a write failed)."""
    from sseload.record.sink import is_disk_full as found_no_room

    return found_no_room(err)


class DiskFull(OSError):
    """A file its full disk could not take; ``str()`` is the one sentence that says so, naming it."""

    def __init__(self, path: Path, err: OSError) -> None:
        super().__init__(err.errno, err.strerror, str(path))
        self.path = Path(path)

    def __str__(self) -> str:
        return (f"{self.path} could not be written: the disk holding it is full ({os.strerror(self.errno)}); "
                "free some space there")


@contextlib.contextmanager
def whole(path: Path) -> Iterator[Path]:
    """Write ``path`` whole: the caller writes the file this yields, beside ``path``, which then replaces
    ``path`` at once. A reader sees the old file or the new one, never half of one; a write that fails
    leaves neither a half nor the file beside it, and one that finds the disk full is :class:`DiskFull`."""
    path = Path(path)
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")
    try:
        yield tmp
        os.replace(tmp, path)
    except OSError as err:
        if not isinstance(err, DiskFull) and is_disk_full(err):
            raise DiskFull(path, err) from None
        raise
    finally:
        with contextlib.suppress(OSError):
            tmp.unlink(missing_ok=True)


def write_whole(path: Path, data: str | bytes) -> None:
    """``path`` replaced by ``data`` (text in UTF-8) through :func:`whole`."""
    with whole(path) as tmp:
        if isinstance(data, bytes):
            tmp.write_bytes(data)
        else:
            tmp.write_text(data, encoding="utf-8")


def copy_whole(source: Path, path: Path) -> None:
    """``path`` replaced by a copy of ``source`` through :func:`whole`."""
    with whole(path) as tmp:
        shutil.copyfile(source, tmp)


def written(path: Path, write: Callable[[Path], None], on_full: Callable[[str], None]) -> str | None:
    """``path`` written whole by ``write(tmp)`` (:func:`whole`): None, or the sentence that says why it
    is not, naming it; ``on_full`` hears it first where the disk is full."""
    try:
        with whole(path) as tmp:
            write(tmp)
    except DiskFull as err:
        on_full(str(err))
        return str(err)
    except OSError as err:
        return f"{path} could not be written ({err.strerror or err})"
    return None


def move_in(files: list[Path], folder: Path) -> list[str]:
    """``files`` (written elsewhere) moved into ``folder``, each whole: renamed on the same disk, else
    copied (:func:`copy_whole`); the sentence of the first that could not be, naming those after it
    (not moved either), or none."""
    for i, source in enumerate(files):
        try:
            try:
                os.replace(source, Path(folder) / source.name)
            except OSError as err:
                if err.errno != errno.EXDEV:  # (another disk: copied)
                    raise
                copy_whole(source, Path(folder) / source.name)
        except OSError as err:
            said = str(err) if isinstance(err, DiskFull) else \
                f"{Path(folder) / source.name} could not be written ({err.strerror or err})"
            rest = [f.name for f in files[i + 1:]]
            return [said + (f"; nor were {', '.join(rest)}" if rest else "")]
    return []


__all__ = ["RESERVE", "RESERVE_BYTES", "DiskFull", "NoRoom", "copy_whole", "disk_full_text", "hold", "is_disk_full",
           "move_in", "release", "replace_whole", "whole", "write_whole", "written"]
