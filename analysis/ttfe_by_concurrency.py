"""How does TTFE grow with the number of streams open at the same time?"""

import sys

import pandas as pd

import sseload

run = sseload.load(sys.argv[1], events=False)
s = run.streams.dropna(subset=["ttfe_ms"])
s = s.assign(open_streams=sseload.active_streams_at(run.streams, s["start_ns"].to_numpy()))
levels = pd.cut(s["open_streams"], bins=min(10, s["open_streams"].nunique()))
table = s.groupby(levels, observed=True)["ttfe_ms"].describe(percentiles=[0.5, 0.95, 0.99])
print(table[["count", "50%", "95%", "99%", "max"]].round(1).to_string())
