"""Content and transfer codings from servers that are not sseload's: named when sseload cannot
decode them, decoded whatever their case when it can (issue 32's third item, in part)."""

from __future__ import annotations

import gzip

from tests import servers
from tests.conftest import side_by_side, sseload_run

BODY = b"".join(servers.sse_event(k) for k in range(3))
#: The largest process's peak RSS (MiB) in these runs: an ordinary short run peaks near 190.
PEAK_RSS_BOUND_MIB = 400


def coded_server(start_server, coding: str, payload: bytes, transfer: str | None = None):
    def respond(conn: servers.Conn, req: servers.Request) -> bool:
        headers = {"Content-Type": "text/event-stream", "Content-Encoding": coding}
        if transfer:
            conn.start_chunked(200, {**headers, "Transfer-Encoding": transfer})
            conn.send_chunk(payload)
            conn.end_chunked()
        else:
            conn.send_response(200, payload, headers)
        return True

    return start_server(servers.ScriptedServer, lambda c: servers.serve_keepalive(c, respond), name=coding)


def test_brotli_is_a_protocol_error_that_names_it_and_gzip_in_capitals_is_read(tmp_path, start_server):
    brotli = coded_server(start_server, "br", b"\x8b\x02\x80data")
    capitals = coded_server(start_server, "GZIP", gzip.compress(BODY))
    under = coded_server(start_server, "identity", gzip.compress(BODY), transfer="gzip, chunked")
    for name in ("br", "caps", "under"):
        (tmp_path / name).mkdir()
    runs = side_by_side({"br": brotli, "caps": capitals, "under": under},  # outcomes are checked, not times
                        lambda name, srv: sseload_run(tmp_path / name, "-H", srv.url, "-u", "1", "-t", "2s",
                                                      run_id=name, peak_rss=True))
    assert max(run.peak_rss_mib for run in runs.values()) < PEAK_RSS_BOUND_MIB, {n: r.peak_rss_mib for n, r in
                                                                                 runs.items()}
    br = runs["br"].streams
    assert set(br["outcome"]) == {"protocol_error"} and br["error"].str.contains("Content-Encoding br").all()
    assert runs["br"].code == 1, runs["br"].stderr  # nothing succeeded
    caps = runs["caps"].streams
    assert set(caps["outcome"]) == {"ok"} and (caps["events"] == 3).all()
    te = runs["under"].streams
    assert set(te["outcome"]) == {"protocol_error"} and te["error"].str.contains("Transfer-Encoding gzip").all()
