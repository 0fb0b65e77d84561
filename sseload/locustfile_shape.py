"""The scenario-driven locustfile with a load shape: [load] shape drives the user count."""

from sseload.locustfile import ScenarioUser  # noqa: F401
from sseload.shapes import ScenarioShape  # noqa: F401
