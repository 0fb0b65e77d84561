"""What a server sends is shown safely: no escape sequence reaches the console, no markup the summary.

A hostile server (not sseload's) puts terminal escape sequences (set the window title, clear the
screen, move the cursor and overwrite a line with a fake verdict) and HTML/Markdown into every
field it controls: an APIG error body's error_code and message, `event: error` data, an OpenAI
chunk's finish_reason and error object, a content type.
"""

from __future__ import annotations

import json
import re
import threading

import pandas as pd

from tests import servers
from tests.conftest import sseload_reported_run

ESC = "\x1b]0;pwned\x07\x1b[2J\x1b[H\x1b[1A\r"
FAKE = "all thresholds PASS"
MARKUP = "<script>alert(1)</script><img src=x onerror=alert(2)><!-- hide [x](https://evil.example) | **b**"
RAW_CONTROL = re.compile("[\x00-\x08\x0b-\x1f\x7f-\x9f\u202a-\u202e]")


def hostile_server(start_server):
    turn = {"n": 0}
    lock = threading.Lock()

    def chunk(delta: dict, finish=None, **extra) -> bytes:
        obj = {"id": "c1", "object": "chat.completion.chunk", "choices": [{"index": 0, "delta": delta,
                                                                             "finish_reason": finish}], **extra}
        return b"data: " + json.dumps(obj).encode() + b"\n\n"

    def respond(conn: servers.Conn, req: servers.Request) -> bool:
        with lock:
            n = turn["n"] % 5
            turn["n"] += 1
        if n == 0:  # an APIG-style error body
            body = json.dumps({"error_code": f"APIG.0{ESC}{FAKE}", "error_msg": f"{ESC}{FAKE} {MARKUP}"})
            conn.send_response(500, body.encode(), {"Content-Type": "application/json"})
            return True
        if n == 4:  # a content type that is not SSE, carrying escapes of its own
            conn.send_response(200, b"nope", {"Content-Type": f"text/html\x1b[5m{FAKE}"})
            return True
        conn.start_chunked(200, {"Content-Type": "text/event-stream"})
        if n == 1:
            conn.send_chunk(f"event: error\ndata: {ESC}{FAKE} {MARKUP}\n\n".encode())
        elif n == 2:
            conn.send_chunk(chunk({"role": "assistant"}) + chunk({"content": "hi"}) + chunk({}, f"{ESC}{MARKUP}"))
            conn.send_chunk(b"data: [DONE]\n\n")
        else:
            conn.send_chunk(chunk({"content": "hi"}, error={"message": f"{ESC}{FAKE} {MARKUP}", "code": f"x{ESC}"}))
        conn.end_chunked()
        return True

    return start_server(servers.ScriptedServer, lambda c: servers.serve_keepalive(c, respond), name="hostile",
                        path="/v1/chat/completions")


def test_a_servers_escape_sequences_and_markup_reach_neither_console_nor_summary(tmp_path, start_server):
    srv = hostile_server(start_server)
    run = sseload_reported_run(tmp_path, "-H", srv.url, "--body", '{"model": "m", "stream": true}', "-u", "2",
                               "-t", "2s", "--header", "Content-Type: application/json")
    assert run.run_dir.joinpath("summary.md").exists(), run.stderr
    console = run.stdout + run.stderr
    assert not RAW_CONTROL.search(console), repr(RAW_CONTROL.search(console))
    assert "\\x1b" in console  # shown, made visible: the cause is not hidden either
    streams = pd.read_parquet(run.run_dir / "streams.parquet")
    assert {"http_error", "event_error", "ok", "protocol_error"} <= set(streams["outcome"]), streams["outcome"].unique()
    for column in ("error", "error_code", "finish_reason", "content_type"):
        text = "".join(streams[column].dropna().astype(str))
        assert not RAW_CONTROL.search(text), column
    assert streams["finish_reason"].dropna().str.contains("\\x1b", regex=False).any()
    summary = run.run_dir.joinpath("summary.md").read_text()
    for bad in ("<script", "<img", "<!--", "](https", "\x1b"):
        assert bad not in summary, bad
    for name in ("summary.json", "run.json", "report.html"):
        assert "\x1b" not in run.run_dir.joinpath(name).read_text(), name
    report = run.run_dir.joinpath("report.html").read_text()
    assert "<script>alert(1)" not in report and "<img src=x" not in report
