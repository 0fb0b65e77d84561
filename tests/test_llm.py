"""LLM streams: token metrics against an OpenAI-compatible server that is not the reference target.

The vLLM-like server (tests/servers.py) sends the role chunk at once, the first token after a
200 ms prefill, chunks of 1-3 tokens and the usage chunk; its ground truth is kept per request.
"""

from __future__ import annotations

import json

import numpy as np
import pytest

from sseload.llm import FROM_CHUNKS, FROM_USAGE, stream_tokens
from tests import servers
from tests.conftest import sseload_run

start_server = servers.start_server  # the fixture

BODY = {"model": "m", "messages": [{"role": "user", "content": "tell me a story"}], "max_tokens": 24,
        "stream": True, "stream_options": {"include_usage": True}}


@pytest.mark.unit
def test_a_streams_token_facts_come_from_usage_else_from_the_chunks_carrying_output():
    t = np.array([1_000, 5_000, 9_000, 12_000], dtype=np.int64).tobytes()
    role, content, usage = 0, 1, 2 * (7 + 1)
    llm = np.array([role, content, content, usage], dtype=np.int64).tobytes()
    assert stream_tokens(llm, t, 0) == (5_000, 7, FROM_USAGE)
    no_usage = np.array([role, content, content, 0], dtype=np.int64).tobytes()
    assert stream_tokens(no_usage, t, 1_000) == (4_000, 2, FROM_CHUNKS)
    assert stream_tokens(b"", b"", 0) == (-1, -1, "")


def test_ttft_tokens_and_tpot_match_the_servers_truth(tmp_path, start_server):
    srv = start_server(servers.vllm_like_server, prefill_s=0.2, token_s=0.01)
    result = sseload_run(tmp_path, "-H", srv.url, "--body", json.dumps(BODY),
                         "-u", "3", "-t", "2s", "-r", "10", run_id="llm")
    assert result.code == 0, result.stderr[-2000:]
    s = result.streams
    ok = s[s["outcome"] == "ok"]
    assert len(ok) >= 6
    truth = srv.truth
    true_ttft_ms = 1000 * np.median([t["first_token_s"] for t in truth])
    assert abs(ok["ttft_ms"].median() - true_ttft_ms) < 5.0, (ok["ttft_ms"].describe(), true_ttft_ms)
    assert ok["ttfe_ms"].median() < 50  # the role-only chunk came at once: TTFE is not TTFT
    assert (ok["output_tokens"] == 24).all() and (ok["tokens_from"] == FROM_USAGE).all()
    assert (ok["prompt_tokens"] == 4).all()
    true_tpot_ms = np.median([1000 * (t["last_token_s"] - t["first_token_s"]) / (t["tokens"] - 1) for t in truth])
    assert abs(ok["tpot_ms"].median() / true_tpot_ms - 1) < 0.05, (ok["tpot_ms"].describe(), true_tpot_ms)
    ev = result.events
    content = ev[ev["output"].fillna(False).astype(bool)]
    assert (content.groupby("stream_id").size() == truth[0]["chunks"]).all()  # role and usage chunks do not count
    true_itl_ms = 1000 * np.median(np.concatenate([np.diff(t["chunk_s"]) for t in truth]))
    itl = content[content["stream_id"].isin(ok["stream_id"])].groupby("stream_id")["t_ms"].diff().dropna()
    assert abs(itl.median() / true_itl_ms - 1) < 0.05, (itl.describe(), true_itl_ms)
    out = result.stdout
    assert "TTFT ms" in out and "TPOT ms" in out and "output tokens" in out and "from usage:" in out
    assert result.info["target_url"] == srv.url


def test_without_usage_the_tokens_are_the_chunks_carrying_output_and_slos_give_goodput(tmp_path, start_server):
    srv = start_server(servers.vllm_like_server, prefill_s=0.05, token_s=0.005, chunk_tokens=(1,))
    body = {**BODY, "stream_options": {"include_usage": False}, "max_tokens": 10}
    scenario = {"request": {"path": "/v1/chat/completions"}, "body": {"json": body},
                "slo": {"ttft_ms": 40.0}, "thresholds": {"min_goodput": 0.5},
                "load": {"users": 2, "spawn_rate": 10, "run_time": "1s"}}
    result = sseload_run(tmp_path, "-H", srv.base_url, scenario=scenario, run_id="chunks")
    s = result.streams[lambda d: d["outcome"] == "ok"]
    assert (s["output_tokens"] == 10).all() and (s["tokens_from"] == FROM_CHUNKS).all()
    assert s["prompt_tokens"].isna().all()
    assert result.code == 1  # a 50 ms prefill never meets a 40 ms TTFT objective: goodput 0 fails the threshold
    assert "min_goodput" in result.stdout and "goodput 0.00 streams/s" in result.stdout
