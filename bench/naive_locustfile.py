"""The hand-written baselines: what a Locust user looks like without sseload.

NAIVE_KIND=http: HttpUser (requests) with stream=True and iter_lines().
NAIVE_KIND=fast: FastHttpUser (geventhttpclient) reading the raw stream with readline().

Both timestamp each `data:` line as they get it and compare with the target's t_send_ns, so
their error is measured exactly like sseload's. Results go to NAIVE_OUT (.npz) at exit.
"""

from __future__ import annotations

import json
import os
import time
from array import array

import numpy as np
from locust import FastHttpUser, HttpUser, constant, events, task
from workload import BODY, HEADERS, PATH

RECV_NS = array("q")  # wall time each event was seen
LATE_NS = array("q")  # seen minus the server's send time
FIRST = array("b")  # 1 for a stream's first event
STREAMS = [0]


def record(line: bytes, first: bool) -> None:
    now = time.time_ns()
    doc = json.loads(line[6:])
    sent = doc.get("t_send_ns")
    if sent is not None:
        RECV_NS.append(now)
        LATE_NS.append(now - sent)
        FIRST.append(1 if first else 0)


class NaiveHttpUser(HttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("NAIVE_KIND", "http") != "http"

    @task
    def stream(self) -> None:
        with self.client.post(PATH, data=BODY, headers=HEADERS, stream=True, name="stream",
                              catch_response=True) as response:
            first = True
            for line in response.iter_lines():
                if line.startswith(b"data: "):
                    record(line, first)
                    first = False
        STREAMS[0] += 1


class NaiveFastHttpUser(FastHttpUser):
    wait_time = constant(0)
    abstract = os.environ.get("NAIVE_KIND", "http") != "fast"

    @task
    def stream(self) -> None:
        with self.client.post(PATH, data=BODY, headers=HEADERS, stream=True, name="stream",
                              catch_response=True) as response:
            raw = response._response  # geventhttpclient's response: readline() on the body
            first = True
            while True:
                line = raw.readline(b"\n")
                if not line:
                    break
                if line.startswith(b"data: "):
                    record(line.rstrip(b"\r\n"), first)
                    first = False
        STREAMS[0] += 1


@events.quitting.add_listener
def _dump(environment, **_kw) -> None:
    out = os.environ.get("NAIVE_OUT")
    if out:
        np.savez(out, recv_ns=np.frombuffer(RECV_NS, np.int64), late_ns=np.frombuffer(LATE_NS, np.int64),
                 first=np.frombuffer(FIRST, np.int8), streams=np.array([STREAMS[0]]))
