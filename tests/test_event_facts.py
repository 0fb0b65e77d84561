"""The report reads the events a batch at a time (sseload.views.event_facts) and gives the numbers the
whole events table gives: every event-derived summary number equals a straightforward pandas
computation on the whole frame, exactly, however the batches and shards cut the streams."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sseload.record.metrics import ITL
from sseload.record.records import BUFFERED_MIN_EVENTS, EVENTS_SCHEMA, STREAMS_SCHEMA
from sseload.views import chart_parts, charts, event_facts, report, results
from sseload.views.distribution import percentiles_repeated
from sseload.views.event_facts import EventFacts
from sseload.views.histogram import LogHistograms
from sseload.views.shards import Shards
from sseload.views.stream_facts import StreamSlots, itl_of

pytestmark = pytest.mark.unit

T0_NS = 1_700_000_000_000_000_000
EVENT_KEYS = ("gap_ms", "events_read_together", "buffered_streams", "lateness_ms", "ttfe_error_ms", "max_gap_ms")
LLM_KEYS = ("itl_ms", "itl_per_token_ms")


# --- a run folder of a few hundred thousand events, its streams cut into parts far apart ---

def stream_events(rng: np.random.Generator, sid: int, n: int, llm: bool) -> pd.DataFrame:
    """One stream's events in order: gaps with some 0s (read together), some lateness unknown; LLM:
    some chunks without output, tokens carried mostly known."""
    gap = np.round(rng.exponential(20.0, n), 3) * (rng.random(n) > 0.05)
    if n >= BUFFERED_MIN_EVENTS and rng.random() < 0.05:
        gap[:] = 0.0  # buffered: every event in one read
    t = 50.0 + rng.uniform(0, 300) + np.cumsum(gap)
    late = rng.exponential(0.3, n)
    late[rng.random(n) < 0.1] = np.nan
    frame = pd.DataFrame({"stream_id": sid, "seq": np.arange(n), "t_ms": t, "gap_ms": np.r_[np.nan, np.diff(t)][:n],
                          "bytes": rng.integers(10, 200, n), "lateness_ms": late})
    if llm:
        output = rng.random(n) < 0.9
        tokens = pd.array(rng.integers(0, 4, n), dtype="Int32")
        tokens[rng.random(n) < (0.5 if sid % 5 == 0 else 0.01)] = pd.NA  # some streams carry unknown counts
        frame = frame.assign(output=output, answer=output, completion_tokens=pd.array([pd.NA] * n, dtype="Int32"),
                             tokens=tokens)
    return frame


def synthetic_run(run_dir: Path, seed: int = 1, n_streams: int = 400, llm: bool = True, shards: int = 4,
                  open_last: bool = False, half_batch: bool = False) -> None:
    """A run folder: ``n_streams`` streams (ids not dense, some without events), each stream's events
    cut into up to four parts written at different times, so its parts lie far apart, across row
    groups and shards (the last one an open IPC shard when ``open_last``)."""
    rng = np.random.default_rng(seed)
    ids = rng.permutation(n_streams) * 7 + 3
    counts = rng.integers(0, 1500, n_streams)
    counts[:6] = [0, 1, 2, 3, 3, 1]
    parts, order = [], []
    for sid, n in zip(ids.tolist(), counts.tolist(), strict=True):
        frame = stream_events(rng, sid, n, llm)
        cuts = np.sort(rng.choice(np.arange(1, n), size=min(3, n - 1), replace=False)).tolist() if n > 1 else []
        bounds = [0, *cuts, n]
        written = np.sort(rng.uniform(0, 100, len(bounds) - 1))  # when each part was written: in order in the stream
        for a, b, at in zip(bounds[:-1], bounds[1:], written, strict=True):
            parts.append(frame.iloc[a:b])
            order.append(at)
    events = pd.concat([parts[i] for i in np.argsort(order, kind="stable")], ignore_index=True)
    table = pa.Table.from_pandas(events, preserve_index=False)
    table = pa.Table.from_arrays([table.column(f.name).cast(f.type) if f.name in table.column_names
                                  else pa.nulls(len(table), f.type) for f in EVENTS_SCHEMA], schema=EVENTS_SCHEMA)
    bounds = np.linspace(0, len(table), shards + 1).astype(int)
    for i in range(shards):
        name = "events" if i == 0 else f"events-{i + 1}"
        part = table.slice(bounds[i], bounds[i + 1] - bounds[i])
        if i == shards - 1 and open_last:
            with pa.ipc.new_stream(str(run_dir / f"{name}.arrows"), EVENTS_SCHEMA) as writer:
                for start in range(0, len(part), 3000):
                    writer.write_table(part.slice(start, 3000))
            if half_batch:
                path = run_dir / f"{name}.arrows"
                path.write_bytes(path.read_bytes()[:-40])
        else:
            pq.write_table(part, run_dir / f"{name}.parquet", row_group_size=20_000)
    last_t = events.groupby("stream_id")["t_ms"].max().reindex(ids).fillna(10.0).to_numpy()
    streams = pd.DataFrame({
        "stream_id": ids, "start_ns": T0_NS + np.sort(rng.integers(0, 30 * 10**9, n_streams)),
        "ttfb_ms": 1.0, "ttfe_ms": 50.0, "duration_ms": last_t + 5.0, "status": 200, "response_bytes": 1000,
        "events": counts.astype(np.int32), "outcome": "ok", "error_code": "", "error": ""})
    if llm:
        tokens = rng.integers(1, 900, n_streams)
        streams = streams.assign(ttft_ms=60.0, output_tokens=tokens, tokens_from="usage", tpot_ms=20.0,
                                 tokens_per_s=tokens / (last_t + 5.0) * 1e3)
    given = pa.Table.from_pandas(streams, preserve_index=False)  # the other columns null, typed as the schema says
    pq.write_table(pa.Table.from_arrays([given.column(f.name).cast(f.type) if f.name in given.column_names
                                         else pa.nulls(len(given), f.type) for f in STREAMS_SCHEMA],
                                        schema=STREAMS_SCHEMA), run_dir / "streams.parquet")
    (run_dir / "run.json").write_text(json.dumps({"run_id": "synthetic", "schema_version": 1}))


def whole_events(run_dir: Path) -> pd.DataFrame:
    """Every shard's rows in order, as pandas reads them; an open shard's whole batches."""
    def shard_number(path: Path) -> int:
        tail = path.stem.rpartition("-")[2]
        return int(tail) if tail.isdigit() else 1

    frames = []
    for path in sorted(run_dir.glob("events*"), key=shard_number):
        if path.suffix == ".parquet":
            frames.append(pd.read_parquet(path))
            continue
        batches = []
        try:
            with pa.ipc.open_stream(str(path)) as reader:
                batches.extend(reader)
        except (pa.ArrowInvalid, OSError):  # the batch half written
            pass
        frames.append(pa.Table.from_batches(batches, EVENTS_SCHEMA).to_pandas())
    return pd.concat(frames, ignore_index=True)


# --- the reference: the whole frame, in pandas ---

def reference_percentiles(values, ps=(50, 90, 95, 99)) -> dict:
    arr = np.asarray(values, dtype=np.float64)
    arr = arr[~np.isnan(arr)]
    out = {f"p{p}": float(np.percentile(arr, p)) if arr.size else None for p in ps}
    return out | {"max": float(arr.max()) if arr.size else None, "mean": float(arr.mean()) if arr.size else None,
                  "count": int(arr.size)}


def reference(ev: pd.DataFrame) -> dict:
    by_stream = ev.groupby("stream_id")
    out = {
        "gap_ms": reference_percentiles(ev["gap_ms"]),
        "events_read_together": int((ev["gap_ms"] == 0).sum()),
        "buffered_streams": int(((by_stream.size() >= BUFFERED_MIN_EVENTS) & (by_stream["t_ms"].nunique() == 1)).sum()),
        "lateness_ms": reference_percentiles(ev["lateness_ms"], (50, 99, 99.9)),
        "ttfe_error_ms": reference_percentiles(ev.loc[ev["seq"] == 0, "lateness_ms"], (50, 99)),
        "max_gap_ms": reference_percentiles(by_stream["gap_ms"].max()),
    }
    if ev["output"].notna().any():
        chunks = ev[ev["output"].eq(True)]
        itl = chunks.groupby("stream_id")["t_ms"].diff()
        out["itl_ms"] = reference_percentiles(itl)
        known = itl.notna() & chunks["tokens"].gt(0)
        k = chunks.loc[known, "tokens"].to_numpy(np.int64)
        out["itl_per_token_ms"] = reference_percentiles(np.repeat(itl[known].to_numpy() / k, k))
    return out


def assert_same(summary: dict, expected: dict, keys) -> None:
    for key in keys:
        got, want = summary[key], expected[key]
        if key == "itl_per_token_ms":  # the one mean added in another order (distribution.percentiles_repeated)
            assert got.pop("mean") == pytest.approx(want.pop("mean"), rel=1e-12), key
        assert got == want, key


@pytest.fixture(scope="module")
def llm_run(tmp_path_factory) -> Path:
    run_dir = tmp_path_factory.mktemp("llm")
    synthetic_run(run_dir)
    return run_dir


@pytest.fixture
def tiny_batches(monkeypatch):
    monkeypatch.setattr(event_facts, "BATCH_ROWS", 997)  # hundreds of batches: every stream cut across several


def test_the_synthetic_run_cuts_streams_across_batches_and_shards_apart(llm_run):
    ev = whole_events(llm_run)
    assert 250_000 < len(ev) < 350_000 and len(list(llm_run.glob("events*.parquet"))) == 4
    runs = (ev["stream_id"] != ev["stream_id"].shift()).sum()
    assert runs > 2 * ev["stream_id"].nunique()  # streams' events are not together
    shard = np.repeat(np.arange(4), np.diff(np.linspace(0, len(ev), 5).astype(int)))
    assert (pd.Series(shard).groupby(ev["stream_id"].to_numpy()).nunique() > 1).sum() > 100


def test_every_event_number_of_the_summary_equals_the_whole_frames(llm_run, tiny_batches):
    run = results.load(llm_run)
    summary = results.summarise(run)
    assert_same(summary, reference(whole_events(llm_run)), EVENT_KEYS + LLM_KEYS)


def test_the_numbers_do_not_depend_on_the_batch_size_or_on_reading_from_files(llm_run):
    run = results.load(llm_run)
    expected = {k: v for k, v in results.summarise(run).items() if k in EVENT_KEYS + LLM_KEYS}
    for batch_rows in (499, 50_000):
        facts = EventFacts(run.event_shards, run.streams, batch_rows=batch_rows)
        assert facts.gap_ms == expected["gap_ms"] and facts.lateness_ms == expected["lateness_ms"]
        assert facts.itl.stats == expected["itl_ms"] and facts.itl_per_token_ms == expected["itl_per_token_ms"]
        assert facts.buffered_streams == expected["buffered_streams"]
    in_memory = results.Run(llm_run, run.info, run.streams, whole_events(llm_run))
    assert {k: v for k, v in results.summarise(in_memory).items() if k in expected} == expected


def test_a_plain_sse_run_has_no_itl_and_the_same_numbers(tmp_path, tiny_batches):
    synthetic_run(tmp_path, seed=2, llm=False)
    summary = results.summarise(results.load(tmp_path))
    assert_same(summary, reference(whole_events(tmp_path)), EVENT_KEYS)
    assert not set(LLM_KEYS) & set(summary)


def test_a_cut_open_shard_counts_its_whole_batches_only(tmp_path, tiny_batches):
    synthetic_run(tmp_path, seed=3, open_last=True, half_batch=True)
    run = results.load(tmp_path)
    assert any("events-4.arrows is a shard still open" in c and "a batch half written" in c for c in run.cut)
    ev = whole_events(tmp_path)
    assert run.event_shards.rows == len(ev) and len(run.events) == len(ev)
    assert_same(results.summarise(run), reference(ev), EVENT_KEYS + LLM_KEYS)


def test_an_open_shard_that_grows_after_it_was_listed_is_read_as_listed(tmp_path):
    synthetic_run(tmp_path, seed=4, llm=False, open_last=True)
    run = results.load(tmp_path)
    listed = run.event_shards.rows
    path = tmp_path / "events-4.arrows"
    table = pa.ipc.open_stream(path.read_bytes()).read_all()
    with pa.ipc.new_stream(str(path), EVENTS_SCHEMA) as writer:  # the run goes on: one more batch written
        for start in range(0, len(table), 3000):
            writer.write_table(table.slice(start, 3000))
        writer.write_table(table.slice(0, 500))
    assert run.event_facts.rows == listed
    assert results.summarise(run)["gap_ms"] == reference(whole_events(tmp_path).iloc[:listed])["gap_ms"]


def test_the_charts_event_series_equal_the_whole_frames(llm_run, tiny_batches):
    run = results.load(llm_run)
    ev = whole_events(llm_run)
    streams = run.streams
    t0 = streams["start_ns"].min()
    ev_s = (ev["stream_id"].map(streams.set_index("stream_id")["start_ns"]).to_numpy() - t0) / 1e9 \
        + ev["t_ms"].to_numpy() / 1e3
    tp = results.throughput(streams, run.event_facts)
    edges = np.r_[tp["t_s"].to_numpy(), tp["t_s"].iloc[-1] + 1]
    assert (tp["events_per_s"].to_numpy() == np.histogram(ev_s, edges)[0]).all()
    assert (tp["bytes_per_s"].to_numpy() == np.histogram(ev_s, edges, weights=ev["bytes"].to_numpy())[0]).all()
    gap = ev["gap_ms"].dropna().to_numpy()
    low = max(gap[gap > 0].min(), 0.001)
    gap_edges = np.logspace(np.log10(low), np.log10(max(gap.max(), low * 10)), 80)
    (hist,) = charts.gaps(run).panels[0].series
    assert (hist.y == np.histogram(np.clip(gap, low, None), bins=gap_edges)[0]).all()
    chunks = ev[ev["output"].eq(True)]
    itl = chunks.groupby("stream_id")["t_ms"].diff().dropna().to_numpy()
    drawn = chart_parts.distribution(itl, ITL, "itl")
    made = {c.name: c for c in charts.charts_of(run)}["itl"]
    for ours, theirs in zip(made.panels, drawn.panels, strict=True):
        for a, b in zip(ours.series, theirs.series, strict=True):
            assert (a.x == b.x).all() and (a.y == b.y).all()


def test_the_report_never_reads_the_events_whole(llm_run, monkeypatch):
    run = results.load(llm_run)

    def whole(self, columns=None):
        raise AssertionError(f"the events read whole: {columns}")

    monkeypatch.setattr(Shards, "frame", whole)
    summary = results.summarise(run)
    report.write_all(run, summary)
    assert (llm_run / "report.html").exists() and summary["itl_ms"]["count"]


def test_a_stream_split_across_batches_keeps_its_itl_across_them():
    slots = StreamSlots(pd.DataFrame({"stream_id": [5, 9]}))
    batches = [slots.of(np.array([9, 5, 9])), slots.of(np.array([5, 9, 7]))]  # 7: not in the streams frame
    assert slots.ids.tolist() == [5, 9, 7]
    last_t = np.full(slots.size, np.nan)
    first = itl_of(batches[0], np.array([1.0, 2.0, 4.0]), last_t)  # 9 and 5 interleaved
    second = itl_of(batches[1], np.array([7.0, 10.0, 3.0]), last_t)
    np.testing.assert_array_equal(first, [np.nan, np.nan, 3.0])
    np.testing.assert_array_equal(second, [5.0, 6.0, np.nan])


def test_percentiles_of_a_repeated_sample_are_numpys_without_repeating_it():
    rng = np.random.default_rng(5)
    for _ in range(50):
        values = np.round(rng.lognormal(2, 1.5, rng.integers(1, 500)), 2)
        k = rng.integers(1, 7, values.size)
        got = percentiles_repeated({kk: values[k == kk].copy() for kk in np.unique(k).tolist()})
        want = reference_percentiles(np.repeat(values, k))
        assert got.pop("mean") == pytest.approx(want.pop("mean"), rel=1e-12) and got == want


def test_a_log_histogram_row_gives_percentiles_within_its_resolution():
    rng = np.random.default_rng(6)
    values = rng.lognormal(1, 2, 20_000)
    hist = LogHistograms()
    hist.add(np.full(values.size, 3), values)
    keys, q = hist.quantiles_by_key((0.5, 0.99))
    assert keys.tolist() == [3]
    np.testing.assert_allclose(q[0], np.quantile(values, [0.5, 0.99], method="inverted_cdf"), rtol=0.012)
    hist.add(np.array([0]), np.array([0.0]))  # a gap of 0 (read together) is 0
    assert hist.quantiles_by_key((0.5,))[1][0, 0] == 0.0
