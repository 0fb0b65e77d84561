"""Your own Locust user on sseload: Python decides each request, sseload does the rest.

    locust -f locustfiles/custom_user.py --headless -u 10 -r 5 -t 30s -H http://127.0.0.1:8080/v1/chat/completions

Each stream is still signed by the scenario's [auth] (--scenario FILE; none here), read by the
native reader, recorded under results/<run-id>/ and summarised, reported and judged at the end
exactly as with `sseload run`. Override ``stream_task`` (a Locust task) and call ``self.stream``
with the request you want; ``self.ctx`` is the run (its scenario, its URL).
"""

import json
import random

from locust import task

from sseload import PreparedRequest, SSEUser

QUESTIONS = [
    "What is a server-sent event?",
    "Summarise the plot of Hamlet in three sentences.",
    "Write a haiku about load testing.",
    "Explain time to first token to a new engineer, with one example from a chat service.",
]


class AskingUser(SSEUser):
    """Asks one of its questions per stream, as an OpenAI-style chat completion."""

    @task
    def stream_task(self) -> None:
        body = json.dumps({"model": "m", "stream": True,
                           "messages": [{"role": "user", "content": random.choice(QUESTIONS)}]}).encode()
        headers = {"Content-Type": "application/json", "Accept": "text/event-stream"}
        self.stream(PreparedRequest.build("POST", self.ctx.url, headers, body))
