"""sseload's locustfile for a scenario whose [load] table has a shape (ramp, step, spike, soak):
``locust -f "$(sseload locustfile --shape)" --scenario scenarios/step-to-knee.toml -H URL``.

The shape runs through Locust's LoadTestShape, so the user count follows the scenario (``-u`` and
``-r`` do not apply):

    shape = "ramp"   users go from start_users to users over run_time
    shape = "step"   start_users, then + step_users every step_s, up to users (find the knee)
    shape = "spike"  users, with spike_users more from spike_at_s for spike_s
    shape = "soak"   users held for run_time (a long, steady run)
"""

from locust import LoadTestShape

from sseload.run.hooks import role_of
from sseload.run.user import SSEUser
from sseload.scenario.model import users_at
from sseload.scenario.ranges import parse_seconds


class ScenarioUser(SSEUser):
    """Streams the scenario's request over and over, one at a time per user."""


class ScenarioShape(LoadTestShape):
    """Follows the scenario's [load] shape; stops after run_time (or -t)."""

    def tick(self):
        environment = self.runner.environment
        load = role_of(environment).scenario.load  # the scenario the init hook picked
        opts = environment.parsed_options
        run_s = float(getattr(opts, "run_time", None) or parse_seconds(load.run_time))
        t = self.get_run_time()
        if t >= run_s:
            return None
        return users_at(load, t, run_s), load.spawn_rate
