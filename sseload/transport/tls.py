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

    def decrypt(self, data: bytes) -> list[bytes]:
        self.incoming.write(data)
        out = []
        while True:
            try:
                out.append(self.obj.read(RECV_BYTES))
            except ssl.SSLWantReadError:
                break
            except ssl.SSLZeroReturnError:  # close_notify: the response ends with the connection
                break
        if self.outgoing.pending:  # e.g. a TLS 1.2 renegotiation's hello; tiny, and we are in the hub:
            # send without waiting (the kernel buffer is all but empty)
            with contextlib.suppress(BlockingIOError):
                self.sock._sock.send(self.outgoing.read())
        return out
