"""The server framework under the test servers (tests/servers.py): a threaded TCP server on
127.0.0.1 that runs a handler per connection, the connection and request helpers handlers use,
and sse-starlette under uvicorn in a subprocess.

Every server listens on a free port, is started when made, is a context manager and stops
cleanly: no thread or process is left behind, and each one stops by itself after ``max_life_s``.
Run as a script (``python tests/serverkit.py sse-starlette ...``) this module is the sse-starlette
app that :class:`SubprocessServer` runs.
"""

from __future__ import annotations

import base64
import contextlib
import json
import os
import select
import shutil
import socket
import ssl
import struct
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

HOST = "127.0.0.1"
MAX_HEAD_BYTES = 64 * 1024 * 1024  # what a server here reads of one request head before giving up
SSE_HEADERS = {"Content-Type": "text/event-stream", "Cache-Control": "no-cache"}
HTTP2_SETTINGS_FRAME = b"\x00\x00\x00\x04\x00\x00\x00\x00\x00"  # length 0, type SETTINGS, no flags, stream 0
HTTP2_GOAWAY_PROTOCOL_ERROR = b"\x00\x00\x08\x07\x00\x00\x00\x00\x00" + struct.pack(">II", 0, 1)
TLS_ALERT_UNEXPECTED_MESSAGE = b"\x15\x03\x03\x00\x02\x02\x0a"  # alert record, TLS 1.2, fatal, unexpected_message
APIG_413_BODY = '{"error_code":"APIG.0201","error_msg":"Request entity too large.","request_id":"{request_id}"}'
APIG_500_BODY = '{"error_code":"APIG.0201","error_msg":"Backend unavailable.","request_id":"{request_id}"}'
REASONS = {100: "Continue", 200: "OK", 204: "No Content", 301: "Moved Permanently", 302: "Found",
           400: "Bad Request", 401: "Unauthorized", 403: "Forbidden", 404: "Not Found", 408: "Request Timeout",
           413: "Request Entity Too Large", 429: "Too Many Requests", 500: "Internal Server Error",
           502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Timeout"}


# --------------------------------------------------------------------------------------------------------------
# Requests and connections


@dataclass
class Request:
    """One request as a server here received it."""

    raw: bytes  # head and body as read off the wire
    method: str
    target: str
    version: str
    headers: list[tuple[str, str]]
    body: bytes = b""  # decoded (chunked framing removed)

    @property
    def head(self) -> bytes:
        return self.raw[: self.raw.index(b"\r\n\r\n") + 4]

    def header(self, name: str, default: str | None = None) -> str | None:
        name = name.lower()
        return next((v for k, v in self.headers if k.lower() == name), default)

    @property
    def keep_alive(self) -> bool:
        conn = (self.header("connection") or "").lower()
        if self.version == "HTTP/1.0":
            return "keep-alive" in conn
        return "close" not in conn

    def json(self):
        return json.loads(self.body)


def parse_head(head: bytes) -> tuple[str, str, str, list[tuple[str, str]]]:
    """Request line and headers of a head ending in CRLF CRLF (a bare LF is taken too)."""
    lines = head.replace(b"\r\n", b"\n").split(b"\n")
    parts = lines[0].decode("latin-1").split(" ")
    method, target, version = (parts + ["", "", ""])[:3]
    headers = []
    for line in lines[1:]:
        if b":" in line:
            k, v = line.split(b":", 1)
            headers.append((k.decode("latin-1").strip(), v.decode("latin-1").strip()))
    return method, target, version, headers


def parse_request(raw: bytes) -> Request:
    """A raw request (as in ``server.requests``) parsed, its chunked body decoded."""
    end = raw.index(b"\r\n\r\n") + 4
    method, target, version, headers = parse_head(raw[:end])
    req = Request(raw, method, target, version, headers)
    rest = raw[end:]
    if "chunked" in (req.header("transfer-encoding") or "").lower():
        body = b""
        while rest:
            size_line, _, rest = rest.partition(b"\r\n")
            size = int(size_line.split(b";")[0], 16)
            if size == 0:
                break
            body, rest = body + rest[:size], rest[size + 2:]
        req.body = body
    else:
        req.body = rest
    return req


def take_request(data: bytes) -> tuple[Request | None, bytes]:
    """The first complete request in ``data`` (head, plus a Content-Length body) and the bytes after it."""
    data = data.lstrip(b"\r\n")
    end = data.find(b"\r\n\r\n")
    if end < 0:
        return None, data
    method, target, version, headers = parse_head(data[: end + 4])
    req = Request(data[: end + 4], method, target, version, headers)
    length = req.header("content-length") or "0"
    size = int(length) if length.isdigit() else 0
    if len(data) - end - 4 < size:
        return None, data
    req.body = data[end + 4: end + 4 + size]
    req.raw += req.body
    return req, data[len(req.raw):]


class Closed(Exception):
    """The peer went away, the connection timed out, or the server is stopping."""


class Conn:
    """One accepted connection: buffered reads of requests, writes, waits that end when the server stops."""

    def __init__(self, server: ScriptedServer, sock: socket.socket, addr) -> None:
        self.server = server
        self.sock = sock
        self.addr = addr
        self.buf = b""
        self.bytes_sent = 0

    @property
    def stopping(self) -> bool:
        return self.server.stopping

    def recv(self, n: int = 65536) -> bytes:
        """Some bytes, b"" at the peer's end; Closed on a timeout, a reset, or the server stopping."""
        if self.stopping:
            raise Closed
        try:
            return self.sock.recv(n)
        except (OSError, ssl.SSLError) as err:
            raise Closed from err

    def send(self, data: bytes) -> None:
        if self.stopping:
            raise Closed
        try:
            self.sock.sendall(data)
        except (OSError, ssl.SSLError) as err:
            raise Closed from err
        self.bytes_sent += len(data)

    def wait(self, seconds: float) -> None:
        """Sleep, ending early with Closed if the server stops."""
        if seconds > 0 and self.server._stop.wait(seconds):
            raise Closed

    def read_request(self, *, read_body: bool = True, send_continue: bool = True) -> Request | None:
        """The next request, recorded on the server; None if the peer closed (or stopped) between requests.

        ``read_body=False`` leaves the body unread (the caller closes without it); ``send_continue`` answers
        ``Expect: 100-continue`` with a 100 before reading the body, as servers do.
        """
        while True:
            self.buf = self.buf.lstrip(b"\r\n")
            end = self.buf.find(b"\r\n\r\n")
            if end >= 0:
                break
            if len(self.buf) > MAX_HEAD_BYTES:
                self.server._fragment(self.buf)
                raise Closed
            try:
                data = self.recv()
            except Closed:
                data = b""
            if not data:
                if self.buf:
                    self.server._fragment(self.buf)
                return None
            self.buf += data
        head, self.buf = self.buf[: end + 4], self.buf[end + 4:]
        method, target, version, headers = parse_head(head)
        req = Request(head, method, target, version, headers)
        if read_body:
            if send_continue and (req.header("expect") or "").lower() == "100-continue":
                self.send(b"HTTP/1.1 100 Continue\r\n\r\n")
            raw_body, req.body = self._read_body(req)
            req.raw = head + raw_body
        self.server._record(req)
        return req

    def _read_exact(self, n: int) -> bytes:
        while len(self.buf) < n:
            data = self.recv()
            if not data:
                raise Closed
            self.buf += data
        out, self.buf = self.buf[:n], self.buf[n:]
        return out

    def _read_line(self) -> bytes:
        while b"\r\n" not in self.buf:
            data = self.recv()
            if not data:
                raise Closed
            self.buf += data
        line, _, self.buf = self.buf.partition(b"\r\n")
        return line + b"\r\n"

    def _read_body(self, req: Request) -> tuple[bytes, bytes]:
        if "chunked" in (req.header("transfer-encoding") or "").lower():
            raw, body = b"", b""
            while True:
                size_line = self._read_line()
                raw += size_line
                size = int(size_line.split(b";")[0].strip() or b"0", 16)
                if size == 0:
                    while True:  # trailers, up to the empty line
                        line = self._read_line()
                        raw += line
                        if line == b"\r\n":
                            return raw, body
                chunk = self._read_exact(size + 2)
                raw, body = raw + chunk, body + chunk[:-2]
        length = int(req.header("content-length") or 0)
        body = self._read_exact(length)
        return body, body

    def drain(self, seconds: float, until: bytes | None = None) -> bytes:
        """Whatever the peer sends within ``seconds`` (or until it closes, or ``until`` arrives), so that a
        close after it is a FIN, not a RST."""
        got, deadline = self.buf, time.monotonic() + seconds
        self.buf = b""
        while (left := deadline - time.monotonic()) > 0 and not self.stopping and not (until and until in got):
            try:
                ready, _, _ = select.select([self.sock], [], [], min(left, 0.05))
                if not ready:
                    continue
                data = self.sock.recv(65536)
            except (OSError, ValueError, ssl.SSLError):
                break
            if not data:
                break
            got += data
        return got

    def peer_closed(self, seconds: float) -> bool:
        """Waits up to ``seconds`` for the peer to close (reading and dropping what it sends)."""
        deadline = time.monotonic() + seconds
        while (left := deadline - time.monotonic()) > 0:
            if self.stopping:
                return True
            try:
                ready, _, _ = select.select([self.sock], [], [], min(left, 0.1))
                if ready and not self.sock.recv(65536):
                    return True
            except (OSError, ValueError, ssl.SSLError):
                return True
        return False

    def reset(self) -> None:
        """Close with a TCP RST (SO_LINGER on, timeout 0)."""
        with contextlib.suppress(OSError):
            self.sock.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
        self.close()

    def close(self) -> None:
        with contextlib.suppress(OSError):
            self.sock.close()

    # responses

    def send_response(self, status: int, body: bytes = b"", headers: dict[str, str] | None = None,
                      *, keep_alive: bool = True, length: bool = True) -> None:
        head = response_head(status, headers, keep_alive=keep_alive,
                             content_length=len(body) if length else None)
        self.send(head + body)

    def start_chunked(self, status: int = 200, headers: dict[str, str] | None = None, *,
                      keep_alive: bool = True) -> None:
        self.send(response_head(status, {**SSE_HEADERS, **(headers or {})}, keep_alive=keep_alive, chunked=True))

    def send_chunk(self, data: bytes) -> None:
        if data:
            self.send(b"%x\r\n%s\r\n" % (len(data), data))

    def end_chunked(self) -> None:
        self.send(b"0\r\n\r\n")


def response_head(status: int, headers: dict[str, str] | None = None, *, keep_alive: bool = True,
                  content_length: int | None = None, chunked: bool = False) -> bytes:
    lines = [f"HTTP/1.1 {status} {REASONS.get(status, 'Status')}"]
    given = {k.lower() for k in (headers or {})}
    lines += [f"{k}: {v}" for k, v in (headers or {}).items()]
    if chunked and "transfer-encoding" not in given:
        lines.append("Transfer-Encoding: chunked")
    elif content_length is not None and "content-length" not in given:
        lines.append(f"Content-Length: {content_length}")
    if "connection" not in given:
        lines.append("Connection: keep-alive" if keep_alive else "Connection: close")
    return ("\r\n".join(lines) + "\r\n\r\n").encode("latin-1")


def sse_event(k: int, *, stamp: bool = False, event_id: int | None = None, t_send_ns: int | None = None) -> bytes:
    """``data: {"i": k}`` (with ``"t_send_ns"`` when stamped), an ``id:`` line first when given."""
    payload = {"i": k}
    if stamp or t_send_ns is not None:
        payload["t_send_ns"] = time.time_ns() if t_send_ns is None else t_send_ns
    out = b"" if event_id is None else b"id: %d\n" % event_id
    return out + b"data: " + json.dumps(payload).encode() + b"\n\n"


# --------------------------------------------------------------------------------------------------------------
# The threaded server


class ScriptedServer:
    """A threaded TCP server on 127.0.0.1 running ``handle(conn)`` for each connection, in its own thread.

    Stops at ``stop()`` (or leaving ``with``) or by itself after ``max_life_s``: the listener closes, live
    connections are shut down (waking any blocked read, write or wait) and every thread is joined.
    """

    def __init__(self, handle: Callable[[Conn], None], *, name: str = "server", path: str = "/stream",
                 tls: ssl.SSLContext | None = None, max_life_s: float = 60.0, idle_timeout_s: float = 10.0,
                 on_plaintext: Callable[[Conn], None] | None = None) -> None:
        self.name = name
        self.path = path
        self.handle = handle
        self.tls = tls
        self.on_plaintext = on_plaintext
        self.max_life_s = max_life_s
        self.idle_timeout_s = idle_timeout_s
        self.received: list[Request] = []
        self.fragments: list[bytes] = []  # partial request heads left when a peer closed mid-head
        self.errors: list[BaseException] = []
        self.connections = 0
        self._lock = threading.Lock()
        self.tls_resumed: list[bool] = []  # TLS: per handshake, whether it resumed an earlier session
        self._stop = threading.Event()
        self._live: dict[int, socket.socket] = {}
        self._threads: set[threading.Thread] = set()
        self._listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
        self._listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        self._listener.bind((HOST, 0))
        self._listener.listen(128)
        self.host, self.port = HOST, self._listener.getsockname()[1]
        self._deadline = time.monotonic() + max_life_s
        self._acceptor = threading.Thread(target=self._accept_loop, name=f"{name}-accept", daemon=True)
        self._acceptor.start()

    # -- what tests read

    @property
    def scheme(self) -> str:
        return "https" if self.tls else "http"

    @property
    def base_url(self) -> str:
        return f"{self.scheme}://{self.host}:{self.port}"

    @property
    def url(self) -> str:
        return self.base_url + self.path

    @property
    def requests(self) -> list[bytes]:
        with self._lock:
            return [r.raw for r in self.received]

    @property
    def stopping(self) -> bool:
        return self._stop.is_set() or time.monotonic() > self._deadline

    def __repr__(self) -> str:
        return f"<{self.name} {self.url} connections={self.connections} requests={len(self.received)}>"

    # -- life

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        self._stop.set()
        if self._acceptor.is_alive() and threading.current_thread() is not self._acceptor:
            self._acceptor.join(timeout)
        self._close_all()
        deadline = time.monotonic() + timeout
        with self._lock:
            threads = list(self._threads)
        for t in threads:
            t.join(max(0.0, deadline - time.monotonic()))
        left = [t.name for t in threads if t.is_alive()]
        if left:
            raise RuntimeError(f"{self.name}: threads still running after stop: {left}")

    def _close_all(self) -> None:
        with contextlib.suppress(OSError):
            self._listener.close()
        with self._lock:
            socks = list(self._live.values())
        for s in socks:
            with contextlib.suppress(OSError):
                s.shutdown(socket.SHUT_RDWR)

    def _accept_loop(self) -> None:
        try:
            while not self.stopping:
                ready, _, _ = select.select([self._listener], [], [], 0.05)
                if not ready:
                    continue
                try:
                    sock, addr = self._listener.accept()
                except OSError:
                    continue
                with self._lock:
                    self.connections += 1
                    n = self.connections
                t = threading.Thread(target=self._serve, args=(sock, addr), name=f"{self.name}-conn{n}",
                                     daemon=True)
                with self._lock:
                    self._threads.add(t)
                    self._threads = {x for x in self._threads if x.is_alive() or x is t}
                t.start()
        except (OSError, ValueError):
            pass
        finally:
            self._stop.set()  # at max_life_s too: ends every wait,
            self._close_all()  # and wakes every blocked read or write

    def _serve(self, sock: socket.socket, addr) -> None:
        key = id(sock)
        with self._lock:
            self._live[key] = sock
        conn = None
        try:
            sock.settimeout(self.idle_timeout_s)
            sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
            if self.tls is not None:
                tls_sock = self._wrap_tls(sock, addr)
                if tls_sock is None:
                    return
                sock = tls_sock
                with self._lock:
                    self._live[key] = sock
            conn = Conn(self, sock, addr)
            self.handle(conn)
        except Closed:
            pass
        except (OSError, ssl.SSLError):
            pass
        except BaseException as err:  # a bug in the handler: kept for the test to see
            with self._lock:
                self.errors.append(err)
        finally:
            with self._lock:
                self._live.pop(key, None)
            with contextlib.suppress(OSError):
                (conn.sock if conn else sock).close()

    def _wrap_tls(self, sock: socket.socket, addr) -> ssl.SSLSocket | None:
        try:
            first = sock.recv(1, socket.MSG_PEEK)
        except OSError:
            return None
        if first and first != b"\x16":  # not a TLS handshake record: plain bytes on the TLS port
            if self.on_plaintext is not None:
                self.on_plaintext(Conn(self, sock, addr))
            return None
        if not first:
            return None
        tls_sock = self.tls.wrap_socket(sock, server_side=True, do_handshake_on_connect=False)
        try:
            tls_sock.do_handshake()
        except (OSError, ssl.SSLError):
            tls_sock.close()
            return None
        with self._lock:  # each handshake: whether it resumed an earlier session
            self.tls_resumed.append(tls_sock.session_reused)
        return tls_sock

    def _record(self, req: Request) -> None:
        with self._lock:
            self.received.append(req)

    def _fragment(self, data: bytes) -> None:
        with self._lock:
            self.fragments.append(data)

    def _record_raw(self, data: bytes, *, final: bool = True) -> bytes:
        """Records the complete requests in bytes read off the wire as they came (a head, and its body when it
        has a Content-Length and arrived whole); returns the rest, kept in ``fragments`` if ``final``."""
        while True:
            req, data = take_request(data)
            if req is None:
                break
            self._record(req)
        if data and final:
            self._fragment(data)
        return data


def serve_keepalive(conn: Conn, respond: Callable[[Conn, Request], bool]) -> None:
    """Requests one after another on the connection while ``respond`` (and the client) keep it alive."""
    while (req := conn.read_request()) is not None:
        if not respond(conn, req) or not req.keep_alive:
            return


def send_sse(conn: Conn, events: int, gap_s: float = 0.0, *, stamp: bool = False, first_delay_s: float = 0.0,
             keep_alive: bool = True, headers: dict[str, str] | None = None) -> None:
    """A 200 SSE response, chunked: ``events`` events ``gap_s`` apart, then the closing chunk."""
    conn.start_chunked(200, headers, keep_alive=keep_alive)
    conn.wait(first_delay_s)
    for k in range(events):
        if k:
            conn.wait(gap_s)
        conn.send_chunk(sse_event(k, stamp=stamp))
    conn.end_chunked()


# --------------------------------------------------------------------------------------------------------------
# 1. sse-starlette under uvicorn, in a subprocess


class SubprocessServer:
    """sse-starlette's ``EventSourceResponse`` on Starlette, served by uvicorn in a child process.

    The child logs each request (method, target, headers, body, client address) to a JSON-lines file;
    ``requests`` rebuilds each as HTTP/1.1 bytes from that log (uvicorn gives header names lower-cased), and
    ``connections`` counts distinct client addresses that sent a request.
    """

    def __init__(self, *, events: int = 5, gap_s: float = 0.0, path: str = "/stream", ping_s: float = 3600,
                 first_delay_s: float = 0.0, stamp: bool = False, sep: str = "\r\n", http: str = "auto",
                 status: int = 200, max_life_s: float = 60.0, start_timeout_s: float = 20.0) -> None:
        self.name = "sse-starlette"
        self.path = path
        self.host = HOST
        self._dir = Path(tempfile.mkdtemp(prefix="sse-starlette-"))
        port_file, self.log_file, out = self._dir / "port", self._dir / "requests.jsonl", self._dir / "output"
        self.log_file.touch()
        cmd = [sys.executable, str(Path(__file__).resolve()), "sse-starlette", "--port-file", str(port_file),
               "--log-file", str(self.log_file), "--events", str(events), "--gap-s", str(gap_s), "--path", path,
               "--ping-s", str(ping_s), "--first-delay-s", str(first_delay_s), "--sep", sep, "--http", http,
               "--status", str(status), "--max-life-s", str(max_life_s), "--parent-pid", str(os.getpid())]
        if stamp:
            cmd.append("--stamp")
        self._out = out.open("wb")
        self.proc = subprocess.Popen(cmd, stdout=self._out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL)
        deadline = time.monotonic() + start_timeout_s
        while not port_file.exists():
            if self.proc.poll() is not None or time.monotonic() > deadline:
                output = self.output()
                self.stop()
                raise RuntimeError(f"sse-starlette server did not start:\n{output}")
            time.sleep(0.02)
        self.port = int(port_file.read_text())

    base_url = ScriptedServer.base_url
    url = ScriptedServer.url
    scheme = "http"
    errors: tuple = ()  # the child's errors are in output()

    def output(self) -> str:
        with contextlib.suppress(OSError):
            self._out.flush()
        try:
            return (self._dir / "output").read_text(errors="replace")
        except OSError:
            return ""

    @property
    def log(self) -> list[dict]:
        try:
            lines = self.log_file.read_text().splitlines()
        except OSError:
            return []
        return [json.loads(line) for line in lines if line.strip()]

    @property
    def received(self) -> list[Request]:
        out = []
        for entry in self.log:
            headers = [(k, v) for k, v in entry["headers"]]
            body = base64.b64decode(entry["body"])
            head = f"{entry['method']} {entry['target']} HTTP/{entry['http_version']}\r\n"
            head += "".join(f"{k}: {v}\r\n" for k, v in headers) + "\r\n"
            out.append(Request(head.encode("latin-1") + body, entry["method"], entry["target"],
                               f"HTTP/{entry['http_version']}", headers, body))
        return out

    @property
    def requests(self) -> list[bytes]:
        return [r.raw for r in self.received]

    @property
    def connections(self) -> int:
        return len({tuple(e["client"]) for e in self.log})

    def __enter__(self):
        return self

    def __exit__(self, *exc) -> None:
        self.stop()

    def stop(self, timeout: float = 5.0) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout)
        self._out.close()
        shutil.rmtree(self._dir, ignore_errors=True)

    def __repr__(self) -> str:
        return f"<sse-starlette {self.url} pid={self.proc.pid}>"



def _sse_starlette_main(argv: list[str]) -> None:
    """The child process: the app, uvicorn on a socket bound here, the port written once it serves."""
    import argparse
    import asyncio

    import uvicorn
    from sse_starlette.sse import EventSourceResponse
    from starlette.applications import Starlette
    from starlette.routing import Route

    p = argparse.ArgumentParser()
    p.add_argument("--port-file", required=True)
    p.add_argument("--log-file", required=True)
    p.add_argument("--events", type=int, default=5)
    p.add_argument("--gap-s", type=float, default=0.0)
    p.add_argument("--first-delay-s", type=float, default=0.0)
    p.add_argument("--path", default="/stream")
    p.add_argument("--ping-s", type=float, default=3600)
    p.add_argument("--sep", default="\r\n")
    p.add_argument("--http", default="auto")
    p.add_argument("--status", type=int, default=200)
    p.add_argument("--stamp", action="store_true")
    p.add_argument("--max-life-s", type=float, default=60.0)
    p.add_argument("--parent-pid", type=int, default=0)
    args = p.parse_args(argv)
    log = open(args.log_file, "a", buffering=1)  # noqa: SIM115 - open for the process's life

    async def stream(request):
        body = await request.body()
        target = request.scope.get("raw_path", request.url.path.encode()).decode("latin-1")
        if request.scope.get("query_string"):
            target += "?" + request.scope["query_string"].decode("latin-1")
        log.write(json.dumps({
            "method": request.method, "target": target, "http_version": request.scope.get("http_version", "1.1"),
            "headers": [[k.decode("latin-1"), v.decode("latin-1")] for k, v in request.scope["headers"]],
            "body": base64.b64encode(body).decode(), "client": list(request.scope.get("client") or ("", 0)),
        }) + "\n")

        async def events():
            if args.first_delay_s:
                await asyncio.sleep(args.first_delay_s)
            for k in range(args.events):
                if k and args.gap_s:
                    await asyncio.sleep(args.gap_s)
                payload = {"i": k}
                if args.stamp:
                    payload["t_send_ns"] = time.time_ns()
                yield {"data": json.dumps(payload)}

        return EventSourceResponse(events(), status_code=args.status, ping=args.ping_s, sep=args.sep)

    app = Starlette(routes=[Route(args.path, stream, methods=["GET", "POST"])])
    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    sock.bind((HOST, 0))

    class Server(uvicorn.Server):
        async def startup(self, sockets=None):
            await super().startup(sockets)
            tmp = args.port_file + ".tmp"
            Path(tmp).write_text(str(sock.getsockname()[1]))
            os.replace(tmp, args.port_file)

    config = uvicorn.Config(app, log_level="warning", lifespan="off", http=args.http, timeout_keep_alive=5,
                            timeout_graceful_shutdown=1, access_log=False)
    server = Server(config)

    def watchdog() -> None:  # bounded: stop at max_life_s, or when the test process is gone
        deadline = time.monotonic() + args.max_life_s
        while time.monotonic() < deadline and (not args.parent_pid or os.getppid() == args.parent_pid):
            time.sleep(0.2)
        server.should_exit = True
        time.sleep(3)
        os._exit(0)

    threading.Thread(target=watchdog, daemon=True).start()
    server.run(sockets=[sock])


def main(argv: list[str]) -> None:
    if argv[:1] == ["sse-starlette"]:
        _sse_starlette_main(argv[1:])
    else:
        raise SystemExit("usage: serverkit.py sse-starlette --port-file F --log-file F [options]")


if __name__ == "__main__":
    main(sys.argv[1:])
