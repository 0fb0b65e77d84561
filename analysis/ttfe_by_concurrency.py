"""How does TTFE grow with the number of streams open at the same time?"""

import sys

import numpy as np
import pandas as pd

from sseload import results

run = results.load(sys.argv[1], events=False)
s = run.streams.dropna(subset=["ttfe_ms"])
starts = np.sort(run.streams["start_ns"].to_numpy())
ends = np.sort((run.streams["start_ns"] + run.streams["duration_ms"].fillna(0) * 1e6).to_numpy())
at = s["start_ns"].to_numpy()
s = s.assign(open_streams=np.searchsorted(starts, at, "right") - np.searchsorted(ends, at, "right"))
levels = pd.cut(s["open_streams"], bins=min(10, s["open_streams"].nunique()))
table = s.groupby(levels, observed=True)["ttfe_ms"].describe(percentiles=[0.5, 0.95, 0.99])
print(table[["count", "50%", "95%", "99%", "max"]].round(1).to_string())
