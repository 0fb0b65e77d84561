"""TLS streams decrypted in C (sseload._reader.TLSRoute) on the OpenSSL objects of Python's ssl
module: the same plaintext as Python's decryption, however the records are split across reads,
the same errors, the connection still Python's afterwards, and a clean fallback where refused."""

from __future__ import annotations

import contextlib
import random
import select
import socket
import ssl
import time

import pytest

from sseload.protocol.classify import classify_error
from sseload.transport.tuning import Tuning
from tests import servers
from tests.conftest import pair

_reader = pytest.importorskip("sseload._reader", reason="the native reader was not built")
trustme = pytest.importorskip("trustme")


class MemoryTLS:
    """A client and a server TLS connection joined in memory (no sockets): the server's records
    are handed over by hand, so a test chooses how they are split."""

    def __init__(self, version: ssl.TLSVersion = ssl.TLSVersion.TLSv1_3) -> None:
        ca = trustme.CA()
        server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
        ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
        client_ctx = ssl.create_default_context()
        ca.configure_trust(client_ctx)
        for ctx in (server_ctx, client_ctx):
            ctx.minimum_version = ctx.maximum_version = version
        self.c_in, self.c_out, self.s_in, self.s_out = (ssl.MemoryBIO() for _ in range(4))
        self.client = client_ctx.wrap_bio(self.c_in, self.c_out, server_hostname="127.0.0.1")
        self.server = server_ctx.wrap_bio(self.s_in, self.s_out, server_side=True)
        for _ in range(10):
            done = 0
            for side in (self.client, self.server):
                try:
                    side.do_handshake()
                    done += 1
                except ssl.SSLWantReadError:
                    pass
            self.s_in.write(self.c_out.read())
            self.c_in.write(self.s_out.read())
            if done == 2:
                break
        assert self.client.version() == version.name.replace("v1_", "v1.")

    def route(self, fd: int = -1):
        import _ssl

        return _reader.TLSRoute(self.client._sslobj, self.c_in, self.c_out, fd, getattr(_ssl, "__file__", None))

    def records(self, *messages: bytes) -> bytes:
        """The server writes each message (one TLS record or more each): the ciphertext."""
        for message in messages:
            self.server.write(message)
        return self.s_out.read()


@pytest.mark.unit
@pytest.mark.parametrize("version", [ssl.TLSVersion.TLSv1_2, ssl.TLSVersion.TLSv1_3], ids=["TLSv1.2", "TLSv1.3"])
def test_any_split_of_the_records_decrypts_to_what_the_server_wrote(version):
    tls = MemoryTLS(version)
    route = tls.route()
    rng = random.Random(7)
    messages = [b'data: {"seq":%d,"pad":"%s"}\n\n' % (i, b"x" * rng.randrange(0, 40000)) for i in range(40)]
    wire = tls.records(*messages)
    cuts = sorted(rng.sample(range(1, len(wire)), 300)) + [1, 2, 3, 5]  # 1-byte pieces, records cut anywhere
    cuts = sorted(set(cuts))
    plain = b"".join(route.decrypt(wire[a:b]) for a, b in zip([0, *cuts], [*cuts, len(wire)], strict=True))
    assert plain == b"".join(messages)
    assert route.reads == len(cuts) + 1


@pytest.mark.unit
def test_the_connection_is_pythons_again_after_the_routed_reads():
    """The next request is encrypted by Python's ssl and its answer read there: one TLS state."""
    tls = MemoryTLS()
    assert tls.route().decrypt(tls.records(b"first answer")) == b"first answer"
    tls.client.write(b"GET /next HTTP/1.1\r\n\r\n")
    tls.s_in.write(tls.c_out.read())
    assert tls.server.read(100) == b"GET /next HTTP/1.1\r\n\r\n"
    tls.c_in.write(tls.records(b"second answer"))
    assert tls.client.read(100) == b"second answer"


@pytest.mark.unit
def test_close_notify_ends_the_plaintext_without_an_error():
    tls = MemoryTLS()
    tls.server.write(b"last words")
    with contextlib.suppress(ssl.SSLWantReadError):  # it waits for the client's close_notify
        tls.server.unwrap()
    assert tls.route().decrypt(tls.s_out.read()) == b"last words"


@pytest.mark.unit
def test_a_corrupted_record_is_a_tls_error_a_stream_ends_as_a_reset():
    from sseload.transport.client import StreamRules

    tls = MemoryTLS()
    wire = bytearray(tls.records(b"data: x\n\n"))
    wire[-3] ^= 0x55  # inside the record's tag
    with pytest.raises(ssl.SSLError) as caught:
        tls.route().decrypt(bytes(wire))
    assert "BAD_RECORD_MAC" in caught.value.reason, caught.value.reason
    outcome, text = classify_error(caught.value, "read", StreamRules(), "h")
    assert outcome.value == "reset" and text.startswith("TLS error: ") and "BAD_RECORD_MAC" in text


@pytest.mark.unit
def test_objects_that_are_not_one_connections_are_refused():
    a, b = MemoryTLS(), MemoryTLS()
    with pytest.raises(TypeError):
        _reader.TLSRoute(object(), a.c_in, a.c_out, -1, None)
    with pytest.raises(ValueError, match="laid out"):  # another connection's BIOs: the check catches it
        _reader.TLSRoute(a.client._sslobj, b.c_in, b.c_out, -1, None)


def test_a_routed_tls_stream_feeds_its_log_from_the_socket():
    """dispatch with (log, on_read, on_fed, TLSRoute): records off a real socket, events in the log."""
    _sse = pytest.importorskip("sseload._sse")
    tls = MemoryTLS()
    reader = _reader.Reader()
    client, server = pair()
    try:
        reader.add(client.fileno(), 1)
        log = _sse.EventLog(truth_key=b'"t":', chunked=True)
        heard = []
        route = {1: (log, lambda *a: heard.append(("on_read", a)), lambda t, fed: heard.append(("on_fed", fed)),
                     tls.route(client.fileno()))}
        pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in
                  (b'data: {"t":1}\n\n', b'data: {"t":2}\n\n', b"event: done\ndata: {}\n\n")] + [b"0\r\n\r\n"]
        for piece in pieces:
            wire = tls.records(piece)
            server.sendall(wire[:7])  # a record's header in one read, the rest in the next
            time.sleep(0.01)
            server.sendall(wire[7:])
            time.sleep(0.01)
            select.select([reader.fileno()], [], [], 1)
            reader.dispatch(route)
        assert len(log) == 3 and log.complete and log.bytes_in == sum(map(len, pieces))
        assert [kind for kind, _ in heard] == ["on_fed", "on_fed"]  # the done event, then the body's end
        assert reader.stats()["tls_reads"] >= 8
    finally:
        reader.close()
        client.close()
        server.close()


# --- through the client, against an independent TLS server ---

def _stream_from(srv, tuning: Tuning | None = None):
    from sseload.auth.schemes import Authenticator
    from sseload.record.records import EventBuffer
    from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules

    conn = SSEConnection(Endpoint.resolve(srv.url), StreamRules(deadline_s=20, read_timeout_s=5), Authenticator(),
                         tls=srv.ssl_context(), tuning=tuning)
    try:
        records = []
        for _ in range(3):  # one connection, kept alive
            events = EventBuffer()
            records.append((conn.stream(PreparedRequest.build("GET", srv.url, {}, b""), events), events))
        return records
    finally:
        conn.close()


@pytest.fixture
def native_reactor(monkeypatch):
    """The process's reader, fresh for this test (so what it says of TLS is this test's)."""
    from sseload.transport import reactor as reactor_mod

    if reactor_mod._reader is None:
        pytest.skip("the native reader was not built")
    monkeypatch.setattr(reactor_mod, "_reactor", None)
    tuning = Tuning.from_env()
    if tuning.reader != "native" or not tuning.route_body:
        pytest.skip("the native reader with routed bodies is not the configured one")
    fresh = reactor_mod.reactor(tuning)
    yield fresh, tuning
    fresh._wakeup.stop()
    fresh._reader.close()


def test_tls_streams_from_an_independent_server_are_decrypted_in_c(start_server, native_reactor):
    reactor, tuning = native_reactor
    srv = start_server(servers.tls_server, events=60, gap_s=0.002, stamp=True)
    records = _stream_from(srv, tuning)
    assert [(r.outcome.value, r.events, r.reused) for r, _ in records] == [("ok", 60, False), ("ok", 60, True),
                                                                          ("ok", 60, True)]
    assert reactor.tls_in_c is True
    assert reactor.stats()["tls_reads"] >= 3 * 50  # most reads: the heads' are Python's
    from sseload.transport.reactor import reader_info

    assert reader_info()["reader_tls_in_c"] is True


@pytest.mark.parametrize("why", ["refused", "switched off"])
def test_where_the_route_is_refused_or_switched_off_python_decrypts_and_run_json_says_why(
        start_server, native_reactor, monkeypatch, request, why):
    import dataclasses

    from sseload.transport import reactor as reactor_mod

    def refuse(*args):
        raise ValueError("this Python's ssl objects are not laid out as TLSRoute expects")

    reactor, tuning = native_reactor
    if why == "refused":
        monkeypatch.setattr(reactor_mod._reader, "TLSRoute", refuse)
        expected = "laid out"
    else:  # SSELOAD_TLS_IN_C=0
        reactor._wakeup.stop()
        reactor._reader.close()
        monkeypatch.setattr(reactor_mod, "_reactor", None)
        tuning = dataclasses.replace(tuning, tls_in_c=False)
        reactor = reactor_mod.reactor(tuning)
        request.addfinalizer(reactor._wakeup.stop)
        request.addfinalizer(reactor._reader.close)
        expected = "SSELOAD_TLS_IN_C=0"
    srv = start_server(servers.tls_server, events=60, gap_s=0.002)
    records = _stream_from(srv, tuning)
    assert [(r.outcome.value, r.events) for r, _ in records] == [("ok", 60)] * 3
    info = reactor_mod.reader_info()
    assert info["reader_tls_in_c"] is False and expected in info["reader_tls_in_c_why"]
    assert reactor.stats()["tls_reads"] == 0
    assert info["reader_routes_body"] is True  # the switch is TLS's alone


def test_a_broken_record_mid_body_is_a_reset_with_the_events_before_it(native_reactor):
    """An independent TLS server (Python's ssl on its side) that, mid-body, writes a record nobody can
    decrypt: the C route raises the TLS error, the stream ends `reset` naming it, its events kept."""
    import os
    import threading

    reactor, tuning = native_reactor
    ca = trustme.CA()
    server_ctx = ssl.create_default_context(ssl.Purpose.CLIENT_AUTH)
    ca.issue_cert("127.0.0.1").configure_cert(server_ctx)
    client_ctx = ssl.create_default_context()
    ca.configure_trust(client_ctx)
    listener = socket.create_server(("127.0.0.1", 0))

    def serve():
        raw, _ = listener.accept()
        with server_ctx.wrap_socket(raw, server_side=True) as tls:
            tls.recv(65536)
            tls.sendall(b"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream;charset=UTF-8\r\n"
                        b"Transfer-Encoding: chunked\r\n\r\n")
            for seq in range(2):
                time.sleep(0.03)
                event = b'data: {"seq":%d}\n\n' % seq
                tls.sendall(b"%x\r\n%s\r\n" % (len(event), event))
            time.sleep(0.03)
            os.write(tls.fileno(), b"\x17\x03\x03\x00\x20" + bytes(range(32)))  # application data, bad tag
            time.sleep(0.3)

    thread = threading.Thread(target=serve, daemon=True)
    thread.start()
    from sseload.auth.schemes import Authenticator
    from sseload.record.records import EventBuffer
    from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules

    url = f"https://127.0.0.1:{listener.getsockname()[1]}/s"
    conn = SSEConnection(Endpoint.resolve(url), StreamRules(deadline_s=10, read_timeout_s=5), Authenticator(),
                         tls=client_ctx, tuning=tuning)
    try:
        record = conn.stream(PreparedRequest.build("GET", url, {}, b""), EventBuffer())
    finally:
        conn.close()
        thread.join(5)
        listener.close()
    assert (record.outcome.value, record.events) == ("reset", 2), record.error
    assert record.error.startswith("TLS error: ") and "BAD_RECORD_MAC" in record.error, record.error
    assert reactor.stats()["tls_reads"] >= 2  # the events and the broken record were the C route's


# --- against the bench's C fixed-schedule target (bench/fixed_target.c): OpenSSL on the server side ---

def _fixed_target_binary():
    import importlib.util
    from pathlib import Path

    path = Path(__file__).resolve().parents[1] / "bench" / "fixed_target.py"
    spec = importlib.util.spec_from_file_location("fixed_target", path)
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    try:
        return module.binary()
    except module.BuildError as err:
        pytest.skip(str(err))


@pytest.fixture
def c_target(tmp_path):
    """Start bench/fixed_target.c (plain, or TLS with a trustme certificate): (url, client TLS context)."""
    import subprocess

    binary = _fixed_target_binary()
    procs = []

    def start(tls: bool, **workload):
        flags, ctx = [], None
        if tls:
            ca = trustme.CA()
            cert = ca.issue_cert("127.0.0.1")
            chain, key = tmp_path / "chain.pem", tmp_path / "key.pem"
            cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
            cert.private_key_pem.write_to_path(str(key))
            flags = ["--tls-cert", str(chain), "--tls-key", str(key)]
            ctx = ssl.create_default_context()
            ca.configure_trust(ctx)
        port_file = tmp_path / f"port-{len(procs)}"
        args = [x for k, v in workload.items() for x in (f"--{k.replace('_', '-')}", str(v))]
        procs.append(subprocess.Popen([str(binary), "--port", "0", "--port-file", str(port_file), *args, *flags]))
        deadline = time.monotonic() + 10
        while not port_file.exists():
            assert procs[-1].poll() is None and time.monotonic() < deadline, "the C target did not start"
            time.sleep(0.02)
        return f"{'https' if tls else 'http'}://127.0.0.1:{port_file.read_text()}", ctx

    yield start
    for proc in procs:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("tls", "key_update_at"), [(False, -1), (True, -1), (True, 10)],
                         ids=["http", "https", "https-key-update"])
def test_the_c_fixed_schedule_target_is_measured_plain_and_over_tls(c_target, native_reactor, tls, key_update_at):
    """The bench's TLS target (OpenSSL on the server side, nothing of sseload's): every event, kept
    alive, the send times read from decrypted data, TLS bodies decrypted in C; a TLS 1.3 KeyUpdate
    mid-stream (read in the C route; the client's own, asked for, goes with its next request)
    leaves the connection whole."""
    import json
    import urllib.request

    from sseload.auth.schemes import Authenticator
    from sseload.record.records import EventBuffer
    from sseload.transport.client import Endpoint, PreparedRequest, SSEConnection, StreamRules

    reactor, tuning = native_reactor
    url, ctx = c_target(tls, ttfe_ms=20, gap_ms=5, events=30, payload_bytes=64, key_update_at=key_update_at)
    conn = SSEConnection(Endpoint.resolve(url), StreamRules(deadline_s=20, read_timeout_s=5, completion="event:done"),
                         Authenticator(), tls=ctx, tuning=tuning)
    got = []
    try:
        for _ in range(3):
            events = EventBuffer()
            record = conn.stream(PreparedRequest.build("POST", url + "/v1/stream", {}, b'{"stream":true}'), events)
            got.append((record.outcome.value, record.events, record.reused, record.ttfe_ns > 15e6))
    finally:
        conn.close()
    assert got == [("ok", 31, False, True), ("ok", 31, True, True), ("ok", 31, True, True)]  # 30 and `done`
    assert sum(1 for sent in events.server_ns if sent > 0) == 30  # t_send_ns read from each (decrypted) event
    with urllib.request.urlopen(url + "/_sseload/stats", context=ctx, timeout=5) as answer:
        assert json.loads(answer.read())["events_sent"] == 90
    assert (reactor.stats()["tls_reads"] > 60) is tls
