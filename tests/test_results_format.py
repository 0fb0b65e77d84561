"""The results files' columns are declared once; the schemas, the conversion and the docs page follow."""

from __future__ import annotations

from typing import Annotated, NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from sseload.record import records, results_format
from sseload.record.columns import FLOAT64, STRING, Facts, column, columns_of, ms, schema_of
from sseload.record.records import EVENTS_SCHEMA, STREAMS_SCHEMA, EventBuffer, StreamRecord, to_tables
from tests.conftest import ROOT

pytestmark = pytest.mark.unit

#: Schema version 1 as it was first written: a column may be added, none renamed, retyped or dropped.
SCHEMA_1_STREAMS = {
    "stream_id": "int64", "worker": "int32", "user": "int32", "start_ns": "int64", "schedule_lag_ms": "double",
    "connect_ms": "double", "upload_ms": "double", "ttfb_ms": "double", "ttfe_ms": "double",
    "duration_ms": "double", "sign_us": "double", "auth_fetch_ms": "double", "status": "int32",
    "content_type": "string", "charset_warning": "bool", "body_bytes": "int64", "response_bytes": "int64",
    "events": "int32", "malformed_events": "int32", "outcome": "string", "error_code": "string", "error": "string",
    "reused": "bool", "retried": "bool", "redirects": "int32", "feed_id": "int64", "reconnect_ms": "double",
    "missed_events": "int32", "feed_gap_ms": "double", "ttft_ms": "double", "tpot_ms": "double",
    "output_tokens": "int32", "tokens_per_s": "double", "prompt_tokens": "int32", "tokens_from": "string",
    "finish_reason": "string", "conversation_id": "int64", "turn": "int32",
}
SCHEMA_1_EVENTS = {
    "stream_id": "int64", "seq": "int32", "t_ms": "double", "gap_ms": "double", "bytes": "int32",
    "lateness_ms": "double", "output": "bool", "answer": "bool", "completion_tokens": "int32", "tokens": "int32",
}


def test_the_committed_results_format_page_is_what_the_declarations_make():
    page = (ROOT / "docs" / "results-format.md").read_text()
    assert page == results_format.markdown(), "run: python -m sseload.record.results_format > docs/results-format.md"


def test_a_column_declared_on_a_records_field_is_in_the_schema_the_conversion_and_the_docs():
    class Record(NamedTuple):
        id: int  # a fact with no column of its own
        wait_ns: Annotated[int, ms("wait_ms", "how long it waited")] = -1
        label: Annotated[str, column(STRING, "its name", null="empty")] = ""

    declared = columns_of(Record)
    assert schema_of(declared) == pa.schema([("wait_ms", FLOAT64), ("label", STRING)])
    facts = Facts(Record._fields, [Record(1, 2_500_000, "x"), Record(2)])
    assert [c.array(facts).to_pylist() for c in declared] == [[2.5, None], ["x", None]]
    assert [c.origin() for c in declared] == ["`wait_ns` ÷ 1,000,000; negative → null", '`label`; "" → null']


def test_a_null_that_cannot_fit_the_columns_type_is_refused_where_it_is_declared():
    with pytest.raises(ValueError, match="null='empty'"):
        column(FLOAT64, "a time", null="empty")
    with pytest.raises(ValueError, match="null='zero'"):
        column(STRING, "a name", null="zero")


def test_every_fact_of_the_record_reaches_the_files():
    """A field is a column's fact, or named where a column is derived from it: none is recorded for nothing."""
    used = {c.fact for c in records.STREAM_COLUMNS}
    derivations = " ".join(c.how for c in (*records.STREAM_COLUMNS, *records.EVENT_COLUMNS))
    assert [f for f in StreamRecord._fields if f not in used and f"`{f}`" not in derivations] == []


def test_schema_version_1_columns_keep_their_names_and_types():
    assert {name: str(STREAMS_SCHEMA.field(name).type) for name in SCHEMA_1_STREAMS} == SCHEMA_1_STREAMS
    assert {f.name: str(f.type) for f in EVENTS_SCHEMA} == SCHEMA_1_EVENTS


def test_the_http_version_column_is_the_responses_and_null_without_a_head():
    def record(**over):
        base = dict(stream_id=1, worker=0, user=0, t0_perf_ns=0, start_ns=1, scheduled_ns=0, connect_ns=-1,
                    upload_ns=0, ttfb_ns=-1, ttfe_ns=-1, duration_ns=1, sign_ns=0, auth_fetch_ns=0, status=0,
                    content_type="", charset_warning=False, body_bytes=0, response_bytes=0, events=0,
                    malformed_events=0, outcome="reset", error_code="", error="", reused=False)
        return StreamRecord(**{**base, **over})

    streams, _ = to_tables([record(http_version="1.1", status=200), record(http_version="1.0", status=200),
                            record()], EventBuffer())
    assert streams.column("http_version").to_pylist() == ["1.1", "1.0", None]


def test_a_run_recorded_before_a_column_was_added_still_loads(tmp_path):
    """Schema version 1 without http_version: what a run recorded before it was added holds."""
    from sseload.views.results import load, summarise

    record = StreamRecord(stream_id=1, worker=0, user=0, t0_perf_ns=0, start_ns=10**18, scheduled_ns=0,
                          connect_ns=-1, upload_ns=0, ttfb_ns=1_000_000, ttfe_ns=2_000_000, duration_ns=3_000_000,
                          sign_ns=0, auth_fetch_ns=0, status=200, content_type="text/event-stream",
                          charset_warning=False, body_bytes=0, response_bytes=100, events=1, malformed_events=0,
                          outcome="ok", error_code="", error="", reused=False)
    events = EventBuffer()
    events.t_ns.append(2_000_000)
    events.size.append(10)
    events.server_ns.append(0)
    streams, event_table = to_tables([record], events)
    pq.write_table(streams.drop_columns(["http_version"]), tmp_path / "streams.parquet")
    pq.write_table(event_table, tmp_path / "events.parquet")
    run = load(tmp_path)
    assert "http_version" not in run.streams and summarise(run)["streams"] == 1
