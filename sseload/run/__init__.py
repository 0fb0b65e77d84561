"""The run's lifecycle: ``sseload run``'s supervisor and its run-plan file, Locust's hooks and one
role per process (standalone, worker, master), the run plan compiled from the scenario, the
early-stop guard, the user, run.json, the web UI tab, and the verdict that decides every exit code."""
