"""Which streams stalled longest, and what happened to them?"""

import sys

import sseload

run = sseload.load(sys.argv[1], event_columns=["stream_id", "gap_ms"])
gaps = sseload.stream_gaps(run.events)
worst = (
    run.streams.set_index("stream_id")
    .join(gaps)
    .sort_values("max_gap_ms", ascending=False)
    .head(int(sys.argv[2]) if len(sys.argv) > 2 else 10)
)
print(worst[["outcome", "ttfe_ms", "duration_ms", "events", "max_gap_ms", "mean_gap_ms", "error"]]
      .round(1).to_string())
