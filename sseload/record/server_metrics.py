"""The service's own metrics: a scrape of its Prometheus text page, kept compactly, written as
``server_metrics.parquet`` (one row per sample and scrape: time, name, labels, value).

Nothing here does I/O but writing and reading that file: :func:`parse` is fed the page's text and
hands back samples, the way the SSE parser is fed bytes; the scraping, its clock and its failures
are sseload.run.scraper's. The page is parsed by a small line reader of our own rather than
prometheus_client's, which takes tens of milliseconds for a vLLM page: too long for the event loop
of a process that times streams. docs/server-metrics.md says what is scraped and how it is shown.
"""

from __future__ import annotations

from array import array
from pathlib import Path
from typing import NamedTuple

import pyarrow as pa
import pyarrow.parquet as pq

from sseload.record.columns import FLOAT64, INT64, STRING, Column, schema_of

FILE_NAME = "server_metrics.parquet"
#: A sample's family is its name less one of these (a histogram's buckets, a counter's total).
SUFFIXES = ("_bucket", "_sum", "_count", "_total", "_created", "_info", "_gsum", "_gcount")

#: server_metrics.parquet's columns.
SERVER_METRICS_COLUMNS = (
    Column("time_ns", INT64, "ns", "wall clock (`time.time_ns`, the clock of `streams.parquet`'s `start_ns`) when "
           "the scrape was sent", how="the scraper's clock"),
    Column("name", STRING, "", "the sample's name as the page gives it (`vllm:num_requests_running`, "
           "`tgi_request_queue_duration_sum`)", how="the page"),
    Column("labels", STRING, "", "its labels as the page writes them, without braces (`model_name=\"m\"`); empty "
           "for none", how="the page"),
    Column("type", STRING, "", "its family's `# TYPE`: `gauge`, `counter`, `histogram`, `summary`, or `untyped`",
           how="the page's `# TYPE` line of the family"),
    Column("value", FLOAT64, "", "the sample's value (NaN and ±Inf as given)", how="the page"),
)
SERVER_METRICS_SCHEMA = schema_of(SERVER_METRICS_COLUMNS)


class Sample(NamedTuple):
    name: str
    labels: str
    type: str
    value: float


class ExpositionError(ValueError):
    """A page that is not in the Prometheus text format; the message names the line."""


def parse(text: str) -> list[Sample]:
    """The samples of one page in the Prometheus text format (OpenMetrics' text too: ``# EOF`` and
    ``_created`` lines are read as any other). A sample's own timestamp is ignored: the scrape's
    time is the one every sample of it gets."""
    types: dict[str, str] = {}
    out = []
    for n, line in enumerate(text.splitlines(), 1):
        line = line.strip()
        if not line or line[0] == "#":
            if line.startswith("# TYPE "):
                parts = line.split(None, 3)
                if len(parts) == 4:
                    types[parts[2]] = parts[3].strip().lower()
            continue
        brace = line.find("{")
        if brace >= 0:
            close = line.rfind("}")
            if close < brace:
                raise ExpositionError(f"line {n} opens labels with {{ and never closes them: {line[:120]!r}")
            name, labels, rest = line[:brace].strip(), line[brace + 1:close].strip().rstrip(","), line[close + 1:]
        else:
            name, _, rest = line.replace("\t", " ").partition(" ")
            labels = ""
        fields = rest.split()
        try:
            value = float(fields[0])
        except (IndexError, ValueError):
            raise ExpositionError(f"line {n} is not `name{{labels}} value`: {line[:120]!r}") from None
        out.append(Sample(name, labels, types.get(name) or types.get(_family(name)) or "untyped", value))
    return out


def _family(name: str) -> str:
    for suffix in SUFFIXES:
        if name.endswith(suffix):
            return name[: -len(suffix)]
    return name


class ServerSamples:
    """Every scrape's samples, 16 bytes each: a series (name, labels, type) is kept once, a sample
    is its series' number, its scrape's number and its value; a long run at a second per scrape
    stays small in memory until it is written."""

    def __init__(self) -> None:
        self._series: dict[tuple[str, str, str], int] = {}
        self.scrape_ns = array("q")  # each scrape's time
        self._scrape = array("i")
        self._id = array("i")
        self._value = array("d")

    def __len__(self) -> int:
        return len(self._value)

    @property
    def series(self) -> int:
        return len(self._series)

    def add(self, time_ns: int, samples: list[Sample]) -> None:
        """One scrape's samples, all at ``time_ns``."""
        k = len(self.scrape_ns)
        self.scrape_ns.append(time_ns)
        ids = self._series
        for s in samples:
            key = (s.name, s.labels, s.type)
            sid = ids.get(key)
            if sid is None:
                sid = ids[key] = len(ids)
            self._id.append(sid)
            self._value.append(s.value)
        self._scrape.extend([k] * len(samples))

    def table(self) -> pa.Table:
        """The documented table: series names, labels and types dictionary-encoded."""
        import numpy as np

        keys = list(self._series)
        ids = np.frombuffer(self._id, dtype=np.int32) if len(self._id) else np.zeros(0, np.int32)
        scrape = np.frombuffer(self._scrape, dtype=np.int32) if len(self._scrape) else np.zeros(0, np.int32)
        times = np.frombuffer(self.scrape_ns, dtype=np.int64) if len(self.scrape_ns) else np.zeros(0, np.int64)
        columns = [pa.array(times[scrape], INT64)]
        for i in range(3):  # name, labels, type
            column = pa.DictionaryArray.from_arrays(pa.array(ids), pa.array([k[i] for k in keys], STRING))
            columns.append(column.cast(STRING))
        columns.append(pa.array(np.frombuffer(self._value, dtype=np.float64) if len(self._value) else [], FLOAT64))
        return pa.Table.from_arrays(columns, schema=SERVER_METRICS_SCHEMA)

    def write_to(self, path: Path) -> None:
        """The samples as ``server_metrics.parquet`` at ``path`` (the run's writer makes it whole:
        sseload.run.roles)."""
        pq.write_table(self.table(), path, use_dictionary=["name", "labels", "type"])


def read(run_dir: Path):
    """The run's server metrics as a pandas frame, or None when it scraped none."""
    path = Path(run_dir) / FILE_NAME
    if not path.exists():
        return None
    return pq.read_table(path).to_pandas()
