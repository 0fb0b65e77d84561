"""The scenario-driven locustfile: ``locust -f locustfiles/sse.py --scenario FILE -H URL``."""

from sseload.user import SSEUser


class ScenarioUser(SSEUser):
    """Streams the scenario's request over and over, one at a time per user."""
