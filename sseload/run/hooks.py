"""Locust's hooks and sseload's options: each hook hands over to the process's role.

Importing this module (``sseload.run.user`` does) registers listeners on Locust's events, so any
locustfile that uses :class:`sseload.run.user.SSEUser` records streams, whether it is started by
``sseload run`` or by ``locust -f`` directly. The ``init`` hook picks the scenario
(sseload.scenario.load.select) and builds the process's role (standalone or worker,
sseload.run.roles; master, sseload.run.master), which owns that role's state and part of the
lifecycle; every later hook calls one of its methods.
"""

from __future__ import annotations

import os
import sys

from locust import events

from sseload.record import redact
from sseload.run import planfile, webui
from sseload.run import verdict as run_verdict
from sseload.run.master import MasterRole
from sseload.run.process import watch_for_orphaning
from sseload.run.roles import LocalRole, Role, WorkerRole
from sseload.scenario.flags import add_request_flags
from sseload.scenario.load import select
from sseload.scenario.model import ScenarioError

ROLE_ATTR = "sseload_role"
#: Locust's runner kind -> the role of its process.
ROLES = {"local": LocalRole, "worker": WorkerRole, "master": MasterRole}


@events.init_command_line_parser.add_listener
def _add_options(parser) -> None:
    group = parser.add_argument_group("sseload")
    group.add_argument("--scenario", default=None, help="sseload scenario (TOML); default: the embedded one")
    group.add_argument("--results-dir", default="results", help="where run directories go (default results/)")
    group.add_argument("--run-id", default=None, help="name of this run's directory, refused if it exists "
                       "(default: time-scenario)")
    group.add_argument("--insecure", action="store_true", default=False,
                       help="do not verify TLS certificates (the report says so)")
    add_request_flags(group)
    group.add_argument("--sseload-prometheus", metavar="[HOST:]PORT", default=None,
                       help="serve live metrics for Prometheus at http://HOST:PORT/metrics (host default 127.0.0.1)")
    group.add_argument(planfile.OPTION, metavar="FILE", default=None,
                       help="the run-plan file `sseload run` writes for the Locust processes it starts "
                            "(docs/workers.md); not for use by hand")
    # The web UI has no authentication and can start load: loopback unless --web-host (or
    # LOCUST_WEB_HOST, or locust.conf) says otherwise; then webui.install says how to protect it.
    # (Locust prints --help before it imports a locustfile: its "Defaults to '*'" stays there.)
    parser.set_defaults(web_host=webui.DEFAULT_WEB_HOST)


def _kind(runner) -> str:
    from locust.runners import MasterRunner, WorkerRunner

    return "master" if isinstance(runner, MasterRunner) else "worker" if isinstance(runner, WorkerRunner) else "local"


@events.init.add_listener
def _on_init(environment, **_kw) -> None:
    opts = environment.parsed_options
    try:
        path = getattr(opts, "sseload_plan", None)
        launch = planfile.PlanFile.read(path) if path else None
        watch_for_orphaning(launch.orphan_grace_s if launch else None)
        scenario, host = select(getattr(opts, "scenario", None), environment.host, opts,
                                embedded=bool(launch and launch.embedded_target))
        if launch:
            launch.apply(scenario)
        role = ROLES[_kind(environment.runner)](environment, scenario, host, launch)
    except (run_verdict.BadInput, ScenarioError, planfile.PlanFileError) as err:
        _fatal(str(err))
    setattr(environment, ROLE_ATTR, role)
    if environment.host:  # the streams use the plan's URL; what Locust shows (its web UI) carries no credential
        environment.host = redact.mask_url(environment.host)


def role_of(environment) -> Role:
    """The process's role, built by the init hook."""
    role = getattr(environment, ROLE_ATTR, None)
    if role is None:
        raise RuntimeError("sseload's init did not run in this Locust process: start it with `locust -f` or "
                           "`sseload run`, whose init hook builds the run (sseload.run.hooks)")
    return role


def _fatal(message: str) -> None:
    sys.stderr.write(f"sseload: {redact.terminal(message)}\n")
    sys.stderr.flush()
    os._exit(run_verdict.BAD_INPUT)  # before any load: nothing to flush, and Locust must not print a traceback


def _forward(hook: str):
    """A listener that hands Locust's event to the process's role (set by the init hook)."""

    def listener(environment, **_kw) -> None:
        role = getattr(environment, ROLE_ATTR, None)
        if role is not None:
            getattr(role, hook)()

    listener.__name__ = f"_on_{hook}"
    return listener


for _hook in ("test_start", "test_stopping", "test_stop", "quitting"):
    getattr(events, _hook).add_listener(_forward(_hook))
