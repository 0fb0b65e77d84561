"""Sending one request: what the kernel took of it, a server that stops taking it, and whether a
kept-alive connection can carry it at all. sseload.transport.client owns the connection; this
module only moves a request's bytes and counts them.

A server that stops reading stalls the upload: read_timeout_s without a byte taken is
:class:`UploadStalled`, and the stream's error says how much went out and how long it took
(gevent's ``sendall`` bounds the whole send instead, which a large body going up steadily would
pass, and counts nothing).
"""

from __future__ import annotations

import socket

from gevent.socket import wait_write


class UploadStalled(TimeoutError):
    """The server took no byte of the request for read_timeout_s: it stopped reading it."""


class Upload:
    """One request going out: ``sent`` of its ``total`` bytes taken by the kernel, the last at ``last_ns``
    (perf_counter ns). ``total`` and ``sent`` count what goes on the wire (TLS: encrypted)."""

    __slots__ = ("last_ns", "sent", "total")

    def __init__(self) -> None:
        self.sent = self.total = self.last_ns = 0

    def start(self) -> None:
        self.sent = self.total = self.last_ns = 0

    def send(self, send_now, sock: socket.socket, data: bytes, idle_s: float, now_ns) -> None:
        """Hand ``data`` to the kernel: ``send_now`` is the non-blocking socket's send under gevent's
        ``sock`` (None: ``sock`` blocks, and its own timeout bounds each send); ``now_ns`` the clock."""
        # A request nearly always fits the socket's buffer: one send() on the non-blocking socket
        # under gevent's. gevent's sendall asks the kernel for SO_SNDBUF on every call and runs
        # four Python frames around the send (py-spy: about a tenth of a stream's own samples).
        self.total += len(data)
        sent = 0
        if send_now is not None:
            try:  # noqa: SIM105 (per stream: a try costs nothing, a context manager does)
                sent = send_now(data)
            except BlockingIOError:
                pass
        if sent:
            self.sent += sent
            self.last_ns = now_ns()
        if sent == len(data):
            return
        view = memoryview(data)
        if send_now is None:
            sock.sendall(view[sent:])
            self.sent += len(data) - sent
            self.last_ns = now_ns()
            return
        fd = sock.fileno()
        while sent < len(data):  # the rest as the kernel takes it, cooperatively
            wait_write(fd, idle_s, UploadStalled())
            try:
                taken = send_now(view[sent:])
            except BlockingIOError:
                continue
            sent += taken
            self.sent += taken
            self.last_ns = now_ns()

    def stalled_text(self, upload_ns: int, idle_s: float) -> str:
        """The error of a stream whose request the server stopped reading."""
        return (f"the server stopped reading the request: {self.sent:,} of its {self.total:,} bytes went out in "
                f"{max(upload_ns, 0) / 1e6:,.0f} ms, then none for {idle_s:g} s (read_timeout_s)")


def closed_while_idle(sock: socket.socket, tls: bool) -> bool:
    """A kept-alive connection cannot carry a request: the server closed (or reset) it while it was
    idle, or, in plain HTTP, sent bytes nobody asked for (a 408 before its close). A look that takes
    nothing and never waits, made before sending, so that no request goes out on such a connection."""
    raw = getattr(sock, "_sock", sock)  # gevent's socket is over a non-blocking one
    timeout = raw.gettimeout()
    try:
        if timeout != 0:  # a socket with a timeout would wait for a byte
            raw.settimeout(0)
        peeked = raw.recv(1, socket.MSG_PEEK)
    except BlockingIOError:
        return False
    except OSError:
        return True
    finally:
        if timeout != 0:
            raw.settimeout(timeout)
    # TLS: a record may wait there and be no answer (a session ticket); an alert record (TLS 1.2's
    # close_notify) is the close. TLS 1.3 hides the record's type: then the server's FIN tells.
    return not peeked or not tls or peeked == b"\x15"


__all__ = ["Upload", "UploadStalled", "closed_while_idle"]
