"""Reading every open stream of a process: one reader per process, each read with its time.

Two readers share one interface (``add(conn, fd)``, ``remove(fd)``, ``route_body``); a stream
(a :class:`ReadTarget`) gets ``on_read(t_ns, data, err)`` for every read, in order, with the
read's time on perf_counter_ns's clock, taken before any parsing.

- ``NativeReactor`` (the default where ``sseload._reader`` was built): a native thread reads
  and timestamps every stream (the kernel's receive time); the event loop drains the reads in
  batches. Once a stream's head is read, ``route_body`` has the drain feed its body reads
  straight into the stream's compiled event log, and the stream hears only of reads that
  completed something to act on (``on_fed``).
- ``Reactor`` (pure Python; ``Tuning.reader == "python"``, or where the extension is missing):
  a libev read watcher per stream whose callback, in the hub, reads, timestamps and parses.

Read timeouts are checked by a watchdog every ``WATCHDOG_S``. How and why reads are timed so,
and what was measured on the way: docs/measurement.md.
"""

from __future__ import annotations

import itertools
import time
from typing import Protocol

from sseload.transport.tuning import Tuning

WATCHDOG_S = 0.25
DRAIN_HOLDOFF_S = 0.001  # native reader: the loop drains at most this often (timestamps are already taken)
_READ = 1  # libev EV_READ
RECV_BYTES = 65536

try:
    from sseload import _reader
except ImportError:  # not built (no compiler, not Linux): the Python reader serves
    _reader = None
try:
    import _ssl

    _SSL_LIBRARY = getattr(_ssl, "__file__", None)  # where TLSRoute finds OpenSSL (None: built into python)
except ImportError:  # a Python without ssl: no TLS at all
    _SSL_LIBRARY = None
try:
    from sseload._sse import EventLog as _sse_log
except ImportError:  # the Python event log: reads go through on_read
    _sse_log = None


class ReadTarget(Protocol):
    """What a reader calls on a stream it reads (sseload.transport.client.SSEConnection is one)."""

    read_timeout_ns: int

    def recv_now(self, n: int) -> bytes:
        """A non-blocking recv on the stream's socket (the Python reader's read)."""

    def on_read(self, t_ns: int, data: bytes, err: int) -> None:
        """One read with its time; ``data`` empty at EOF, ``err`` an errno on a read error."""

    def on_fed(self, t_ns: int, fed: list | BaseException) -> None:
        """The reader fed a read to the log given to ``route_body``: events to act on, or its error."""

    def idle_since_ns(self) -> int:
        """Where the stream's read timeout counts from (its last read, or its start)."""

    def on_read_timeout(self) -> None:
        """The stream was silent for ``read_timeout_ns``."""


class _Watchdog:
    """Read timeouts for whichever reader: a stream silent for read_timeout_ns is told so."""

    def _start_watchdog(self) -> None:
        import gevent

        self._watchdog = gevent.spawn(self._watch_forever)

    def _open_connections(self):
        raise NotImplementedError

    def _watch_forever(self) -> None:
        import gevent

        perf_ns = time.perf_counter_ns
        while True:
            gevent.sleep(WATCHDOG_S)
            now = perf_ns()
            for conn in list(self._open_connections()):
                if now - conn.idle_since_ns() > conn.read_timeout_ns:
                    conn.on_read_timeout()


class Reactor(_Watchdog):
    """Pure Python: a libev read watcher per stream; the callback reads, timestamps, parses."""

    kind = "python"

    def __init__(self, tuning: Tuning) -> None:
        import gevent

        self.tuning = tuning
        self._loop = gevent.get_hub().loop
        self._conns: dict[int, tuple] = {}  # fd -> (connection, watcher)
        self._watchdog = None

    def _open_connections(self):
        return [conn for conn, _watcher in self._conns.values()]

    def add(self, conn: ReadTarget, fd: int, not_before_ns: int = 0) -> None:
        watcher = self._loop.io(fd, _READ)
        self._conns[fd] = (conn, watcher)
        recv = conn.recv_now
        perf_ns = time.perf_counter_ns
        on_read = conn.on_read

        def on_readable() -> None:
            try:
                data = recv(RECV_BYTES)
            except BlockingIOError:
                return
            except OSError as err:
                return on_read(perf_ns(), b"", err.errno or -1)
            on_read(perf_ns(), data, 0)

        watcher.start(on_readable)
        if self._watchdog is None:
            self._start_watchdog()

    def remove(self, fd: int) -> None:
        entry = self._conns.pop(fd, None)
        if entry is not None:
            watcher = entry[1]
            watcher.stop()
            watcher.close()

    def route_body(self, fd: int, log, on_fed, tls=None) -> bool:
        """Only the native reader feeds logs itself (NativeReactor.route_body); reads stay on_read's."""
        return False


class NativeReactor(_Watchdog):
    """A native thread reads and timestamps; the loop drains batches and parses them."""

    kind = "native"

    def __init__(self, tuning: Tuning) -> None:
        import gevent

        self.tuning = tuning
        self.kernel_timestamps = tuning.kernel_timestamps
        self.window_ms = tuning.read_window_ms
        self._reader = _reader.Reader(window_ns=int(tuning.read_window_ms * 1e6),
                                      kernel_timestamps=tuning.kernel_timestamps, nice=tuning.reader_nice)
        # token -> conn.on_read, or (log, conn.on_read, on_fed[, TLSRoute]): route_body
        self._on_read: dict[int, object] = {}
        self._streams: dict[int, tuple[int, ReadTarget]] = {}  # fd -> (token, the stream reading it)
        self.route = tuning.route_body and _sse_log is not None
        # TLS reads decrypted in C (route_body): None until a TLS stream asks; and why not, where not
        self.tls_in_c: bool | None = None if tuning.tls_in_c else False
        self.tls_in_c_why = "" if tuning.tls_in_c else "SSELOAD_TLS_IN_C=0"
        self._next_token = itertools.count(1)
        self._watchdog = None
        # The eventfd is readable while reads wait: drain them from the hub, no greenlet switch.
        # After a drain the loop waits DRAIN_HOLDOFF_S before the next, so under load one
        # wake-up serves the reads of a millisecond instead of one read or two.
        loop = gevent.get_hub().loop
        self._wakeup = loop.io(self._reader.fileno(), _READ)
        self._holdoff = loop.timer(DRAIN_HOLDOFF_S)
        self._wakeup.start(self._on_wakeup)

    def _on_wakeup(self) -> None:
        self._wakeup.stop()
        try:
            self._drain()
        finally:  # whatever a stream's callback did, the next reads are drained
            self._holdoff.start(self._after_holdoff)

    def _after_holdoff(self) -> None:
        self._wakeup.start(self._on_wakeup)

    def _open_connections(self):
        return [conn for _token, conn in self._streams.values()]

    def add(self, conn: ReadTarget, fd: int, not_before_ns: int = 0) -> None:
        """Read ``fd`` for ``conn``; no read of it is timed before ``not_before_ns`` (the request's send)."""
        token = next(self._next_token)
        self._reader.add(fd, token, not_before_ns)  # first: if it fails, nothing is left half registered
        self._on_read[token] = conn.on_read
        self._streams[fd] = (token, conn)
        if self._watchdog is None:
            self._start_watchdog()

    def remove(self, fd: int) -> None:
        """After this returns the reader thread no longer touches ``fd``: it may be closed."""
        entry = self._streams.pop(fd, None)
        if entry is not None:
            self._reader.remove(fd)
            del self._on_read[entry[0]]

    def route_body(self, fd: int, log, on_fed, tls=None) -> bool:
        """From now on feed ``fd``'s reads straight into ``log`` (a compiled EventLog) in C.

        The connection's ``on_fed(t_ns, events)`` is called only for a read that completed
        something to act on (typed or sentinel events, or the body's end), ``on_fed(t_ns, error)``
        when the log refused a read; EOF and read errors still go to ``on_read``. A read that only
        recorded events costs no bytes object and no Python call (docs/measurement.md).
        The log keeps the read's time (``last_t_ns``) and its bytes (``bytes_in``). False where
        this cannot be done (the Python event log; ``SSELOAD_ROUTE_BODY=0``): on_read keeps them.

        ``tls``: the connection's ``(ssl.SSLObject, incoming MemoryBIO, outgoing MemoryBIO)``: its
        reads are decrypted in C too (``_reader.TLSRoute``, on the same OpenSSL objects), where this
        Python's ssl objects allow it (checked once); else False and Python decrypts them.
        """
        entry = self._streams.get(fd)
        if entry is None or not self.route or type(log) is not _sse_log:
            return False
        token, conn = entry
        if tls is None:
            self._on_read[token] = (log, conn.on_read, on_fed)
            return True
        route = self._tls_route(fd, *tls)
        if route is None:
            return False
        self._on_read[token] = (log, conn.on_read, on_fed, route)
        return True

    def _tls_route(self, fd: int, obj, incoming, outgoing):
        """A TLSRoute for this connection, or None where this Python's ssl cannot give one."""
        if self.tls_in_c is False:
            return None
        try:
            route = _reader.TLSRoute(obj._sslobj, incoming, outgoing, fd, _SSL_LIBRARY)
        except (AttributeError, TypeError, ValueError, OSError) as why:
            self.tls_in_c, self.tls_in_c_why = False, f"{type(why).__name__}: {why}"
            return None
        self.tls_in_c = True
        return route

    def _drain(self) -> None:
        # Every read in order to its stream's on_read; reads of streams already removed are dropped.
        self._reader.dispatch(self._on_read)

    def stats(self) -> dict:
        return self._reader.stats()


_reactor: Reactor | NativeReactor | None = None


def reader_info() -> dict:
    """For run.json: which reader read the streams, and (native) its reads and wake-ups."""
    info = {"reader": _reactor.kind if _reactor is not None else Tuning.from_env().reader}
    if isinstance(_reactor, NativeReactor):
        info.update({f"reader_{k}": v for k, v in _reactor.stats().items()})
        info["reader_window_ms"] = _reactor.window_ms
        info["reader_routes_body"] = _reactor.route
        if _reactor.tls_in_c is not None:  # a TLS stream was read (or SSELOAD_TLS_IN_C=0): in C, or why not
            info["reader_tls_in_c"] = _reactor.tls_in_c
            if _reactor.tls_in_c_why:
                info["reader_tls_in_c_why"] = _reactor.tls_in_c_why
    return info


def take_reader_lags() -> bytes:
    """The native reader thread's wake-up lags since the last call (int64 ns); b"" otherwise."""
    if isinstance(_reactor, NativeReactor):
        return _reactor._reader.take_lags()
    return b""


def reactor(tuning: Tuning | None = None) -> Reactor | NativeReactor:
    """The process's one reader, made on first use with ``tuning`` (else the environment's)."""
    global _reactor
    if _reactor is None:
        tuning = tuning or Tuning.from_env()
        _reactor = NativeReactor(tuning) if tuning.reader == "native" and _reader is not None else Reactor(tuning)
    return _reactor


__all__ = ["NativeReactor", "ReadTarget", "Reactor", "reactor", "reader_info", "take_reader_lags"]
