"""How far off is sseload itself? Lateness of each event against the target's send time."""

import sys

import sseload

run = sseload.load(sys.argv[1], event_columns=["stream_id", "seq", "lateness_ms"])
late = run.events.dropna(subset=["lateness_ms"])
if late.empty:
    sys.exit("no event carries the server's send time (only the reference target sends it)")
first = late[late["seq"] == 0]["lateness_ms"]
print("TTFE error (first event) ms:", first.describe(percentiles=[0.5, 0.99]).round(3).to_dict())
print("event lateness ms:", late["lateness_ms"].describe(percentiles=[0.5, 0.99, 0.999]).round(3).to_dict())
health = run.info.get("health", {})
print("reader:", health.get("reader"), "| reader thread lag p99 ms:", health.get("reader_lag_p99_ms"),
      "| event-loop lag p99 ms:", health.get("loop_lag_p99_ms"), "| skewed:", health.get("skewed"))
