"""Run a scenario with plain Locust.

    locust -f locustfiles/sse.py --scenario scenarios/embedded.toml -H http://127.0.0.1:8080
    locust -f locustfiles/sse.py --headless -u 50 -r 10 -t 1m -H https://gateway.example.com

Every stream is recorded under results/<run-id>/ exactly as with `sseload run`.
"""

from sseload.locustfile import ScenarioUser  # noqa: F401
