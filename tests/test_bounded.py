"""Bounded and honest under hostile input (issue 32): a decompression bomb is refused at its ratio or
its size, never unpacked, and an upload the server stops reading is named as such, with its upload
time. Fed bytes where that says it all; against independent servers (tests/servers.py) where it
crosses a process, each run ending by itself within a stated memory bound, measured."""

from __future__ import annotations

import gzip
import socket
import zlib

import numpy as np
import pyarrow.parquet as pq
import pytest

from sseload.protocol.decoding import PIECE_BYTES, RATIO_FLOOR_BYTES, Inflater
from sseload.protocol.outcomes import Outcome
from sseload.protocol.response import Response, StreamRules
from sseload.protocol.sse import EventLog, PyEventLog
from sseload.protocol.sse_types import SSEProtocolError
from sseload.transport.sending import Upload, UploadStalled
from tests import servers
from tests.conftest import side_by_side, sseload_run

#: The Locust process's peak RSS (MiB) in a run against a hostile server. An ordinary short run peaks
#: near 190 MiB (pandas, pyarrow, the reader); the bomb runs near 350 (the ~120,000 `data: x` events
#: each stream records before its refusal, written a second's batch at a time); without a limit the
#: gzip bomb took 5.7 GB and a MemoryError.
PEAK_RSS_BOUND_MIB = 512
#: The same for one stream of six million tiny events at a million a second, where the recorder takes
#: the open stream's events at each flush: measured 450-470 MiB (a second's batch of a million events,
#: then the shard's conversion to Parquet); holding every event until the stream ended it was 808, and
#: grew with the stream.
FLOOD_RSS_BOUND_MIB = 600
LINE = b"data: x\n\n"
DEFAULT_RULES = StreamRules()
EVENTS = b"".join(servers.sse_event(k) for k in range(50))


def head(coding: str, length: int) -> bytes:
    return (f"HTTP/1.1 200 OK\r\nContent-Type: text/event-stream\r\nContent-Encoding: {coding}\r\n"
            f"Content-Length: {length}\r\n\r\n").encode()


def fed(wire: bytes, rules: StreamRules = DEFAULT_RULES, read_bytes: int = 65536, log_class=EventLog):
    """``wire`` fed in reads of ``read_bytes`` until the response is over: (response, verdict)."""
    resp = Response(rules, log_class, 0)
    for i in range(0, len(wire), read_bytes):
        if resp.feed(i + 1, wire[i:i + read_bytes]):
            break
    else:
        resp.feed_eof(len(wire) + 1)
    return resp, resp.verdict(1_000_000)


# --- decompression, fed bytes ---

@pytest.mark.unit
@pytest.mark.parametrize("coding", ["gzip", "deflate"])
def test_a_compression_bomb_is_a_protocol_error_naming_its_ratio_before_much_of_it_is_inflated(coding):
    bomb = servers.bomb_bytes(coding, 1 << 28)  # about 512 KiB: 256 MiB of `data: x` once inflated
    resp, (outcome, error, _) = fed(head(coding, len(bomb)) + bomb)
    assert outcome is Outcome.PROTOCOL_ERROR and "max_decode_ratio" in error and "decompression bomb" in error
    assert f"the {coding} body inflates " in error and ":1 (" in error  # the ratio, named
    assert len(resp.log) <= (RATIO_FLOOR_BYTES + PIECE_BYTES) // len(LINE)  # stopped one piece past the floor
    assert resp.bytes_received() <= 2 * 65536  # and read no more of it


@pytest.mark.unit
@pytest.mark.parametrize("log_class", [EventLog, PyEventLog])
def test_a_body_past_max_decoded_bytes_is_a_protocol_error_whatever_its_ratio(log_class):
    packed = gzip.compress(EVENTS * 100)  # ~100 KB of events, well under the ratio
    rules = StreamRules(max_decoded_bytes=50_000)
    resp, (outcome, error, _) = fed(head("gzip", len(packed)) + packed, rules, log_class=log_class)
    assert outcome is Outcome.PROTOCOL_ERROR and "max_decoded_bytes = 50,000" in error
    assert sum(resp.log.arrays()[1]) <= 50_000  # no event of the content past the limit was recorded


@pytest.mark.unit
def test_a_short_answer_that_compresses_very_well_is_no_bomb():
    body = LINE * 100_000  # 900 KB at about 500:1, under the first MiB that may inflate at any ratio
    packed = gzip.compress(body)
    assert len(body) / len(packed) > 100
    resp, (outcome, error, _) = fed(head("gzip", len(packed)) + packed)
    assert (outcome, error) == (Outcome.OK, "") and len(resp.log) == 100_000


@pytest.mark.unit
@pytest.mark.parametrize("wbits", [zlib.MAX_WBITS, -zlib.MAX_WBITS], ids=["zlib", "raw"])
def test_deflate_is_read_zlib_wrapped_or_raw_at_every_split(wbits):
    z = zlib.compressobj(6, zlib.DEFLATED, wbits)
    packed = z.compress(EVENTS) + z.flush()
    wire = head("deflate", len(packed)) + packed
    for read_bytes in (1, 2, 3, 7, len(wire)):
        resp, (outcome, error, _) = fed(wire, read_bytes=read_bytes)
        assert (outcome, error, len(resp.log)) == (Outcome.OK, "", 50), read_bytes


@pytest.mark.unit
def test_a_body_that_does_not_decompress_is_a_protocol_error_not_a_harness_error():
    packed = bytearray(gzip.compress(EVENTS))
    packed[20:40] = b"\xff" * 20
    _, (outcome, error, _) = fed(head("gzip", len(packed)) + bytes(packed))
    assert outcome is Outcome.PROTOCOL_ERROR and "the gzip body does not decompress" in error


@pytest.mark.unit
def test_the_inflater_hands_out_bounded_pieces_and_stops_at_the_piece_that_passes_the_limit():
    inflater = Inflater("gzip", max_bytes=10 * PIECE_BYTES, max_ratio=1e9)
    bomb = servers.bomb_bytes("gzip", 64 << 20)
    pieces = []
    with pytest.raises(SSEProtocolError, match="max_decoded_bytes"):
        for piece in inflater.feed(bomb):
            pieces.append(len(piece))
    assert max(pieces) <= PIECE_BYTES and sum(pieces) == 10 * PIECE_BYTES
    assert inflater.bytes_out == 10 * PIECE_BYTES + 1  # it never made more than one byte past the limit


@pytest.mark.unit
def test_an_upload_the_peer_stops_taking_stalls_after_the_idle_time_and_counts_what_went_out():
    ours, theirs = socket.socketpair()  # the peer never reads
    ours.setblocking(False)
    upload, body = Upload(), b"x" * (32 << 20)
    with pytest.raises(UploadStalled):
        upload.send(ours.send, ours, body, 0.05, lambda: 7)
    assert 0 < upload.sent < upload.total == len(body) and upload.last_ns == 7
    assert upload.stalled_text(2_000_000, 0.05) == (f"the server stopped reading the request: {upload.sent:,} of its "
                                                    f"{len(body):,} bytes went out in 2 ms, then none for 0.05 s "
                                                    "(read_timeout_s)")
    ours.close()
    theirs.close()


# --- against independent servers: each run ends by itself, small, and says why ---

def test_gzip_and_deflate_bombs_end_each_stream_as_a_protocol_error_within_the_memory_bound(tmp_path, start_server):
    bombs = {coding: start_server(servers.compression_bomb, coding) for coding in ("gzip", "deflate")}
    runs = side_by_side(bombs, lambda coding, srv: sseload_run(
        tmp_path, "-H", srv.url, "-u", "2", "-t", "3s", run_id=coding, peak_rss=True, timeout=90))
    for coding, run in runs.items():
        streams = run.streams
        assert run.code == 1, run.stderr[-2000:]  # no stream succeeded (docs/usage.md's exit codes)
        assert len(streams) >= 2 and set(streams["outcome"]) == {"protocol_error"}, coding
        assert streams["error"].str.contains(f"the {coding} body inflates .*:1 .*max_decode_ratio").all()
        assert run.info["streams_recorded"] == len(streams) == len(bombs[coding].received)
        assert run.peak_rss_mib < PEAK_RSS_BOUND_MIB, (coding, run.peak_rss_mib)


def test_a_server_that_never_reads_the_body_is_named_with_the_upload_time_within_the_memory_bound(
        tmp_path, start_server):
    srv = start_server(servers.never_reads_body, max_s=30)
    scenario = {"request": {"method": "POST"}, "body": {"size_bytes": 12 << 20, "kind": "binary"},
                "gateway": {"max_body_bytes": 64 << 20}, "stream": {"read_timeout_s": 1.0}}
    run = sseload_run(tmp_path, "-H", srv.url, "-u", "1", "-t", "3s", scenario=scenario, peak_rss=True, timeout=90)
    streams = run.streams
    assert run.code == 1, run.stderr[-2000:]  # no stream succeeded
    assert len(streams) >= 1 and set(streams["outcome"]) == {"timeout"}
    assert streams["error"].str.contains("the server stopped reading the request: .* of its .* bytes went out in "
                                         ".* ms, then none for 1 s").all(), streams["error"].tolist()
    assert streams["upload_ms"].notna().all() and (streams["upload_ms"] >= 0).all()
    assert (streams["duration_ms"] >= 1000).all()  # it waited read_timeout_s for the upload to move
    assert len(srv.heads) == len(streams)  # every request the server got is a row
    assert run.peak_rss_mib < PEAK_RSS_BOUND_MIB, run.peak_rss_mib


def test_a_flood_of_tiny_events_on_one_long_stream_is_recorded_whole_within_the_memory_bound(tmp_path, start_server):
    """Six million 8-byte events in 6 s on one stream: the recorder takes an open stream's events at
    each flush (sseload.record.recorder.SPILL_EVENTS), so memory follows the read rate, not the
    stream's length; every event is a row, in order, with its gap."""
    srv = start_server(servers.tiny_event_flood, 1_000_000, 6.0)
    run = sseload_run(tmp_path, "-H", srv.url, "-u", "1", "-t", "8s", peak_rss=True, timeout=120)
    assert run.code == 0, run.stderr[-2000:]
    streams = run.streams
    flood = streams[streams["events"] > 3]
    assert len(flood) == 1 and flood["outcome"].tolist() == ["ok"], streams["events"].tolist()[:5]
    assert int(flood["events"].iloc[0]) == srv.sent[0] == 6_000_000
    assert streams["events"].tolist() == srv.sent[:len(streams)]  # every response, whole
    events = pq.read_table(run.run_dir / "events.parquet", columns=["stream_id", "seq", "gap_ms"],
                           filters=[("stream_id", "=", int(flood["stream_id"].iloc[0]))])
    seq, gap = events.column("seq").to_numpy(), events.column("gap_ms").to_numpy(zero_copy_only=False)
    assert (seq == np.arange(6_000_000)).all()  # in order, none lost or doubled where parts meet
    assert np.isnan(gap[0]) and not np.isnan(gap[1:]).any() and (gap[1:] >= 0).all()
    assert run.info["events_recorded"] == int(streams["events"].sum())
    assert run.peak_rss_mib < FLOOD_RSS_BOUND_MIB, run.peak_rss_mib
