"""One reader for every open stream of a process: epoll, woken through gevent.

Reading each stream in its own greenlet costs, per read: a failed recv (an exception), a
switch to the hub and back, and a Timeout armed and disarmed for the socket's read timeout.
Profiled at 250 streams, that machinery was over half of the harness's CPU. Here a single
greenlet waits on the epoll descriptor (one gevent watcher for the whole process), and each
wake-up drains every socket that became readable: recv, timestamp, parse. A user's greenlet
sleeps on an Event once per stream instead of once per event.

Read timeouts are checked by a watchdog every ``WATCHDOG_S``; the stream deadline stays a
gevent Timeout in the user's greenlet. TLS connections do not come here: an SSL socket can
hold decrypted bytes that epoll cannot see.
"""

from __future__ import annotations

import select
import time


def _epoll():
    """The real epoll: gevent's monkey patching removes it from the select module."""
    try:
        from gevent.monkey import get_original

        return get_original("select", "epoll")()
    except (ImportError, AttributeError):
        return select.epoll()

WATCHDOG_S = 0.25


class Reactor:
    def __init__(self) -> None:
        self._epoll = _epoll()
        self._conns: dict[int, object] = {}
        self._reader = None
        self._watchdog = None

    def __len__(self) -> int:
        return len(self._conns)

    def add(self, conn, fd: int) -> None:
        self._conns[fd] = conn
        self._epoll.register(fd, select.EPOLLIN)
        if self._reader is None:
            import gevent

            self._reader = gevent.spawn(self._read_forever)
            self._watchdog = gevent.spawn(self._watch_forever)

    def remove(self, fd: int) -> None:
        if self._conns.pop(fd, None) is not None:
            try:
                self._epoll.unregister(fd)
            except (OSError, ValueError):
                pass

    def _read_forever(self) -> None:
        import gevent

        hub = gevent.get_hub()
        watcher = hub.loop.io(self._epoll.fileno(), 1)
        poll = self._epoll.poll
        conns = self._conns
        while True:
            hub.wait(watcher)
            for fd, _mask in poll(0):
                conn = conns.get(fd)
                if conn is not None:
                    conn.on_readable()

    def _watch_forever(self) -> None:
        import gevent

        perf_ns = time.perf_counter_ns
        while True:
            gevent.sleep(WATCHDOG_S)
            now = perf_ns()
            for conn in list(self._conns.values()):
                if now - conn._t_read > conn.read_timeout_ns:
                    conn.on_read_timeout()


_reactor: Reactor | None = None


def reactor() -> Reactor:
    global _reactor
    if _reactor is None:
        _reactor = Reactor()
    return _reactor


__all__ = ["Reactor", "reactor"]
