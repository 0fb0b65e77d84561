"""The run's lifecycle in Locust: hooks, roles, the user, run.json, the web UI."""
