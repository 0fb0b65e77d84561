"""bench/fixed_target.c, compiled once per version of its source (in the system's temp directory).

    from fixed_target import binary          # bench scripts (bench/ is their sys.path[0])
    binary() -> Path of the executable; SystemExit naming what is missing when it cannot be built

Used by streams_bench.py (``--target c``) and by the tests that drive sseload against it.
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
    digest = hashlib.sha256(SOURCE.read_bytes()).hexdigest()[:12]
    path = Path(tempfile.gettempdir()) / f"sseload-fixed-target-{digest}"
    if not path.exists():
        cc = os.environ.get("CC", "cc")
        tmp = path.with_name(f"{path.name}.{os.getpid()}.tmp")
        try:
            built = subprocess.run([cc, "-O2", "-o", str(tmp), str(SOURCE), "-lssl", "-lcrypto"],
                                   capture_output=True, text=True)
        except FileNotFoundError:
            raise BuildError(f"no C compiler ({cc}) to build {SOURCE.name} (Debian: apt-get install gcc)") from None
        if built.returncode != 0:
            raise BuildError(f"could not compile {SOURCE.name} ({built.stderr.strip()[-400:]}); it needs a C "
                             "compiler and OpenSSL's headers (Debian: apt-get install gcc libssl-dev)")
        os.replace(tmp, path)
    return path
