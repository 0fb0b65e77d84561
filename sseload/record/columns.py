"""The results files' columns, each declared once: name, Arrow type, unit, meaning, where it comes from.

A ``streams.parquet`` column is declared on the :class:`~sseload.record.records.StreamRecord`
field it comes from, as ``Annotated`` metadata (``ttfe_ns: Annotated[int, ms("ttfe_ms", ...)]``),
the way a pydantic model gives a field its ``Field(description=...)``; an ``events.parquet``
column in ``records.EVENT_COLUMNS``; a ``run.json`` field in :data:`RUN_JSON_FIELDS` here. From
those declarations follow the Arrow schemas, the conversion of a batch's raw facts into columns
(``records.to_tables``: ns to ms, "did not happen" to null) and ``docs/results-format.md``::

    python -m sseload.record.results_format > docs/results-format.md

which ``tests/test_results_format.py`` holds to them. Nothing here runs per stream: the columns
are read off the record's class once, at import, and a batch is converted a column at a time.
"""

from __future__ import annotations

import dataclasses
import typing
from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

INT32, INT64, FLOAT64, BOOL, STRING = pa.int32(), pa.int64(), pa.float64(), pa.bool_(), pa.string()

#: Raw numbers that mean "did not happen": the column holds null for them (text: ``null="empty"``).
NULL_WHEN: dict[str, Callable[[np.ndarray], np.ndarray]] = {
    "negative": lambda raw: raw < 0,  # -1: a time or count not measured
    "zero": lambda raw: raw == 0,  # ids and numbers that start at 1
}
_NULL_TEXT = {"negative": "negative → null", "zero": "0 → null", "empty": '"" → null'}


class Facts:
    """A batch of records field by field: the values as recorded, and each numeric field once as int64."""

    def __init__(self, fields: tuple[str, ...], records: list[tuple]) -> None:
        self.values = dict(zip(fields, zip(*records, strict=True), strict=True)) if records \
            else dict.fromkeys(fields, ())
        self._ints: dict[str, np.ndarray] = {}

    def ints(self, field: str) -> np.ndarray:
        got = self._ints.get(field)
        if got is None:
            got = self._ints[field] = np.asarray(self.values[field], dtype=np.int64)
        return got


#: A column computed from several facts: (values, null mask).
Derivation = Callable[[Facts], tuple[np.ndarray, np.ndarray]]


@dataclass(frozen=True)
class Column:
    """One column of a results file: what a reader needs to know of it, and how it is made."""

    name: str
    type: pa.DataType
    unit: str
    meaning: str
    fact: str = ""  # the record's field it comes from (filled in from where it is declared)
    scale: float = 1.0  # the fact is divided by this (ns to ms: 1e6)
    null: str = ""  # a key of NULL_WHEN: which raw value is null
    derive: Derivation | None = None  # a column computed from several facts
    how: str = ""  # where a derived (or event) column's value comes from, in words

    def array(self, facts: Facts) -> pa.Array:
        """This column of a batch."""
        if self.derive is not None:
            values, null = self.derive(facts)
            return pa.array(values, self.type, mask=null)
        if not (pa.types.is_integer(self.type) or pa.types.is_floating(self.type)):  # text and flags as recorded
            values = facts.values[self.fact]
            return pa.array([v or None for v in values] if self.null == "empty" else list(values), self.type)
        raw = facts.ints(self.fact)
        return pa.array(raw / self.scale if self.scale != 1 else raw, self.type,
                        mask=NULL_WHEN[self.null](raw) if self.null else None)

    def origin(self) -> str:
        """Where the value comes from, for the docs: the field and its conversion, or ``how``."""
        if self.how:
            return self.how
        steps = [f"`{self.fact}`"]
        if self.scale != 1:
            steps.append(f"÷ {self.scale:,.0f}")
        if self.null:
            steps.append(f"; {_NULL_TEXT[self.null]}")
        return " ".join(steps).replace(" ;", ";")


# --- declaring a column where its fact is declared ---

def column(type_: pa.DataType, meaning: str, *, name: str = "", unit: str = "", scale: float = 1.0,
           null: str = "") -> Column:
    """A column of the field it annotates, named after it unless ``name`` says otherwise."""
    numeric = pa.types.is_integer(type_) or pa.types.is_floating(type_)
    if null and null not in (NULL_WHEN if numeric else ("empty",)):
        raise ValueError(f"null={null!r} for a {type_} column: one of {', '.join(NULL_WHEN) if numeric else 'empty'}")
    return Column(name, type_, unit, meaning, scale=scale, null=null)


def ms(name: str, meaning: str) -> Column:
    """A time in ns become ms; -1 (did not happen) null."""
    return column(FLOAT64, meaning, name=name, unit="ms", scale=1e6, null="negative")


def derived(name: str, type_: pa.DataType, unit: str, meaning: str, how: str, derive: Derivation) -> Column:
    """A column computed from several facts, declared on the one it follows in the file."""
    return Column(name, type_, unit, meaning, derive=derive, how=how)


def columns_of(record: type) -> tuple[Column, ...]:
    """The columns a record class declares, in the order of its fields (then of each field's metadata)."""
    out = []
    for field, hint in typing.get_type_hints(record, include_extras=True).items():
        for meta in getattr(hint, "__metadata__", ()):
            if isinstance(meta, Column):
                out.append(meta if meta.derive else dataclasses.replace(meta, name=meta.name or field, fact=field))
    return tuple(out)


def schema_of(columns: tuple[Column, ...]) -> pa.Schema:
    return pa.schema([(c.name, c.type) for c in columns])


# --- run.json ---

#: run.json's top-level fields (composed and written by sseload.run.runinfo).
RUN_JSON_FIELDS: tuple[tuple[str, str], ...] = (
    ("schema_version", "the results files' format: this page describes version 1"),
    ("run_id", "the run's folder name: `YYYYmmdd-HHMMSS-<scenario>` (`-2`, `-3`... for more in the same "
               "second), or `--run-id` ([security.md](security.md#run-folders))"),
    ("sseload_version", "the sseload that ran it"),
    ("locust_version", "the Locust that ran it"),
    ("python", "the Python version"),
    ("machine", "`hostname`, `platform`, `cpus`"),
    ("target_url", "the URL streamed from, credentials masked"),
    ("auth_method", "how requests were authenticated (never the credentials)"),
    ("insecure_tls", "TLS certificates were not verified"),
    ("embedded_target", "`sseload run` started the reference target: lateness is then the harness's own error"),
    ("dialect", "the LLM API the streams were read as ([llm.md](llm.md)): `name` (`openai`, `responses`, "
                "`anthropic`, `tgi`, `triton`, `gemini`, `json`), `api`, and its `output`, `output_tokens` and "
                "`finish` paths; null for plain SSE"),
    ("scenario", "the scenario as run (its body only with `[body] write = true`)"),
    ("users", "Locust's users (`-u`)"),
    ("spawn_rate", "Locust's spawn rate (`-r`)"),
    ("run_time", "Locust's run time in seconds (`-t`); null without one (the web UI)"),
    ("started_at", "when the load started (ISO 8601, UTC)"),
    ("ended_at", "when the run ended (ISO 8601, UTC)"),
    ("partial", "some of the run is missing or was cut short: `partial_reasons` says what"),
    ("partial_reason", "the reasons, in words"),
    ("partial_reasons", "each reason as `{code, text}`: a signal, a worker lost, an early stop for "
                        "authentication or a failure storm, messages refused, streams not recorded or not written"),
    ("interrupted_by", "the signal `sseload run` stopped the run with (`SIGINT`), else null: the run's exit code, "
                       "and `sseload check`'s, is then 128 + its number"),
    ("streams_started", "streams the users started, a lost worker's included"),
    ("streams_recorded", "streams recorded (one row each in `streams.parquet`, once written)"),
    ("events_recorded", "events recorded (one row each in `events.parquet`)"),
    ("outcomes", "streams recorded per outcome ([outcomes.md](outcomes.md))"),
    ("buffered_streams", "streams of three or more events that all arrived in one read: a buffering proxy or "
                         "server"),
    ("workers", "Locust workers (0 without workers), lost ones included"),
    ("lost_workers", "workers that never sent their final report"),
    ("refused_messages", "messages to the master without a valid [run key](workers.md#the-run-key) signature"),
    ("health", "the harness's health ([measurement.md](measurement.md#harness-health)): loop and reader lag, "
               "CPU and its quota, reader and parser, `skewed` and `skew_reasons`"),
    ("worker_health", "with workers, each worker's `health`; else null"),
    ("tuning", "the [switches](measurement.md#switches) the run used"),
    ("server_metrics", "with `[server_metrics]`: `url` (masked), `interval_ms`, `scrapes` kept, `failed_scrapes`, "
                       "the first failure in words (`error`, null when none), `series` and `samples` in "
                       "`server_metrics.parquet` ([server-metrics.md](server-metrics.md)); else null"),
)


# --- docs/results-format.md ---

_TYPE_NAMES = {"double": "float64"}
_INTRO = """\
# The results files' format

<!-- Generated by `python -m sseload.record.results_format > docs/results-format.md` from the
declarations in sseload/record/records.py (StreamRecord, EVENT_COLUMNS) and sseload/record/columns.py
(RUN_JSON_FIELDS); tests/test_results_format.py holds this page to them. Edit those, not this page. -->

`results/<run-id>/` holds what a run measured, and a report can be made again from it at any
time. This page is its contract, schema version {version} (`run.json` `schema_version`); how the
files are written (shards, the open shard a killed run leaves, compression, `health.parquet`) is
in [measurement.md](measurement.md#the-results-files). `sseload.load(run_dir)` reads it into
pandas: the streams at once, the events on first use of `run.events` (the report reads them a batch
at a time: measurement.md).

Times count from **t0**, the moment the stream's request started to go out ([what each number
means](measurement.md#what-each-number-means)); null means it did not happen. "From" is the
`StreamRecord` field a column comes from (what `self.stream` returns in a locustfile of your own,
in nanoseconds and -1 for "did not happen") and how it is converted.
"""


def _table(columns: tuple[Column, ...]) -> list[str]:
    rows = ["| column | type | unit | meaning | from |", "|---|---|---|---|---|"]
    for c in columns:
        kind = _TYPE_NAMES.get(str(c.type), str(c.type))
        rows.append(f"| `{c.name}` | {kind} | {c.unit} | {c.meaning} | {c.origin()} |")
    return rows
