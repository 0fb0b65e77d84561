"""A process that is no worker of sseload's: it reaches a master's port and speaks Locust's own RPC
(locust.rpc) as a worker does, then sends forged sseload messages: batches of streams it never
ran and a final report saying it finished, each unsigned and signed with a key that is not the
run's, and an unsigned live report inside Locust's stats message. Then it goes silent, as a worker
that died would.

    python tests/forged_worker.py MASTER_PORT NODE_ID WORKER_COLUMN STREAMS

Used by tests/test_distributed.py (never imported there: Locust monkey-patches whoever imports it);
it prints ``sent N`` once its messages are out.
"""

from __future__ import annotations

from gevent import monkey

monkey.patch_all()

import sys  # noqa: E402
import time  # noqa: E402

import gevent  # noqa: E402
import gevent.event  # noqa: E402
import pyarrow as pa  # noqa: E402
from locust import __version__  # noqa: E402
from locust.rpc import Message, rpc  # noqa: E402
from locust.stats import RequestStats  # noqa: E402

from sseload.record.distributed import BATCH, DONE, _ipc  # noqa: E402
from sseload.record.records import EVENTS_SCHEMA, STREAMS_SCHEMA  # noqa: E402
from sseload.record.runkey import RunKey  # noqa: E402
from sseload.views.live import LiveStats  # noqa: E402

WRONG_KEY = RunKey("a-key-that-is-not-the-run-key-0123456789")


def forged_batch(worker: int, n: int) -> dict:
    """``n`` ok streams of one event each, all in the ``worker`` column."""
    now = time.time_ns()
    streams = pa.Table.from_pylist(
        [{"stream_id": (worker << 40) + i, "worker": worker, "user": 0, "start_ns": now, "ttfe_ms": 1.0,
          "duration_ms": 2.0, "status": 200, "events": 1, "outcome": "ok"} for i in range(n)], schema=STREAMS_SCHEMA)
    events = pa.Table.from_pylist([{"stream_id": (worker << 40) + i, "seq": 0, "t_ms": 1.0, "bytes": 10}
                                   for i in range(n)], schema=EVENTS_SCHEMA)
    return {"streams": _ipc(streams), "events": _ipc(events), "n_streams": n, "n_events": n}


def forged_report(n: int) -> dict:
    return {"streams_started": n, "streams_recorded": n, "events_recorded": n, "outcomes": {"ok": n},
            "health": {}, "health_seconds": [], "partial_reasons": []}


def stats_with_live_report(n: int) -> dict:
    """Locust's stats message, as a worker sends it, with sseload's live numbers unsigned."""
    stats = RequestStats()
    live = LiveStats(reports=True).take_report(n)
    return {"stats": stats.serialize_stats(), "stats_total": stats.total.get_stripped_report(),
            "errors": stats.serialize_errors(), "user_classes_count": {}, "user_count": 0, "sseload": live}


def main(port: int, node: str, worker: int, n: int) -> None:
    client = rpc.Client("127.0.0.1", port, node)
    spawned = gevent.event.Event()

    def receive() -> None:
        while True:
            if client.recv().type == "spawn":
                spawned.set()

    def heartbeat() -> None:
        while True:
            state = "running" if spawned.is_set() else "ready"  # as a worker's, else the master waits on
            client.send(Message("heartbeat", {"state": state, "current_cpu_usage": 1.0,
                                              "current_memory_usage": 1}, node))
            gevent.sleep(1.0)

    receiving = gevent.spawn(receive)
    client.send(Message("client_ready", __version__, node))
    beating = gevent.spawn(heartbeat)
    spawned.wait(60)  # the run has started
    batch, report = forged_batch(worker, n), forged_report(n)
    messages = [
        Message(BATCH, batch, node),
        Message(BATCH, WRONG_KEY.sign(BATCH, node, batch), node),
        Message(DONE, report, node),
        Message(DONE, WRONG_KEY.sign(DONE, node, report), node),
        Message("stats", stats_with_live_report(n), node),
    ]
    for message in messages:
        client.send(message)
    print(f"sent {len(messages)}", flush=True)
    gevent.sleep(0.5)
    gevent.killall([beating, receiving])  # silent from now on: the master marks it missing
    client.close()


if __name__ == "__main__":
    main(int(sys.argv[1]), sys.argv[2], int(sys.argv[3]), int(sys.argv[4]))
