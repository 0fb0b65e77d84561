"""A long LLM stream's chunks, taken part by part while it is open (sseload.record.tokens.TokenTally),
give the stream the token facts its chunks give whole (sseload.record.tokens.stream_tokens)."""

from __future__ import annotations

import numpy as np
import pytest
from hypothesis import assume, given, settings
from hypothesis import strategies as st

from sseload.protocol.scan import ANSWER, REASONING
from sseload.protocol.sse import KIND_BITS
from sseload.record.tokens import FROM_CHUNKS, FROM_USAGE, TokenTally, stream_tokens

T0 = 1_000


def packed(kinds: list[int], usage: list[int]) -> bytes:
    return np.asarray([k + KIND_BITS * (u + 1) for k, u in zip(kinds, usage, strict=True)], np.int64).tobytes()


def times(n: int, seed: int) -> np.ndarray:
    return T0 + np.cumsum(np.random.default_rng(seed).integers(0, 5_000_000, n)).astype(np.int64)


def in_parts(kinds, usage, t, cuts) -> tuple:
    """The tally's facts with the chunks cut at ``cuts``, and what each chunk was said to carry."""
    tally, carried, start = TokenTally(), [], 0
    for cut in sorted(set(cuts)):
        carried += tally.part(packed(kinds[start:cut], usage[start:cut]), t[start:cut].tobytes()).tolist()
        start = cut
    last = tally.stream(packed(kinds[start:], usage[start:]), t[start:].tobytes(), T0)
    return last._replace(chunk_tokens=np.asarray(carried + last.chunk_tokens.tolist(), np.int64))


def whole_and_parts(kinds: list[int], usage: list[int], data) -> tuple:
    """The stream's facts whole, and in parts cut where ``data`` draws, read at times it draws."""
    t = times(len(kinds), data.draw(st.integers(0, 99)))
    cuts = data.draw(st.lists(st.integers(1, len(kinds)), max_size=4))
    return stream_tokens(packed(kinds, usage), t.tobytes(), T0), in_parts(kinds, usage, t, cuts)


kinds_st = st.lists(st.sampled_from([0, ANSWER, REASONING, ANSWER | REASONING]), min_size=1, max_size=40)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(kinds=kinds_st, data=st.data())
def test_per_chunk_usage_in_parts_gives_every_fact_the_whole_stream_gives(kinds, data):
    assume(any(kinds))  # (a stream of no output: the whole stream says its chunks carried nothing)
    steps = data.draw(st.lists(st.integers(0, 3), min_size=len(kinds), max_size=len(kinds)))
    usage = np.cumsum(steps).tolist()  # every chunk reports the cumulative usage
    whole, parts = whole_and_parts(kinds, usage, data)
    assert parts._replace(chunk_tokens=None) == whole._replace(chunk_tokens=None)
    assert parts.chunk_tokens.tolist() == whole.chunk_tokens.tolist()


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(kinds=kinds_st, data=st.data())
def test_chunks_without_usage_in_parts_give_every_fact_the_whole_stream_gives(kinds, data):
    usage = [-1] * len(kinds)
    whole, parts = whole_and_parts(kinds, usage, data)
    assert parts._replace(chunk_tokens=None) == whole._replace(chunk_tokens=None)
    assert parts.chunk_tokens.tolist() == whole.chunk_tokens.tolist()
    assert whole.tokens_from in (FROM_CHUNKS, "") or not any(kinds)


@pytest.mark.unit
@settings(max_examples=200, deadline=None)
@given(kinds=kinds_st, final=st.integers(0, 500), data=st.data())
def test_a_usage_only_at_the_end_gives_the_same_totals_and_times_in_parts(kinds, final, data):
    """Chunks spilled before the usage came are counted one each (it had not come); the stream's count,
    TTFT, second token and stall are the whole stream's."""
    usage = [-1] * (len(kinds) - 1) + [final]
    whole, parts = whole_and_parts(kinds, usage, data)
    assert parts._replace(chunk_tokens=None) == whole._replace(chunk_tokens=None)
    assert parts.tokens_from == FROM_USAGE and parts.output_tokens == final


@pytest.mark.unit
def test_a_stream_of_no_output_in_parts_has_no_token_facts():
    kinds, usage = [0, 0, 0], [-1, -1, -1]
    t = times(3, 1)
    parts = in_parts(kinds, usage, t, [1, 2])
    assert (parts.ttft_ns, parts.ttst_ns, parts.max_stall_ns, parts.output_tokens) == (-1, -1, -1, 0)


@pytest.mark.parametrize("name", ["openai", "triton"])
def test_a_long_llm_stream_spilled_while_open_keeps_its_token_facts_and_every_chunk(tmp_path, start_server, name):
    """Against an independent server of the API: twelve thousand chunks over about three seconds, more
    than a flush leaves with the stream (sseload.record.recorder.SPILL_EVENTS), so its chunks go to the
    recorder while it is open: TTFT, the count and every chunk's row are still the stream's."""
    import json

    import pyarrow.parquet as pq

    from tests import llm_servers
    from tests.conftest import sseload_run

    body = {"openai": {"model": "m", "stream": True, "messages": [{"role": "user", "content": "hi"}]},
            "triton": {"text_input": "hi", "max_tokens": 8}}[name]
    srv = start_server(llm_servers.llm_api_server, name, answer=12_000, prefill_s=0.05, gap_s=0.00025)
    run = sseload_run(tmp_path, "-H", srv.url, "--body", json.dumps(body), "-u", "1", "-t", "5s", timeout=90)
    assert run.code == 0, run.stderr[-2000:]
    stream = next(run.streams[run.streams["outcome"] == "ok"].itertuples())  # the first; another may follow
    sent = srv.sends[0]
    assert stream.output_tokens == 12_000 and stream.tokens_from == ("usage" if name == "openai" else "chunks")
    assert abs(stream.ttft_ms - (sent["first_output_ns"] - sent["arrival_ns"]) / 1e6) < 5.0
    assert stream.duration_ms > 1_500 and 0 < stream.max_stall_ms < stream.duration_ms, stream.duration_ms
    events = pq.read_table(run.run_dir / "events.parquet", filters=[("stream_id", "=", stream.stream_id)])
    assert events.num_rows == stream.events and events.column("seq").to_pylist() == list(range(stream.events))
    output = np.asarray(events.column("output").to_pylist())
    assert output.sum() == 12_000
    tokens = np.asarray(events.column("tokens").to_pylist(), dtype=object)[output]
    if name == "triton":  # the chunks are the count: one each, spilled or not
        assert (tokens == 1).all()
    else:  # the usage came at the end: chunks spilled before it count one each, the rest unknown
        assert set(tokens[:4096]) == {1} and tokens[-1] is None
