"""The files a scenario names (its own TOML, a body, a dataset, a tokenizer, a CA bundle), checked
before they are read.

A path can name what is not a file: a FIFO (reading it waits for a writer that never comes),
``/dev/zero`` (never ends), a folder. Each is opened without blocking and looked at through the
open descriptor, so what is checked is what is read: a regular file, readable, no larger than
what it is for. The message names the setting, the path and the fix.
"""

from __future__ import annotations

import os
import stat
from collections.abc import Iterator
from pathlib import Path

from sseload.scenario.model import MAX_SENT_BODY_BYTES, Scenario, ScenarioError

_KINDS = ((stat.S_ISDIR, "a folder"), (stat.S_ISFIFO, "a FIFO (a named pipe, read until a writer comes)"),
          (stat.S_ISCHR, "a device (read without end)"), (stat.S_ISBLK, "a block device"),
          (stat.S_ISSOCK, "a socket"))


def _open(path: Path, what: str) -> int:
    """An open descriptor of ``path``, a regular file; O_NONBLOCK so that a FIFO cannot hang the open."""
    try:
        fd = os.open(path, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise ScenarioError(f"{what} {str(path)!r} cannot be read: there is no such file; give the path of a file "
                            "(a scenario's relative paths are relative to its folder)") from None
    except OSError as err:
        raise ScenarioError(f"{what} {str(path)!r} cannot be read: {err.strerror}") from None
    mode = os.fstat(fd).st_mode
    if not stat.S_ISREG(mode):
        os.close(fd)
        kind = next((name for test, name in _KINDS if test(mode)), "not a regular file")
        raise ScenarioError(f"{what} {str(path)!r} is {kind}, not a file; give the path of a regular file")
    return fd


def size_of(path: Path, what: str, most_bytes: int | None = None, why: str = "") -> int:
    """The size of the regular, readable file ``path``, at most ``most_bytes`` (``why`` says why),
    checked without reading it."""
    fd = _open(path, what)
    try:
        size = os.fstat(fd).st_size
    finally:
        os.close(fd)
    _check_size(path, what, size, most_bytes, why)
    return size


def _check_size(path: Path, what: str, size: int, most_bytes: int | None, why: str) -> None:
    if most_bytes is not None and size > most_bytes:
        raise ScenarioError(f"{what} {str(path)!r} is {size:,} bytes, more than the {most_bytes:,} it may be"
                            + (f" ({why})" if why else "") + "; give a smaller file")


def read_bytes(path: Path, what: str, most_bytes: int, why: str = "") -> bytes:
    """The whole of the regular file ``path``, refused (unread) when larger than ``most_bytes``; never
    more than that read, should it grow while read."""
    fd = _open(path, what)
    with os.fdopen(fd, "rb") as file:
        _check_size(path, what, os.fstat(file.fileno()).st_size, most_bytes, why)
        data = file.read(most_bytes + 1)
    _check_size(path, what, len(data), most_bytes, why)
    return data


def read_text(path: Path, what: str, most_bytes: int, why: str = "") -> str:
    """:func:`read_bytes` as UTF-8 text; a file that is not says where."""
    data = read_bytes(path, what, most_bytes, why)
    try:
        return data.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ScenarioError(f"{what} {str(path)!r} is not UTF-8 text (byte {err.start + 1:,} is not); "
                            "give a text file") from None


def lines(path: Path, what: str, most_bytes: int, why: str = "") -> Iterator[tuple[int, str]]:
    """(number, line) of the UTF-8 text file ``path``, read a line at a time, blank lines skipped."""
    fd = _open(path, what)
    with os.fdopen(fd, "rb") as file:
        _check_size(path, what, os.fstat(file.fileno()).st_size, most_bytes, why)
        read = 0
        for n, raw in enumerate(file, 1):
            read += len(raw)
            _check_size(path, what, read, most_bytes, why)
            try:
                line = raw.decode("utf-8")
            except UnicodeDecodeError:
                raise ScenarioError(f"{what} {str(path)!r} line {n} is not UTF-8 text; give a text file") from None
            if line.strip():
                yield n, line


# --- the files a scenario names ---

BODY_FILE = "[body] file (--body-file)"
#: A dataset, a tokenizer: held in memory by every process, as a body is.
MOST_HELD_BYTES = MAX_SENT_BODY_BYTES
MOST_SCENARIO_BYTES = 16 << 20  # a scenario file (TOML) at most
MOST_CA_BUNDLE_BYTES = 16 << 20


def body_file(path: Path, skip_over: int | None, read: bool = True) -> bytes | int:
    """A [body] file's bytes; or, over the gateway's limit with over_limit = "skip" (``skip_over``), its
    size alone, standing in for a body no stream sends (the file is never read)."""
    size = size_of(path, BODY_FILE)
    if skip_over is not None and size > skip_over:
        return size
    if size > MAX_SENT_BODY_BYTES:
        raise ScenarioError(f"{BODY_FILE} {str(path)!r} is {size:,} bytes, too large to send (at most "
                            f"{MAX_SENT_BODY_BYTES:,} bytes, held in memory by every process); give a smaller file, or "
                            "over_limit = \"skip\" to record bodies over the gateway limit as too_large unsent")
    return read_bytes(path, BODY_FILE, MAX_SENT_BODY_BYTES) if read else size


def check_named(s: Scenario) -> None:
    """Every file the scenario names is a regular, readable file no larger than it may be: checked
    (not read) before anything starts, where a run's scenario is picked (sseload.scenario.load.select)."""
    base = Path(s.source).parent if s.source else None

    def at(name: str) -> Path:
        path = Path(name)
        return path if path.is_absolute() or base is None else base / path

    if s.body.file:
        body_file(at(s.body.file), s.gateway.max_body_bytes if s.body.over_limit == "skip" else None, read=False)
    if s.body.dataset:
        size_of(at(s.body.dataset), "[body] dataset", MOST_HELD_BYTES, "held in memory by every process")
    if s.stream.tokenizer:
        size_of(at(s.stream.tokenizer), "[stream] tokenizer", MOST_HELD_BYTES, "held in memory by every process")
    if s.stream.ca_bundle:
        size_of(Path(s.stream.ca_bundle), "[stream] ca_bundle", MOST_CA_BUNDLE_BYTES)
