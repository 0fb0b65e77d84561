"""Run a scenario whose [load] table has a shape (ramp, step, spike, soak).

    locust -f locustfiles/sse_shape.py --scenario scenarios/step-to-knee.toml -H http://127.0.0.1:8080
"""

from sseload.locustfile_shape import ScenarioShape, ScenarioUser  # noqa: F401
