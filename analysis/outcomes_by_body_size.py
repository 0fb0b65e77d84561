"""Which request sizes get cut off, rejected or fail?"""

import sys

import pandas as pd

import sseload

run = sseload.load(sys.argv[1], events=False)
s = run.streams
table = pd.crosstab(s["body_bytes"], s["outcome"], margins=True, margins_name="all")
share = table.div(table["all"], axis=0).drop(columns="all")
print(table.to_string())
print()
print("share of streams by outcome:")
print(share.round(3).to_string())
