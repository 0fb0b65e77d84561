"""The native reader thread (sseload/_reader.c); sseload.transport.reactor.NativeReactor drives it."""

from collections.abc import Callable, Mapping
from typing import Any

OnRead = Callable[[int, bytes, int], None]

class Reader:
    def __init__(self, max_bytes: int = ..., window_ns: int = ..., kernel_timestamps: bool = ...,
                 nice: int = ...) -> None: ...
    def add(self, fd: int, token: int, not_before_ns: int = 0, /) -> None:
        """Read fd on the thread; its reads are drained with this token, none timed earlier than
        ``not_before_ns`` (the request's send) or than the fd's read before it."""
    def remove(self, fd: int, /) -> None:
        """Stop reading fd; after this returns the thread does not touch it."""
    def drain(self) -> list[tuple[int, int, bytes, int]]:
        """Every read since the last drain: (token, t_ns, data, err)."""
    def dispatch(self, callbacks: Mapping[int, OnRead | tuple[Any, OnRead, Callable[[int, Any], None]]
                                            | tuple[Any, OnRead, Callable[[int, Any], None], TLSRoute]], /) -> int:
        """Call callbacks[token](t_ns, data, err) for every read since the last drain; a value
        (log, on_read, on_fed) feeds the read to the compiled event log and calls on_fed(t_ns,
        events or error) only when it completed something to act on; (log, on_read, on_fed,
        route) decrypts the read with the TLSRoute first (a TLS error reaches on_fed)."""
    def fileno(self) -> int:
        """An eventfd that is readable while reads wait to be drained."""
    def stats(self) -> dict[str, int]:
        """{'reads', 'stamped', 'wakeups', 'stepped', 'nice', 'tls_reads'}: stamped reads were timed by
        the kernel; stepped wake-ups' reads were timed as they returned, the wall clock having
        stepped; tls_reads were decrypted in dispatch."""
    def _inject_clock_step(self, ns: int, /) -> None:
        """Tests: the next wake-up that reads sockets sees the wall clock stepped by ``ns``."""
    def take_lags(self) -> bytes:
        """The thread's wake-up lags (int64 ns), sampled every 50 ms since the last call."""
    def close(self) -> None: ...

class TLSRoute:
    """Decrypt a routed TLS stream's reads in dispatch, on the OpenSSL objects of Python's ssl
    module: ``sslobj`` is an ``ssl.SSLObject``'s ``_sslobj``, ``incoming``/``outgoing`` its
    MemoryBIOs, ``fd`` the socket (for what OpenSSL must answer, e.g. a renegotiation), ``library``
    the file of ``_ssl`` (OpenSSL's functions are looked up beside it; None: in the executable).
    TypeError for other objects, ValueError where this Python's are laid out otherwise, OSError
    where OpenSSL's functions cannot be found."""

    reads: int

    def __init__(self, sslobj: Any, incoming: Any, outgoing: Any, fd: int, library: str | None) -> None: ...
    def decrypt(self, data: bytes, /) -> bytes:
        """One read's plaintext, as dispatch decrypts it (ssl.SSLError for a bad record or an alert)."""

def now_ns() -> int:
    """The reader thread's clock (CLOCK_MONOTONIC), in ns."""

def orphan_watchdog(grace_s: float, /) -> bool:
    """Once the parent process is gone, SIGKILL this one after ``grace_s`` (even when its main
    thread is stuck in C); False when already started."""
