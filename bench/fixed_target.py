"""bench/fixed_target.c, compiled once per version of its source (in the system's temp directory).

    from fixed_target import binary          # bench scripts (bench/ is their sys.path[0])
    binary() -> Path of the executable; SystemExit naming what is missing when it cannot be built
    build(source, directory) -> the same for another C file of the bench (bench/floor.c in bench/.build)

Used by streams_bench.py (``--target c``, ``--clients floor``), bench/peers/run.py (``--openai``, the
ground truth) and by the tests that drive sseload against it.
"""

from __future__ import annotations

import hashlib
import os
import subprocess
import tempfile
from pathlib import Path

SOURCE = Path(__file__).resolve().with_suffix(".c")


class BuildError(RuntimeError):
    """The C target could not be compiled here (no compiler, no OpenSSL headers)."""


def binary() -> Path:
    return build(SOURCE, Path(tempfile.gettempdir()), "sseload-fixed-target")


def build(source: Path, directory: Path, name: str | None = None) -> Path:
    """``source`` compiled with OpenSSL into ``directory``, once per version of its text."""
    digest = hashlib.sha256(source.read_bytes()).hexdigest()[:12]
    path = directory / f"{name or source.stem}-{digest}"
    if not path.exists():
        directory.mkdir(parents=True, exist_ok=True)
        cc = os.environ.get("CC", "cc")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            built = subprocess.run([cc, "-O2", "-o", str(tmp), str(source), "-lssl", "-lcrypto"],
                                   capture_output=True, text=True)
        except FileNotFoundError:
            raise BuildError(f"no C compiler ({cc}) to build {source.name} (Debian: apt-get install gcc)") from None
        if built.returncode != 0:
            raise BuildError(f"could not compile {source.name} ({built.stderr.strip()[-400:]}); it needs a C "
                             "compiler and OpenSSL's headers (Debian: apt-get install gcc libssl-dev)")
        os.replace(tmp, path)
    return path
