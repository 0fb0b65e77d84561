"""Do gaps grow along a stream (early events fast, late ones slow)?"""

import sys

import pandas as pd

import sseload

run = sseload.load(sys.argv[1], event_columns=["stream_id", "seq", "gap_ms"])
ev = run.events.dropna(subset=["gap_ms"])
position = pd.cut(ev["seq"], bins=min(10, ev["seq"].nunique()))
table = ev.groupby(position, observed=True)["gap_ms"].describe(percentiles=[0.5, 0.99])
print(table[["count", "50%", "99%", "max"]].round(2).to_string())
