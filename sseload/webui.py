"""The "SSE streams" tab in Locust's web UI: live TTFE and gap percentiles, active streams,
events/s, outcomes and cutoffs, and a link to the run's report; for OpenAI-style streams
(sseload.llm) also live TTFT percentiles and output tokens/s.

Built on Locust's own extension points: ``extended_tabs``/``extended_tables`` template
arguments, an ``extended_stats`` entry added to ``/stats/requests``, and, with workers,
``report_to_master``/``worker_report`` to bring each worker's recent samples to the master.
"""

from __future__ import annotations

import json
import time
from collections import Counter, deque

import numpy as np

from sseload.metrics import ACTIVE_STREAMS, EVENTS_PER_S, GAP, OUTPUT_TOKENS_PER_S, TTFE, TTFT, Metric
from sseload.outcomes import Outcome

TAB = "sseload"
WINDOW_S = 10.0
MAX_SAMPLES = 20_000  # TTFE (and TTFT) samples per window: bounded memory whatever the load
MAX_REPORT_SAMPLES = 2_000  # TTFE (and TTFT) samples a worker sends the master per report
MAX_GAP_SAMPLES = 400_000  # gap samples per window (3.2 MB): 5 s of 80,000 events/s
MAX_REPORT_GAPS = 5_000  # gaps a worker sends the master per report
#: The tab's own rows (live counts, not summary metrics: those take their labels from sseload.metrics).
FINISHED = "streams finished"
CUTOFFS = "cutoffs (gateway limit)"


def _pct(values: np.ndarray, ps: tuple) -> str:
    """Percentiles as the tab shows them: ``12.3 / 45.6 / 78.9``; dashes without samples."""
    if not values.size:
        return " / ".join(["-"] * len(ps))
    return " / ".join(f"{v:.1f}" for v in np.percentile(values, ps))


def _latency_row(metric: Metric, samples: deque) -> tuple[str, str]:
    """A rolling window's p50 / p95 / p99 of (time s, ms) samples: TTFE's, TTFT's."""
    values = np.fromiter((v for _, v in samples), float, len(samples))
    return f"{metric.label} p50 / p95 / p99 ({metric.unit}, last {WINDOW_S:g} s)", _pct(values, (50, 95, 99))


class LiveStats:
    """Recent samples (a rolling window) and running totals, for the web UI only.

    A stream's gaps arrive as one array and stay one entry: with workers or a web UI this runs
    for every stream, and a float and a tuple per event here cost about 0.1 µs per event more
    (235-287 against 137-155 ns per event, measured in isolation) on a path that spends 10 in all.
    """

    def __init__(self) -> None:
        self.ttfe = deque(maxlen=MAX_SAMPLES)  # (time s, ms)
        self.ttft = deque(maxlen=MAX_SAMPLES)  # (time s, ms): OpenAI-style streams only
        self.tokens = deque()  # (time s, output tokens)
        self.token_streams = 0  # OpenAI-style streams seen: the tab shows token rows once there is one
        self.gaps = deque()  # (time s, ms array): a stream's, or a worker's report's
        self._gap_count = 0
        self._gaps_capped_at = float("-inf")  # when the sample cap last dropped gaps
        self.events = deque()  # (time s, count)
        self.outcomes: Counter[str] = Counter()
        self.active = 0
        self._outbox = self._empty_outbox()

    @staticmethod
    def _empty_outbox() -> dict:
        return {"ttfe": [], "gaps": [], "gap_count": 0, "events": 0, "outcomes": Counter(),
                "ttft": [], "tokens": 0, "token_streams": 0}

    def add_stream(self, outcome: str, ttfe_ms: float | None, gaps_ms: np.ndarray, n_events: int) -> None:
        now = time.monotonic()
        self.outcomes[outcome] += 1
        self.events.append((now, n_events))
        if ttfe_ms is not None:
            self.ttfe.append((now, ttfe_ms))
        self._add_gaps(now, gaps_ms)
        box = self._outbox  # what a worker sends the master next
        box["outcomes"][outcome] += 1
        box["events"] += n_events
        if ttfe_ms is not None and len(box["ttfe"]) < MAX_REPORT_SAMPLES:
            box["ttfe"].append(ttfe_ms)
        room = MAX_REPORT_GAPS - box["gap_count"]
        if room > 0 and gaps_ms.size:
            box["gaps"].append(gaps_ms[:room])
            box["gap_count"] += min(room, gaps_ms.size)

    def add_tokens(self, ttft_ms: float | None, output_tokens: int) -> None:
        """An OpenAI-style stream's token facts (its record's ttft_ns and output_tokens), beside add_stream's."""
        now = time.monotonic()
        self.token_streams += 1
        self.tokens.append((now, output_tokens))
        if ttft_ms is not None:
            self.ttft.append((now, ttft_ms))
        box = self._outbox
        box["token_streams"] += 1
        box["tokens"] += output_tokens
        if ttft_ms is not None and len(box["ttft"]) < MAX_REPORT_SAMPLES:
            box["ttft"].append(ttft_ms)

    def _add_gaps(self, now: float, gaps_ms: np.ndarray) -> None:
        if not gaps_ms.size:
            return
        self.gaps.append((now, gaps_ms))
        self._gap_count += gaps_ms.size
        while self._gap_count > MAX_GAP_SAMPLES:  # the oldest go first, as from a bounded deque
            when, dropped = self.gaps.popleft()
            self._gap_count -= dropped.size
            self._gaps_capped_at = when

    def take_report(self, active: int) -> dict:
        box = self._outbox
        self._outbox = self._empty_outbox()
        gaps = np.concatenate(box["gaps"]).tolist() if box["gaps"] else []  # msgpack takes lists
        return {"ttfe": box["ttfe"], "gaps": gaps, "events": box["events"],
                "outcomes": dict(box["outcomes"]), "active": active,
                "ttft": box["ttft"], "tokens": box["tokens"], "token_streams": box["token_streams"]}

    def merge_report(self, report: dict, worker_active: dict, worker_id: str) -> None:
        now = time.monotonic()
        self.ttfe.extend((now, v) for v in report["ttfe"])
        self._add_gaps(now, np.asarray(report["gaps"], dtype=np.float64))
        self.events.append((now, report["events"]))
        self.outcomes.update(report["outcomes"])
        if report["token_streams"]:
            self.token_streams += report["token_streams"]
            self.ttft.extend((now, v) for v in report["ttft"])
            self.tokens.append((now, report["tokens"]))
        worker_active[worker_id] = report["active"]

    def _token_rows(self) -> list[tuple[str, str]]:
        """TTFT percentiles and output tokens/s, once an OpenAI-style stream was seen; none for plain SSE."""
        if not self.token_streams:
            return []
        tokens_per_s = sum(n for _, n in self.tokens) / WINDOW_S
        return [
            _latency_row(TTFT, self.ttft),
            (f"{OUTPUT_TOKENS_PER_S.label} ({OUTPUT_TOKENS_PER_S.unit}, completed streams)",
             OUTPUT_TOKENS_PER_S.format(tokens_per_s)),
        ]

    def rows(self, active: int, report_href: str | None) -> list[dict]:
        now = time.monotonic()
        for q in (self.ttfe, self.events, self.ttft, self.tokens):
            while q and q[0][0] < now - WINDOW_S:
                q.popleft()
        while self.gaps and self.gaps[0][0] < now - WINDOW_S:
            self._gap_count -= self.gaps.popleft()[1].size
        gaps = np.concatenate([a for _, a in self.gaps]) if self.gaps else np.empty(0)

        gap_window_s = min(WINDOW_S, now - self._gaps_capped_at)  # shorter where the cap cut it

        total = sum(self.outcomes.values())
        events_per_s = sum(n for _, n in self.events) / WINDOW_S
        rows = [
            (ACTIVE_STREAMS, str(active)),
            _latency_row(TTFE, self.ttfe),
            *self._token_rows(),
            (f"{GAP.label} p50 / p99 / max ({GAP.unit}, last {gap_window_s:.2g} s)", _pct(gaps, (50, 99, 100))),
            (f"{EVENTS_PER_S.unit} (completed streams)", EVENTS_PER_S.format(events_per_s)),
            (FINISHED, str(total)),
            (CUTOFFS, str(self.outcomes.get(Outcome.CUTOFF, 0))),
        ]
        rows += [(f"outcome: {name}", f"{count} ({count / total:.1%})")
                 for name, count in sorted(self.outcomes.items())]
        if report_href:
            rows.append(("report", report_href))
        return [{"metric": k, "value": v} for k, v in rows]


def install(environment, ctx) -> None:
    """Add the tab to a Locust web UI (local or master process)."""
    from flask import request, send_file

    web_ui = environment.web_ui
    if web_ui is None:
        return
    web_ui.template_args["extended_tabs"] = [{"title": "SSE streams", "key": TAB}]
    web_ui.template_args["extended_tables"] = [
        {"key": TAB, "structure": [{"key": "metric", "title": "Metric"}, {"key": "value", "title": "Value"}]}
    ]
    web_ui.template_args["extended_csv_files"] = [{"href": "./sseload/report", "title": "sseload report (HTML)"}]
    worker_active: dict[str, int] = {}

    def active() -> int:
        return ctx.active_streams + sum(worker_active.values())

    @web_ui.app.after_request
    def add_sse_stats(response):
        if request.path != "/stats/requests" or response.status_code != 200:
            return response
        doc = response.get_json(silent=True)
        if doc is None:
            return response
        stopped = environment.runner is not None and environment.runner.state in ("stopped",)
        href = "./sseload/report" if stopped else None
        doc["extended_stats"] = [{"key": TAB, "data": ctx.live.rows(active(), href)}]
        response.set_data(json.dumps(doc))
        return response

    @web_ui.app.route("/sseload/report")
    def sseload_report():
        """Write the run's files as they are now and show its report."""
        from sseload import report, results
        from sseload.plugin import snapshot_run

        snapshot_run(environment, ctx)
        run = results.load(ctx.run_dir)
        paths = report.write_all(run)
        return send_file(paths[0].resolve())

    if ctx.role == "master":
        @environment.events.worker_report.add_listener
        def on_worker_report(client_id, data, **_kw):
            if "sseload" in data:
                ctx.live.merge_report(data["sseload"], worker_active, client_id)


def install_worker(environment, ctx) -> None:
    @environment.events.report_to_master.add_listener
    def on_report(client_id, data, **_kw):
        data["sseload"] = ctx.live.take_report(ctx.active_streams)
