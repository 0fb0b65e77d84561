"""sseload's locustfile: ``locust -f "$(sseload locustfile)" --scenario FILE -H URL``.

Each user streams the scenario's request over and over, one at a time, and every stream is
recorded under results/<run-id>/ exactly as with ``sseload run``.
"""

from sseload.run.user import SSEUser


class ScenarioUser(SSEUser):
    """Streams the scenario's request over and over, one at a time per user."""
