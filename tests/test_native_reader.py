"""The native reader thread (sseload._reader): every read timed by its bytes' arrival, none lost."""

import array
import errno
import os
import select
import socket
import struct
import time

import pytest

from tests.conftest import pair

_reader = pytest.importorskip("sseload._reader", reason="the native reader was not built")


def drain_until(reader, count: int, timeout_s: float = 5.0) -> list:
    """Wait on the reader's eventfd, as the event loop does, until ``count`` reads came."""
    got: list = []
    deadline = time.monotonic() + timeout_s
    while len(got) < count and time.monotonic() < deadline:
        select.select([reader.fileno()], [], [], 0.1)
        got += reader.drain()
    return got


@pytest.fixture
def reader_and_pair():
    """A reader thread and one connected pair; all closed afterwards, whatever the test did."""
    reader = _reader.Reader()
    client, server = pair()
    yield reader, client, server
    reader.close()
    client.close()
    server.close()


@pytest.mark.unit
def test_the_reader_clock_is_perf_counter_ns():
    before = time.perf_counter_ns()
    native = _reader.now_ns()
    after = time.perf_counter_ns()
    assert before <= native <= after


def test_each_read_comes_with_its_token_and_the_time_it_returned(reader_and_pair):
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 7)
    sent_ns = []
    for i in range(5):
        sent_ns.append(time.perf_counter_ns())
        server.sendall(b"event %d\n" % i)
        time.sleep(0.02)
    reads = drain_until(reader, 5)
    assert [r[0] for r in reads] == [7] * 5
    assert b"".join(r[2] for r in reads) == b"".join(b"event %d\n" % i for i in range(5))
    for (_, t_ns, _, err), sent in zip(reads, sent_ns, strict=True):
        assert err == 0
        assert 0 <= t_ns - sent < 50_000_000  # when it was read, not when drained
    assert reader.stats()["reads"] == 5


def test_reads_wait_for_the_drain_with_their_own_times(reader_and_pair):
    """Draining late must not make the measurement late: times are taken by the thread."""
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 1)
    server.sendall(b"a")
    t_send = time.perf_counter_ns()
    time.sleep(0.2)  # the loop busy elsewhere
    (token, t_ns, data, err), = drain_until(reader, 1)
    assert (token, data, err) == (1, b"a", 0)
    assert t_ns - t_send < 50_000_000


def test_a_late_read_keeps_the_time_its_bytes_arrived(reader_and_pair):
    """The kernel's receive time, not the read's: a reader that comes late is not late."""
    reader, client, server = reader_and_pair
    t_send = time.perf_counter_ns()
    server.sendall(b"early")
    time.sleep(0.2)  # the bytes wait in the socket; the reader has not even been told of it
    reader.add(client.fileno(), 2)
    t_add = time.perf_counter_ns()
    (token, t_ns, data, err), = drain_until(reader, 1)
    assert (token, data, err) == (2, b"early", 0)
    assert t_send <= t_ns < t_send + 20_000_000 < t_add
    assert reader.stats()["stamped"] == 1


def test_merged_segments_carry_the_newest_arrival():
    """The limit of kernel times on TCP, pinned down: unread segments merge, the last one's time wins."""
    reader = _reader.Reader(window_ns=300_000_000)  # after its first read the thread sleeps 0.3 s
    client, server = pair()
    try:
        reader.add(client.fileno(), 3)
        server.sendall(b"wake;")
        assert [r[2] for r in drain_until(reader, 1)] == [b"wake;"]
        server.sendall(b"one;")
        time.sleep(0.1)
        t_second = time.perf_counter_ns()
        server.sendall(b"two;")
        (_token, t_ns, data, _err), = drain_until(reader, 1)
        assert data == b"one;two;"
        assert t_second <= t_ns < t_second + 20_000_000  # not the first's, not the (later) read's
    finally:
        reader.close()
        client.close()
        server.close()


def test_without_kernel_timestamps_a_read_is_timed_as_it_returns():
    reader = _reader.Reader(kernel_timestamps=False)
    client, server = pair()
    try:
        server.sendall(b"early")
        time.sleep(0.1)
        t_add = time.perf_counter_ns()
        reader.add(client.fileno(), 1)
        (_token, t_ns, data, _err), = drain_until(reader, 1)
        assert data == b"early" and t_ns >= t_add
        assert reader.stats()["stamped"] == 0
    finally:
        reader.close()
        client.close()
        server.close()


def test_a_read_window_bounds_the_wake_ups():
    """With window_ns the thread reads at most once per window, however the bytes trickle in."""
    window_ns = 20_000_000
    reader = _reader.Reader(window_ns=window_ns)
    pairs = [pair() for _ in range(10)]
    try:
        for token, (client, _server) in enumerate(pairs):
            reader.add(client.fileno(), token)
        start = time.perf_counter_ns()
        for _ in range(50):  # 500 sends over ~0.1 s+: unbatched, about one wake-up per send
            for _client, server in pairs:
                server.sendall(b"x")
            time.sleep(0.002)
        got = b""
        while len(got) < 500:
            select.select([reader.fileno()], [], [], 0.1)
            got += b"".join(r[2] for r in reader.drain())
        elapsed = time.perf_counter_ns() - start
        stats = reader.stats()
        # a wake-up that read sleeps out its window; the 50 ms lag ticks wake it too
        assert stats["wakeups"] <= elapsed / window_ns + elapsed / 50_000_000 + 2
        assert stats["reads"] < 500 and got == b"x" * 500
    finally:
        reader.close()
        for client, server in pairs:
            client.close()
            server.close()


@pytest.mark.unit
def test_bad_reader_settings_are_refused():
    with pytest.raises(ValueError, match="window_ns"):
        _reader.Reader(window_ns=-1)
    with pytest.raises(ValueError, match="max_bytes"):
        _reader.Reader(max_bytes=0)


def test_eof_is_reported_once_and_the_socket_leaves_the_poll_set(reader_and_pair):
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 3)
    server.sendall(b"last words")
    server.close()
    reads = drain_until(reader, 2)
    assert [(r[0], r[2], r[3]) for r in reads] == [(3, b"last words", 0), (3, b"", 0)]
    time.sleep(0.2)
    assert reader.drain() == []  # level-triggered EOF would otherwise repeat for ever


def test_a_reset_is_reported_with_its_errno(reader_and_pair):
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 4)
    server.setsockopt(socket.SOL_SOCKET, socket.SO_LINGER, struct.pack("ii", 1, 0))
    server.close()  # RST
    (token, _t, data, err), = drain_until(reader, 1)
    assert (token, data, err) == (4, b"", errno.ECONNRESET)
    assert isinstance(OSError(err, os.strerror(err)), ConnectionResetError)


def test_after_remove_the_thread_reads_nothing_more_from_the_socket(reader_and_pair):
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 5)
    server.sendall(b"one")
    assert len(drain_until(reader, 1)) == 1
    reader.remove(client.fileno())
    server.sendall(b"two")
    time.sleep(0.2)
    assert reader.drain() == []
    assert client.recv(10) == b"two"  # left in the socket for its owner
    reader.add(client.fileno(), 6)  # a keep-alive connection's next stream
    server.sendall(b"three")
    assert [(r[0], r[2]) for r in drain_until(reader, 1)] == [(6, b"three")]


def test_a_burst_larger_than_one_read_is_read_whole_without_more_arriving(reader_and_pair):
    """Each arrival is reported once (edge-triggered): a full buffer must be read again."""
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 8)
    burst = bytes(range(256)) * 1024  # 256 KiB, four reads' worth at least
    server.sendall(burst)
    got = b""
    deadline = time.monotonic() + 5
    while len(got) < len(burst) and time.monotonic() < deadline:
        select.select([reader.fileno()], [], [], 0.1)
        got += b"".join(r[2] for r in reader.drain())
    assert got == burst


def test_many_sockets_lose_no_byte():
    reader = _reader.Reader()
    pairs = [pair() for _ in range(50)]
    try:
        for token, (client, _server) in enumerate(pairs):
            reader.add(client.fileno(), token)
        for rounds in range(20):
            for token, (_client, server) in enumerate(pairs):
                server.sendall(b"%d:%d;" % (token, rounds))
        expected = {token: b"".join(b"%d:%d;" % (token, r) for r in range(20)) for token in range(50)}
        got = {token: b"" for token in range(50)}
        deadline = time.monotonic() + 5
        while got != expected and time.monotonic() < deadline:
            select.select([reader.fileno()], [], [], 0.1)
            for token, _t, data, err in reader.drain():
                assert err == 0
                got[token] += data
        assert got == expected
    finally:
        reader.close()
        for client, server in pairs:
            client.close()
            server.close()


def test_memory_is_bounded_when_nobody_drains():
    reader = _reader.Reader(max_bytes=1 << 20)
    client, server = pair()
    server.setblocking(False)
    try:
        reader.add(client.fileno(), 1)
        sent = 0
        deadline = time.monotonic() + 2
        while time.monotonic() < deadline:
            try:
                sent += server.send(b"x" * 65536)
            except BlockingIOError:
                time.sleep(0.01)
        reads = reader.drain()
        held = sum(len(r[2]) for r in reads)
        assert held <= (1 << 20) + 65536  # the thread stopped at the bound; TCP held the rest
        assert sent > held
        received = held
        deadline = time.monotonic() + 10
        while received < sent and time.monotonic() < deadline:  # and it goes on after a drain
            select.select([reader.fileno()], [], [], 0.1)
            received += sum(len(r[2]) for r in reader.drain())
        assert received == sent
    finally:
        reader.close()
        client.close()
        server.close()


def test_the_thread_samples_its_own_wake_up_lag_every_50_ms():
    from array import array

    reader = _reader.Reader()
    try:
        time.sleep(0.32)
        lags = array("q")
        lags.frombytes(reader.take_lags())
        assert 4 <= len(lags) <= 7
        assert all(0 <= lag < 50_000_000 for lag in lags)  # ns late, each
        assert reader.take_lags() == b""  # taken once
    finally:
        reader.close()


def _nice_of(reader) -> int:
    deadline = time.monotonic() + 2
    while time.monotonic() < deadline:  # the thread sets its priority as it starts
        nice = reader.stats()["nice"]
        if nice != os.getpriority(os.PRIO_PROCESS, 0):
            return nice
        time.sleep(0.01)
    return reader.stats()["nice"]


@pytest.mark.unit
def test_the_thread_runs_at_the_priority_it_asked_for_and_says_so():
    reader = _reader.Reader(nice=min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5))  # always permitted
    try:
        assert _nice_of(reader) == min(19, os.getpriority(os.PRIO_PROCESS, 0) + 5)
    finally:
        reader.close()


def test_a_priority_the_process_may_not_take_is_not_an_error():
    reader = _reader.Reader(nice=-20)  # root gets it; others get what RLIMIT_NICE allows, or none
    try:
        assert -20 <= _nice_of(reader) <= os.getpriority(os.PRIO_PROCESS, 0)
    finally:
        reader.close()


@pytest.fixture
def two_streams(reader_and_pair):
    """The reader with two registered pairs, tokens 1 and 2: (reader, server 1, server 2)."""
    reader, client, server = reader_and_pair
    other_client, other_server = pair()
    reader.add(client.fileno(), 1)
    reader.add(other_client.fileno(), 2)
    yield reader, server, other_server
    other_client.close()
    other_server.close()


def test_dispatch_calls_each_stream_in_order_and_drops_reads_of_ended_streams(two_streams):
    reader, server, other_server = two_streams
    for i in range(3):
        server.sendall(b"a%d;" % i)
        other_server.sendall(b"b%d;" % i)
        time.sleep(0.01)
    time.sleep(0.05)
    select.select([reader.fileno()], [], [], 1)
    got = []
    calls = reader.dispatch({1: lambda t, data, err: got.append((t, data, err))})  # 2 ended
    assert b"".join(d for _, d, _ in got) == b"a0;a1;a2;"
    assert all(err == 0 for _, _, err in got) and [t for t, _, _ in got] == sorted(t for t, _, _ in got)
    assert calls == len(got)
    assert reader.drain() == []  # token 2's reads were dropped, not kept


def test_a_failing_callback_does_not_cost_the_other_streams_their_reads(two_streams):
    reader, server, other_server = two_streams
    server.sendall(b"x")
    other_server.sendall(b"y")
    time.sleep(0.1)
    seen = []

    def broken(t, data, err):
        raise KeyError("a bug")

    def nested(t, data, err):
        seen.append(data)
        with pytest.raises(RuntimeError, match="inside dispatch"):
            reader.drain()

    with pytest.raises(KeyError, match="a bug"):
        reader.dispatch({1: broken, 2: nested})
    assert seen == [b"y"]


try:
    from sseload import _sse
except ImportError:
    _sse = None
needs_sse = pytest.mark.skipif(_sse is None, reason="the compiled event log was not built")


@needs_sse
def test_a_routed_stream_feeds_its_log_and_hears_only_of_what_it_must_act_on(reader_and_pair):
    """(log, on_read, on_fed): reads go into the log in C; Python hears of events to act on and EOF."""
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 1)
    log = _sse.EventLog(truth_key=b'"t":', chunked=True)
    heard = []
    route = {1: (log, lambda t, data, err: heard.append(("on_read", data, err)),
                 lambda t, fed: heard.append(("on_fed", fed, t)))}
    pieces = [b"%x\r\n%s\r\n" % (len(p), p) for p in
              (b'data: {"t":1}\n\n', b'data: {"t":2}\n\n', b"event: done\ndata: {}\n\n")] + [b"0\r\n\r\n"]
    for piece in pieces:
        server.sendall(piece)
        time.sleep(0.02)
        select.select([reader.fileno()], [], [], 1)
        reader.dispatch(route)
    server.close()
    time.sleep(0.05)
    select.select([reader.fileno()], [], [], 1)
    reader.dispatch(route)
    assert len(log) == 3 and log.bytes_in == sum(map(len, pieces)) and log.complete
    done, end, eof = heard
    assert done[0] == "on_fed" and [e.event for e in done[1]] == ["done"]
    assert end[:2] == ("on_fed", [])  # only the body's end: an empty list
    assert done[2] < end[2] == log.last_t_ns  # each with its read's time
    assert eof == ("on_read", b"", 0)
    assert array.array("q", log.arrays()[2]).tolist() == [1, 2, 0]  # the send times, parsed in C


@needs_sse
def test_a_routed_read_the_log_refuses_reaches_on_fed_as_the_error(reader_and_pair):
    from sseload.protocol.sse import SSEProtocolError

    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 1)
    log = _sse.EventLog(chunked=True)
    heard = []
    server.sendall(b"zz\r\n")
    time.sleep(0.05)
    select.select([reader.fileno()], [], [], 1)
    reader.dispatch({1: (log, lambda *a: heard.append(a), lambda t, fed: heard.append(fed))})
    assert len(heard) == 1 and isinstance(heard[0], SSEProtocolError) and "chunk-size" in str(heard[0])


def test_a_log_that_is_not_the_compiled_one_gets_its_reads_through_on_read(reader_and_pair):
    from sseload.protocol.sse import PyEventLog

    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 1)
    heard = []
    server.sendall(b"data: x\n\n")
    time.sleep(0.05)
    select.select([reader.fileno()], [], [], 1)
    reader.dispatch({1: (PyEventLog(), lambda t, data, err: heard.append(data), lambda *a: heard.append(a))})
    assert heard == [b"data: x\n\n"]



def test_a_wall_clock_step_between_arrival_and_read_stays_out_of_the_times(reader_and_pair):
    """Kernel stamps are on the wall clock, mapped to the monotonic one by an offset read at each
    wake-up: a step between a segment's arrival and its read would move that read by the step.
    The wake-up that sees the offset jump times its reads as they returned instead."""
    reader, client, server = reader_and_pair
    reader.add(client.fileno(), 3)
    server.sendall(b"a")
    drain_until(reader, 1)  # the thread has an offset to compare with
    reader._inject_clock_step(3_000_000)  # the wall clock jumps 3 ms ahead before the next read
    t_send = time.perf_counter_ns()
    server.sendall(b"b")
    (_, t_ns, data, _), = drain_until(reader, 1)
    assert data == b"b" and t_ns >= t_send  # not 3 ms before it was even sent
    assert reader.stats()["stepped"] >= 1


def test_no_read_is_timed_before_the_request_went_out(reader_and_pair):
    reader, client, server = reader_and_pair
    server.sendall(b"early")  # arrives (and is stamped) before the reader is told of the socket
    time.sleep(0.05)
    not_before = time.perf_counter_ns()
    reader.add(client.fileno(), 4, not_before)
    (_, t_ns, data, _), = drain_until(reader, 1)
    assert data == b"early" and t_ns >= not_before


def _gone(pid: int) -> bool:
    try:
        with open(f"/proc/{pid}/stat") as stat:
            return stat.read().rsplit(")", 1)[1].split()[0] in ("Z", "X")  # a zombie has died
    except FileNotFoundError:
        return True


def test_an_orphaned_child_stuck_in_c_holding_the_gil_is_killed_after_its_grace():
    """sseload SIGKILLed: its child ignores SIGTERM and sits in C code holding the GIL (no Python
    handler or thread could run); the native watchdog kills it once the grace is over."""
    import subprocess
    import sys
    import time

    pytest.importorskip("sseload._reader", reason="the native reader was not built")
    child = (
        "import ctypes, signal, sys; from sseload import _reader; signal.signal(signal.SIGTERM, signal.SIG_IGN); "
        "assert _reader.orphan_watchdog(1.0) and not _reader.orphan_watchdog(1.0); print('ready', flush=True); "
        "ctypes.PyDLL(None).sleep(600)"  # PyDLL: the GIL stays held
    )
    parent = subprocess.Popen(
        [sys.executable, "-c", "import subprocess, sys, time; "
         f"c = subprocess.Popen([sys.executable, '-c', {child!r}], stdout=subprocess.PIPE, text=True); "
         "c.stdout.readline(); print(c.pid, flush=True); time.sleep(600)"],
        stdout=subprocess.PIPE, text=True)
    pid = int(parent.stdout.readline())
    time.sleep(1.5)
    assert not _gone(pid)  # the parent is alive: the watchdog waits
    parent.kill()
    parent.wait()
    killed = time.monotonic()
    while not _gone(pid) and time.monotonic() - killed < 10:
        time.sleep(0.05)
    assert _gone(pid), "the orphan outlived its grace"
    assert time.monotonic() - killed > 0.9  # not before its grace (a sleep is never shorter)
