"""docs/results-format.md, made from the column declarations (sseload.record.records) and the
run.json table (sseload.record.columns); a test holds the committed page to what this makes:

    python -m sseload.record.results_format > docs/results-format.md
"""

from __future__ import annotations

import sys

import sseload
from sseload.record.columns import _INTRO, RUN_JSON_FIELDS, _table
from sseload.record.records import EVENT_COLUMNS, STREAM_COLUMNS
from sseload.record.server_metrics import SERVER_METRICS_COLUMNS


def markdown() -> str:
    """docs/results-format.md, as the declarations make it."""
    lines = [_INTRO.format(version=sseload.SCHEMA_VERSION),
             "## `streams.parquet`", "", "One row per stream.", "", *_table(STREAM_COLUMNS), "",
             "## `events.parquet`", "",
             "One row per event, a stream's events in order of arrival. A stream's events are together, but",
             "for a plain stream long enough to hold over 4,096 events at a flush of the recorder: its events",
             "then come in parts, each in the batch of the second it was taken (`seq` and `gap_ms` run on",
             "across the parts); group by `stream_id` rather than rely on neighbours. \"From\" names the",
             "event arrays of `sseload.record.records.EventBuffer`.", "", *_table(EVENT_COLUMNS), "",
             "## `server_metrics.parquet`", "",
             "With `[server_metrics]`: one row per sample of each scrape of the service's own Prometheus page",
             "([server-metrics.md](server-metrics.md)).", "", *_table(SERVER_METRICS_COLUMNS), "",
             "## `run.json`", "", "One JSON object.", "", "| field | meaning |", "|---|---|",
             *(f"| `{name}` | {meaning} |" for name, meaning in RUN_JSON_FIELDS), ""]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    args = sys.argv[1:] if argv is None else argv
    if args:
        print("usage: python -m sseload.record.results_format > docs/results-format.md", file=sys.stderr)
        return 2
    sys.stdout.write(markdown())
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
