"""TLS over a plain socket through memory buffers (ssl.MemoryBIO), so TLS streams are read and
timed by the reader like plain ones."""

from __future__ import annotations

import contextlib
import socket
import ssl

from sseload.transport.reactor import RECV_BYTES


class TLS:
    """TLS over the plain socket through memory buffers (ssl.MemoryBIO).

    The socket stays a plain one, so TLS streams are read by the reactor like any other: each
    raw read is timestamped, then decrypted whole. (An SSL socket can hold decrypted bytes a
    poller cannot see, and reading it greenlet by greenlet cost far more per event.)
    """

    __slots__ = ("obj", "incoming", "outgoing", "sock")

    def __init__(self, context: ssl.SSLContext, hostname: str, sock: socket.socket,
                 session: ssl.SSLSession | None = None) -> None:
        self.incoming, self.outgoing = ssl.MemoryBIO(), ssl.MemoryBIO()
        # session: the last connection's, so a reconnect resumes instead of a full handshake
        self.obj = context.wrap_bio(self.incoming, self.outgoing, server_hostname=hostname, session=session)
        self.sock = sock
        while True:
            try:
                self.obj.do_handshake()
                break
            except ssl.SSLWantReadError:
                self._flush()
                data = sock.recv(RECV_BYTES)
                if not data:
                    raise ConnectionResetError("the server closed the connection during the TLS handshake") from None
                self.incoming.write(data)
        self._flush()

    def _flush(self) -> None:
        pending = self.outgoing.read()
        if pending:
            self.sock.sendall(pending)

    def encrypt(self, data: bytes) -> bytes:
        self.obj.write(data)
        return self.outgoing.read()

    def closed_while_idle(self) -> bool:
        """A kept-alive connection between streams: the records waiting on it, taken through TLS without
        waiting. A session ticket is nothing; a close_notify (TLS 1.3 hides it as application data, so a
        look at the socket cannot tell it from a ticket), an alert, bytes nobody asked for or the FIN are
        the close: no request may go on it."""
        raw = getattr(self.sock, "_sock", self.sock)  # gevent's socket is over a non-blocking one
        timeout = raw.gettimeout()
        try:
            raw.settimeout(0)
            while data := raw.recv(RECV_BYTES):
                self.incoming.write(data)
            return True  # the FIN
        except BlockingIOError:
            pass
        except OSError:
            return True
        finally:
            raw.settimeout(timeout)
        try:
            self.obj.read(RECV_BYTES)  # b"": a close_notify; bytes: data nobody asked for
        except ssl.SSLWantReadError:
            return False  # tickets, or nothing
        except ssl.SSLError:  # an alert
            return True
        return True

    def decrypt(self, data: bytes) -> list[bytes]:
        self.incoming.write(data)
        out = []
        while True:
            try:
                got = self.obj.read(RECV_BYTES)
            except (ssl.SSLWantReadError, ssl.SSLZeroReturnError):
                break
            if not got:  # close_notify (ssl reads it as b""): the response ends with the connection
                break
            out.append(got)
        if self.outgoing.pending:  # e.g. a TLS 1.2 renegotiation's hello; tiny, and we are in the hub:
            # send without waiting (the kernel buffer is all but empty)
            with contextlib.suppress(BlockingIOError):
                self.sock._sock.send(self.outgoing.read())
        return out
