"""Reading every open stream of a process straight from the event loop's callbacks.

Reading each stream in its own greenlet costs, per read: a failed recv (an exception), a
switch to the hub and back, and a Timeout armed and disarmed for the socket's read timeout.
Profiled at 250 streams, that machinery was over half of the harness's CPU. Here each open
stream has one libev read watcher whose callback runs in the hub itself: the loop's single
epoll_wait reports every readable socket, and each callback does recv, timestamp, parse, with
no greenlet switch and no exception per read. A user's greenlet sleeps on an Event once per
stream instead of once per event.

(An earlier version kept its own epoll descriptor and woke one reader greenlet through it:
two epoll_wait calls and two greenlet switches per wake-up.)

Read timeouts are checked by a watchdog every ``WATCHDOG_S``; the stream deadline stays a
gevent Timeout in the user's greenlet. TLS streams come here too: the client keeps TLS in
memory buffers over a plain socket and decrypts each raw read whole, so no decrypted bytes
wait where the poller cannot see them.
"""

from __future__ import annotations

import time

WATCHDOG_S = 0.25
_READ = 1  # libev EV_READ


class Reactor:
    def __init__(self) -> None:
        import gevent

        self._loop = gevent.get_hub().loop
        self._conns: dict[int, tuple] = {}  # fd -> (connection, watcher)
        self._watchdog = None

    def __len__(self) -> int:
        return len(self._conns)

    def add(self, conn, fd: int) -> None:
        """Call ``conn.on_readable()`` from the hub whenever ``fd`` has bytes (or EOF)."""
        watcher = self._loop.io(fd, _READ)
        self._conns[fd] = (conn, watcher)
        watcher.start(conn.on_readable)
        if self._watchdog is None:
            import gevent

            self._watchdog = gevent.spawn(self._watch_forever)

    def remove(self, fd: int) -> None:
        entry = self._conns.pop(fd, None)
        if entry is not None:
            watcher = entry[1]
            watcher.stop()
            watcher.close()

    def _watch_forever(self) -> None:
        import gevent

        perf_ns = time.perf_counter_ns
        while True:
            gevent.sleep(WATCHDOG_S)
            now = perf_ns()
            for conn, _watcher in list(self._conns.values()):
                if now - conn._t_read > conn.read_timeout_ns:
                    conn.on_read_timeout()


_reactor: Reactor | None = None


def reactor() -> Reactor:
    global _reactor
    if _reactor is None:
        _reactor = Reactor()
    return _reactor


__all__ = ["Reactor", "reactor"]
