"""The service's own metrics, scraped while the load runs ([server_metrics], docs/server-metrics.md).

The scraper is a greenlet of the process that writes the run's files (standalone, or the master;
never a worker), so a run scrapes once however many workers it has, and never on a stream's way:
it fetches the page cooperatively and parses it with sseload.record.server_metrics' line reader.
Each scrape is stamped with the wall clock (``time.time_ns``) when it was sent, the clock of every
stream's ``start_ns``, so the report draws the service's series on the run's own time axis. Scrapes
keep an absolute schedule; one that overran its interval makes the next one skip, never bunch up.

An endpoint that fails, or stops answering mid-run, is said once on the console and counted in
run.json's ``server_metrics``; it never stops or fails the run.
"""

from __future__ import annotations

import logging
import math
import time
import urllib.error
import urllib.request
from collections.abc import Callable

import sseload
from sseload.record import redact
from sseload.record.server_metrics import ExpositionError, ServerSamples, parse
from sseload.run.verdict import BadInput
from sseload.scenario.load import expand_env
from sseload.scenario.model import ScenarioError, ServerMetrics

log = logging.getLogger("sseload")
#: The text format first (OpenMetrics reads the same way here), anything else after it.
ACCEPT = "text/plain;version=0.0.4;q=1.0,application/openmetrics-text;q=0.5,*/*;q=0.1"
MAX_PAGE_BYTES = 32 << 20  # a page larger than this is refused, not held
MIN_TIMEOUT_S = 2.0


class Scraper:
    """Scrapes ``url`` every ``interval_s`` once started; ``fetch`` (url, timeout_s) -> text is
    replaceable for a test."""

    def __init__(self, url: str, interval_s: float, fetch: Callable[[str, float], str] | None = None) -> None:
        self.url = url
        self.shown_url = redact.mask_url(url)
        self.interval_s = interval_s
        self.timeout_s = max(MIN_TIMEOUT_S, 2 * interval_s)
        self.samples = ServerSamples()
        self.scrapes = 0  # answered and parsed
        self.failed = 0
        self.error = ""  # the first failure, in words
        self._fetch = fetch or fetch_page
        self._greenlet = None

    def start(self) -> None:
        """Scrape now and then every interval, until :meth:`stop` (a second start is a no-op)."""
        if self._greenlet is None:
            import gevent

            self._greenlet = gevent.spawn(self._run)

    def stop(self) -> None:
        if self._greenlet is not None:
            self._greenlet.kill()
            self._greenlet = None

    def _run(self) -> None:
        import gevent

        due = time.monotonic()
        while True:
            self.scrape()
            due += self.interval_s
            now = time.monotonic()
            if due < now:  # the scrape overran: the next one is the next tick still ahead
                due += math.ceil((now - due) / self.interval_s) * self.interval_s
            gevent.sleep(due - now)

    def scrape(self) -> bool:
        """One scrape, kept or counted as failed; whether it was kept."""
        sent_ns = time.time_ns()
        try:
            samples = parse(self._fetch(self.url, self.timeout_s))
        except (OSError, ValueError) as err:  # refused, reset, timed out, an HTTP error, not the text format
            self._failed(_why(err, self.timeout_s))
            return False
        self.samples.add(sent_ns, samples)
        self.scrapes += 1
        return True

    def _failed(self, why: str) -> None:
        self.failed += 1
        if self.error:
            return
        self.error = why if not self.scrapes else f"stopped answering after {self.scrapes} scrapes: {why}"
        log.warning("sseload: server metrics at %s: %s; the run goes on without them (said once; run.json's "
                    "server_metrics counts the failed scrapes)", self.shown_url, redact.terminal(self.error))

    def info(self) -> dict:
        """run.json's ``server_metrics``."""
        return {"url": self.shown_url, "interval_ms": self.interval_s * 1e3, "scrapes": self.scrapes,
                "failed_scrapes": self.failed, "error": self.error or None, "series": self.samples.series,
                "samples": len(self.samples)}


def fetch_page(url: str, timeout_s: float) -> str:
    """The page at ``url`` (cooperative under gevent's patched sockets), as text."""
    request = urllib.request.Request(url, headers={"Accept": ACCEPT, "User-Agent": f"sseload/{sseload.__version__}"})
    with urllib.request.urlopen(request, timeout=timeout_s) as response:  # noqa: S310 (the scenario's own URL)
        body = response.read(MAX_PAGE_BYTES + 1)
    if len(body) > MAX_PAGE_BYTES:
        raise ExpositionError(f"the page is larger than {MAX_PAGE_BYTES >> 20} MiB")
    return body.decode("utf-8", errors="replace")


def _why(err: Exception, timeout_s: float) -> str:
    if isinstance(err, urllib.error.HTTPError):
        return f"HTTP {err.code} {redact.from_server(str(err.reason), 80)}"
    if isinstance(err, urllib.error.URLError):
        err = err.reason if isinstance(err.reason, Exception) else err
    if isinstance(err, TimeoutError):
        return f"no answer within {timeout_s:g} s"
    if isinstance(err, ConnectionRefusedError):
        return "connection refused (nothing listens there)"
    return redact.from_server(str(err) or type(err).__name__, 200)


def scraper_for(spec: ServerMetrics) -> Scraper | None:
    """The run's scraper, or None when the scenario names no [server_metrics] url; a ``${VAR}`` in
    the URL is read from the environment here, before any load."""
    if not spec.url:
        return None
    try:
        url = expand_env(spec.url, "[server_metrics] url") if "${" in spec.url else spec.url
    except ScenarioError as err:
        raise BadInput(str(err)) from None
    return Scraper(url, spec.interval_ms / 1e3)
