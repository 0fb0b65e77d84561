"""The harness's behaviour switches, read once from the environment and passed explicitly.

They exist to compare one way of measuring against another (docs/measurement.md says why each
default is what it is); a run records the whole object in ``run.json`` ("tuning"). Each switch
is one row of :data:`SWITCHES`, which the docs' table follows.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Mapping
from dataclasses import asdict, dataclass

log = logging.getLogger("sseload")


@dataclass(frozen=True)
class Switch:
    field: str
    env: str
    default: str
    meaning: str


SWITCHES = (
    Switch("reader", "SSELOAD_READER", "native",
           "native: a native thread reads every stream and times each read (sseload._reader); "
           "python: the event loop reads (also where the extension was not built)"),
    Switch("parser", "SSELOAD_PARSER", "compiled",
           "compiled: the event log in C (sseload._sse); python: sseload.protocol.sse.PyEventLog, its definition"),
    Switch("kernel_timestamps", "SSELOAD_KERNEL_TIMESTAMPS", "1",
           "1: reads timed by the kernel's receive timestamps (SO_TIMESTAMPNS); 0: as the read returns"),
    Switch("read_window_ms", "SSELOAD_READ_WINDOW_MS", "1.0",
           "how often the reader thread reads (0-100 ms; 0 without kernel timestamps)"),
    Switch("reader_nice", "SSELOAD_READER_NICE", "-10",
           "the reader thread's nice value where permitted (-20..19; 0 without kernel timestamps)"),
    Switch("route_body", "SSELOAD_ROUTE_BODY", "1",
           "1: the reader feeds body reads straight into the compiled event log; 0: through Python"),
    Switch("tls_in_c", "SSELOAD_TLS_IN_C", "1",
           "1: routed TLS body reads are decrypted in C (sseload._reader.TLSRoute); 0: by Python's ssl"),
)


def _native_reader_built() -> bool:
    try:
        from sseload import _reader  # noqa: F401
    except ImportError:
        return False
    return True


def _compiled_log_built() -> bool:
    try:
        from sseload import _sse  # noqa: F401
    except ImportError:
        return False
    return True


def _number(environ: Mapping[str, str], name: str, default: float, low: float, high: float, cast=float):
    text = environ.get(name)
    if text is None:
        return default
    try:
        value = cast(text)
    except ValueError:
        value = None
    if value is None or not low <= value <= high:
        log.warning("%s=%r is not a number from %g to %g; using %g", name, text, low, high, default)
        return default
    return value


@dataclass(frozen=True)
class Tuning:
    """What actually runs: a switch asking for a piece that was not built says what runs instead."""

    reader: str = "native"
    parser: str = "compiled"
    kernel_timestamps: bool = True
    read_window_ms: float = 1.0
    reader_nice: int = -10
    route_body: bool = True
    tls_in_c: bool = True

    @classmethod
    def from_env(cls, environ: Mapping[str, str] = os.environ) -> Tuning:
        kernel = environ.get("SSELOAD_KERNEL_TIMESTAMPS", "1") != "0"
        reader = "python" if environ.get("SSELOAD_READER") == "python" or not _native_reader_built() else "native"
        compiled = environ.get("SSELOAD_PARSER") != "python" and _compiled_log_built()
        # Windows and priority go together: without kernel times the thread must read at once,
        # and at nice -10 it would then preempt the loop at every read (docs/measurement.md).
        window = _number(environ, "SSELOAD_READ_WINDOW_MS", 1.0, 0.0, 100.0) if kernel else 0.0
        nice = _number(environ, "SSELOAD_READER_NICE", -10 if kernel else 0, -20, 19, int)
        return cls(
            reader=reader,
            parser="compiled" if compiled else "python",
            kernel_timestamps=kernel,
            read_window_ms=window,
            reader_nice=nice,
            route_body=environ.get("SSELOAD_ROUTE_BODY", "1") != "0" and compiled,
            tls_in_c=environ.get("SSELOAD_TLS_IN_C", "1") != "0",
        )

    def to_dict(self) -> dict:
        return asdict(self)


__all__ = ["SWITCHES", "Switch", "Tuning"]
