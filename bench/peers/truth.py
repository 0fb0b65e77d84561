"""The ground truth: the C server's send log turned into the numbers the tools are held to.

bench/fixed_target.c --openai --log FILE writes 16-byte records {int64 t_ns (CLOCK_MONOTONIC);
uint32 request; int32 what}: what -2 the request came (head and body read), -1 the head and role
chunk went out, 0..N-1 content chunk k went out, N the stream ended (finish_reason, usage, [DONE]).
Times are the server's own, so the truth needs no shared clock with any tool: true TTFT is the
first content chunk's send time minus the request's arrival, as the server saw them.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

import numpy as np

RECORD = np.dtype([("t_ns", "<i8"), ("request", "<u4"), ("what", "<i4")])


@dataclass
class Truth:
    requests: int  # requests that arrived
    completed: int  # streams the server finished ([DONE] sent)
    content_chunks: int
    ttft_p50: float  # ms
    ttft_p99: float
    tpot_p50: float  # per request: (last content - first content) / (chunks - 1), ms
    tpot_p99: float
    itl_p50: float  # per chunk: gaps between consecutive content chunks of a stream, ms
    itl_p99: float


def _pct(a: np.ndarray, p: float) -> float:
    return float(np.percentile(a, p)) if a.size else float("nan")


def read(log: Path, tokens: int) -> Truth:
    rec = np.fromfile(log, dtype=RECORD)
    n = int(rec["request"].max()) + 1 if rec.size else 0
    arrival = np.full(n, -1, np.int64)
    first = np.full(n, -1, np.int64)
    last = np.full(n, -1, np.int64)
    for what, into in ((-2, arrival), (0, first), (tokens - 1, last)):
        sel = rec["what"] == what
        into[rec["request"][sel]] = rec["t_ns"][sel]
    has_first = (arrival >= 0) & (first >= 0)
    ttft = (first[has_first] - arrival[has_first]) / 1e6
    whole = has_first & (last >= 0)
    tpot = (last[whole] - first[whole]) / 1e6 / max(1, tokens - 1)
    content = rec[(rec["what"] >= 0) & (rec["what"] < tokens)]
    content = content[np.lexsort((content["what"], content["request"]))]
    same = content["request"][1:] == content["request"][:-1]
    itl = np.diff(content["t_ns"])[same] / 1e6
    return Truth(requests=int((arrival >= 0).sum()), completed=int((rec["what"] == tokens).sum()),
                 content_chunks=int(content.size),
                 ttft_p50=_pct(ttft, 50), ttft_p99=_pct(ttft, 99), tpot_p50=_pct(tpot, 50), tpot_p99=_pct(tpot, 99),
                 itl_p50=_pct(itl, 50), itl_p99=_pct(itl, 99))
