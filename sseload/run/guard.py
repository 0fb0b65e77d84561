"""The early-stop guard: a run that can only measure a broken setup stops itself.

When the first streams all fail authentication, or all fail the same other way with none
succeeding, going on would only measure the setup (wrong credentials, host or path), and with
credentials it can lock an access key at the gateway. The guard watches each stream's outcome
until the first success (or a second kind of failure, which is the service's, not the setup's)
and then asks its process to stop once, with the sentence that says why. The verdict reads that
reason back from run.json (sseload.run.verdict.STOPPED_EARLY).
"""

from __future__ import annotations

from collections.abc import Callable

from sseload.protocol.outcomes import AUTHENTICATED, SUCCEEDED, Outcome
from sseload.record.records import StreamRecord
from sseload.run.runinfo import AUTH_STOP, FAILURE_STORM
from sseload.scenario.model import Auth, Load


class EarlyStop:
    """Counts the first streams' failures; calls ``stop(code, text)`` once when they say the setup is broken."""

    def __init__(self, auth: Auth, load: Load, stop: Callable[[str, str], None]) -> None:
        self.auth = auth
        self.load = load
        self.stop = stop
        self.stopped = False
        self.auth_failures = 0
        self.auth_ok = False
        self.succeeded = False  # a stream ended ok: failures from now on are the service's, not the setup's
        self.first_failure: tuple | None = None  # (outcome, status, code) of the first failed stream
        self.same_failures = 0  # how many streams in a row, from the first, failed that same way

    def after_stream(self, record: StreamRecord, sent: bool = True) -> None:
        """One more stream ended. A stream never sent (a body skipped for its size) says nothing of
        the service: it does not count."""
        outcome = record.outcome
        if outcome in AUTHENTICATED:
            self.auth_ok = True
        if outcome in SUCCEEDED:
            self.succeeded = True
        if self.succeeded or self.stopped or not outcome.error or not sent:
            return
        if outcome is Outcome.AUTH_ERROR:
            self.auth_failures += 1
            limit = self.auth.stop_after_failures
            if not self.auth_ok and limit and self.auth_failures >= limit:
                if self.auth.method == "none":
                    advice = "the service demands authentication the scenario does not give: set [auth] method"
                else:
                    advice = (f"check the credentials for [auth] method = {self.auth.method!r} "
                              "(the gateway locks an AK after 5 failures)")
                self._stop(AUTH_STOP, f"stopped early: the first {self.auth_failures} streams all failed "
                                      f"authentication ({record.error_code or 'no error code'}); {advice}")
            return
        limit = self.load.stop_after_failures
        if not limit:
            return
        cause = (outcome, record.status, record.error_code)
        if self.first_failure is None:
            self.first_failure = cause
        if cause != self.first_failure:  # failures of more than one kind: the service's, not the setup's
            self.succeeded = True  # (stop looking: nothing more to learn about the setup)
            return
        self.same_failures += 1
        if self.same_failures >= limit:
            status = f" {record.status}" if record.status else ""
            code = f" {record.error_code}" if record.error_code else ""
            self._stop(FAILURE_STORM, f"stopped early: the first {limit} streams all failed the same way, "
                                      f"{outcome}{status}{code} ({record.error[:300]}), and none succeeded; check "
                                      "-H, the path and the scenario ([load] stop_after_failures = 0 runs on "
                                      "regardless)")

    def _stop(self, code: str, text: str) -> None:
        self.stopped = True
        self.stop(code, text)
