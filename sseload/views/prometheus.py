"""Live metrics in the Prometheus exposition format, for dashboards (Grafana) of long soak runs.

Served by the process that aggregates (standalone, or the master with workers) with the well-kept
``prometheus_client``: ``sseload run --prometheus 9646`` (or Locust's ``--sseload-prometheus``),
and on the web UI at ``/sseload/metrics``. The numbers are :mod:`sseload.views.live`'s, read at each
scrape: histograms of TTFE, gaps, TTFT and TPOT in seconds (Prometheus's unit), events, streams by
outcome and output tokens as counters, active streams as a gauge.

A histogram's ``le`` buckets are counted from sseload.views.live's log bins lying wholly below each
bound: a value within 1.2% under a bound may be counted in the next bucket up.
"""

from __future__ import annotations

from collections.abc import Callable

from prometheus_client import CollectorRegistry, generate_latest, start_http_server
from prometheus_client.core import CounterMetricFamily, GaugeMetricFamily, HistogramMetricFamily

from sseload.protocol.gateway import DEFAULT_LIMIT_S
from sseload.record.metrics import EVENTS, GAP, TPOT, TTFE, TTFT, Metric
from sseload.views.live import LiveStats

#: Bucket bounds, seconds: 1 ms to the gateway's 40 s and beyond.
BUCKETS_S = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0, 20.0, DEFAULT_LIMIT_S,
             60.0)
#: Each live histogram's metric name.
HISTOGRAMS: tuple[tuple[Metric, str], ...] = (
    (TTFE, "sseload_ttfe_seconds"), (GAP, "sseload_gap_seconds"),
    (TTFT, "sseload_ttft_seconds"), (TPOT, "sseload_tpot_seconds"),
)


class LiveCollector:
    """A prometheus_client collector over a process's LiveStats: nothing is copied until a scrape."""

    def __init__(self, live: Callable[[], LiveStats], active: Callable[[], int], run_id: Callable[[], str]) -> None:
        self.live, self.active, self.run_id = live, active, run_id

    def collect(self):
        live = self.live()
        live.count_open()
        run = live.run
        labels, values = ["run_id"], [self.run_id()]
        for metric, name in HISTOGRAMS:
            h = run.hist[metric.key]
            family = HistogramMetricFamily(name, f"{metric.label}: {metric.definition}", labels=labels)
            counts = h.count_at_most([b * 1e3 for b in BUCKETS_S])
            buckets = [(f"{b:g}", c) for b, c in zip(BUCKETS_S, counts, strict=True)] + [("+Inf", h.total)]
            family.add_metric(values, buckets, h.sum / 1e3)
            yield family
        counters = (
            ("sseload_events", f"{EVENTS.label}, counted as they arrive", run.events),
            ("sseload_first_events", "streams whose first event arrived", run.first_events),
            ("sseload_output_tokens", "OpenAI-style streams: output tokens of ended streams", run.tokens),
        )
        for name, text, value in counters:
            family = CounterMetricFamily(name, text, labels=labels)
            family.add_metric(values, value)
            yield family
        streams = CounterMetricFamily("sseload_streams", "streams ended, by outcome", labels=[*labels, "outcome"])
        for outcome, n in sorted(run.outcomes.items()):
            streams.add_metric([*values, str(outcome)], n)
        yield streams
        active = GaugeMetricFamily("sseload_active_streams", "streams open now", labels=labels)
        active.add_metric(values, self.active())
        yield active


def registry_for(ctx) -> CollectorRegistry:
    """A registry of the run's live metrics only (not the process's own, which Locust's users do not need)."""
    registry = CollectorRegistry(auto_describe=False)
    registry.register(LiveCollector(lambda: ctx.live, ctx.all_active, lambda: ctx.run_id))
    return registry


def exposition(ctx) -> bytes:
    """The metrics as one scrape would get them (the web UI's /sseload/metrics)."""
    return generate_latest(registry_for(ctx))


def parse_address(text: str) -> tuple[str, int]:
    """``9646`` (on 127.0.0.1) or ``HOST:PORT`` (``0.0.0.0:9646`` for scrapers on other machines)."""
    host, _, port = text.rpartition(":")
    try:
        number = int(port)
    except ValueError:
        number = -1
    if not 0 < number < 65536:
        raise ValueError(f"--prometheus {text!r}: give a port (9646) or HOST:PORT (0.0.0.0:9646)")
    return host.strip("[]") or "127.0.0.1", number


def serve(ctx, address: str) -> tuple[str, int]:
    """Serve the run's live metrics at http://HOST:PORT/metrics; returns where."""
    host, port = parse_address(address)
    start_http_server(port, addr=host, registry=registry_for(ctx))
    return host, port
