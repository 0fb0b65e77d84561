"""Load shapes through Locust's LoadTestShape, configured by a scenario's [load] table.

    shape = "ramp"   users go from start_users to users over run_time
    shape = "step"   start_users, then + step_users every step_s, up to users (find the knee)
    shape = "spike"  users, with spike_users more from spike_at_s for spike_s
    shape = "soak"   users held for run_time (a long, steady run)
"""

from __future__ import annotations

from locust import LoadTestShape

from sseload.scenario import parse_seconds, users_at


class ScenarioShape(LoadTestShape):
    """Follows the scenario's [load] shape; stops after run_time (or -t)."""

    def tick(self):
        from sseload.plugin import context

        environment = self.runner.environment
        ctx = context(environment)
        load = ctx.scenario.load
        opts = environment.parsed_options
        run_s = float(getattr(opts, "run_time", None) or parse_seconds(load.run_time))
        t = self.get_run_time()
        if t >= run_s:
            return None
        return users_at(load, t, run_s), load.spawn_rate
