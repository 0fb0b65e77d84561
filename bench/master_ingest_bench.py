"""The master's ingest ceiling: how many events per second one Locust master takes from its workers.

Simulated workers (separate processes) replay real recorded batches through Locust's own messaging
(its zmq RPC, as a worker's sseload.record.distributed.WorkerSink sends them) at a chosen total rate
against a real master (`locust --master` with sseload's locustfile). For each rate it prints what
the workers sent, the master's CPU (per event too) and memory, the master's answer time to the
workers' heartbeats (Locust marks a worker missing after 3 s without one), the streams that did
not reach the files, and how long the master took to finish writing once told to stop.

    python bench/master_ingest_bench.py                       # 4 workers, 100k to 2M events/s, 10 s each
    python bench/master_ingest_bench.py --workers 8 --rates 500000 1000000 --seconds 20
    python bench/master_ingest_bench.py --from results/<run>  # replay that run's batches

Run it alone (no tests or other benches on the machine).
"""

from __future__ import annotations

import argparse
import json
import os
import secrets
import signal
import socket
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
STREAMS_PER_BATCH = 100


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def record_run(tmp: Path) -> Path:
    """A short real run against the reference target: 200 users, 50 ms gaps, 2 s streams."""
    scenario = tmp / "ingest.toml"
    scenario.write_text('[target]\nttfe_ms = 20\ngap_ms = 20\nevents = 100\n[stream]\ncompletion = "event:done"\n')
    subprocess.run([sys.executable, "-m", "sseload", "run", str(scenario), "-u", "200", "-r", "200", "-t", "8s",
                    "--results-dir", str(tmp), "--run-id", "source", "--no-report"], check=True,
                   stdout=subprocess.DEVNULL, cwd=tmp)
    return tmp / "source"


def make_batches(run_dir: Path, out: Path) -> tuple[int, int]:
    """The run's streams in batches of STREAMS_PER_BATCH with their events, as workers send them
    (Arrow IPC bytes), in one msgpack file; returns (batches, events per batch on average)."""
    import msgpack
    import pandas as pd
    import pyarrow as pa

    from sseload.record.distributed import _ipc
    from sseload.record.records import EVENTS_SCHEMA, STREAMS_SCHEMA

    streams = pd.read_parquet(run_dir / "streams.parquet")
    events = pd.read_parquet(run_dir / "events.parquet")
    by_stream = events.groupby("stream_id")
    batches = []
    for start in range(0, len(streams), STREAMS_PER_BATCH):
        part = streams.iloc[start:start + STREAMS_PER_BATCH]
        ids = set(part["stream_id"])
        ev = pd.concat([by_stream.get_group(i) for i in part["stream_id"] if i in by_stream.groups]) \
            if ids else events.iloc[:0]
        s_table = pa.Table.from_pandas(part, schema=STREAMS_SCHEMA, preserve_index=False)
        e_table = pa.Table.from_pandas(ev, schema=EVENTS_SCHEMA, preserve_index=False)
        batches.append({"streams": _ipc(s_table), "events": _ipc(e_table), "n_streams": s_table.num_rows,
                        "n_events": e_table.num_rows})
    out.write_bytes(msgpack.dumps(batches))
    return len(batches), int(sum(b["n_events"] for b in batches) / max(1, len(batches)))


# --- a simulated worker (a process of its own: `--simulate`) ---

def simulate(args: argparse.Namespace) -> None:
    """Connect as a Locust worker, then send the batches round and round at --rate events/s for
    --seconds, with a heartbeat every second; print what was sent and the heartbeat answer times."""
    from gevent import monkey

    monkey.patch_all()
    import gevent
    import msgpack
    import numpy as np
    from locust import __version__
    from locust.rpc import Message, zmqrpc

    from sseload.record.distributed import BATCH
    from sseload.record.runkey import RunKey

    batches = msgpack.loads(Path(args.batches).read_bytes())
    key = RunKey.from_env("worker")
    node = f"sim_{args.index}_{os.getpid()}"
    client = zmqrpc.Client("127.0.0.1", args.port, node)
    client.send(Message("client_ready", __version__, node))
    answers: list[float] = []
    sent_at: dict[int, float] = {}

    def receive() -> None:
        n = 0
        while True:
            msg = client.recv()
            if msg.type == "heartbeat" and sent_at:
                first = min(sent_at)
                answers.append(time.monotonic() - sent_at.pop(first))
            n += 1

    def heartbeat() -> None:
        k = 0
        while True:
            sent_at[k] = time.monotonic()
            client.send(Message("heartbeat", {"state": "running", "current_cpu_usage": 10.0,
                                              "current_memory_usage": 1}, node))
            k += 1
            gevent.sleep(1.0)

    gevent.spawn(receive)
    gevent.sleep(0.5)  # the master's ack
    beating = gevent.spawn(heartbeat)
    per_batch = np.mean([b["n_events"] for b in batches])
    interval = per_batch / args.rate
    start = time.monotonic()
    next_at, i, events, streams, sent = start, 0, 0, 0, 0
    while time.monotonic() - start < args.seconds:
        batch = batches[i % len(batches)]
        client.send(Message(BATCH, key.sign(BATCH, node, batch), node))  # signed as a worker's (sseload.record.runkey)
        events += batch["n_events"]
        streams += batch["n_streams"]
        sent += 1
        i += 1
        next_at += interval
        delay = next_at - time.monotonic()
        gevent.sleep(max(0.0, delay))  # behind schedule: send at once (and yield to the heartbeats)
    elapsed = time.monotonic() - start
    gevent.sleep(1.5)  # the last heartbeat answers
    beating.kill()
    rtt = np.array(answers) * 1e3 if answers else np.array([np.nan])
    unanswered = len(sent_at)
    print(json.dumps({"events": events, "streams": streams, "batches": sent, "seconds": elapsed,
                      "hb_p50_ms": float(np.nanpercentile(rtt, 50)), "hb_max_ms": float(np.nanmax(rtt)),
                      "hb_unanswered": unanswered}))
    sys.stdout.flush()
    os._exit(0)


# --- one rate against a real master ---

def one_rate(rate: float, workers: int, seconds: float, batches: Path, tmp: Path) -> dict:
    import psutil

    port, web = free_port(), free_port()
    env = {**os.environ, "SSELOAD_RUN_KEY": secrets.token_hex(32)}  # the master and its simulated workers'
    results = tmp / f"r{int(rate)}"
    with open(tmp / f"master-{int(rate)}.log", "w") as log:
        master = subprocess.Popen(
            [sys.executable, "-m", "locust", "-f", str(ROOT / "sseload" / "run" / "locustfile.py"), "--master",
             "--master-bind-host", "127.0.0.1", "--master-bind-port", str(port), "--web-host", "127.0.0.1",
             "--web-port", str(web), "-H", "http://127.0.0.1:9", "--results-dir", str(results), "--run-id", "m"],
            stdout=log, stderr=subprocess.STDOUT, env=env)
    proc = psutil.Process(master.pid)
    time.sleep(4)  # the master's start-up
    sims = [subprocess.Popen([sys.executable, __file__, "--simulate", "--port", str(port), "--index", str(i),
                              "--rate", str(rate / workers), "--seconds", str(seconds), "--batches", str(batches)],
                             stdout=subprocess.PIPE, text=True, env=env) for i in range(workers)]
    time.sleep(0.5)
    cpu0, rss = proc.cpu_times(), 0
    t0 = time.monotonic()
    while any(s.poll() is None for s in sims):
        rss = max(rss, proc.memory_info().rss)
        time.sleep(0.2)
    cpu1 = proc.cpu_times()
    busy_s = time.monotonic() - t0
    reports = [json.loads(s.stdout.read().strip().splitlines()[-1]) for s in sims]
    stop0 = time.monotonic()
    master.send_signal(signal.SIGTERM)  # quitting: the master writes every batch it queued, then run.json
    master.wait(600)
    drain_s = time.monotonic() - stop0
    info = json.loads((results / "m" / "run.json").read_text())
    events = sum(r["events"] for r in reports)
    streams = sum(r["streams"] for r in reports)
    cpu_s = (cpu1.user + cpu1.system) - (cpu0.user + cpu0.system)
    sent_s = max(r["seconds"] for r in reports)
    return {
        "target": rate, "sent_ev_s": events / sent_s, "cpu_pct": 100 * cpu_s / busy_s,
        "us_per_event": 1e6 * cpu_s / max(events, 1), "rss_mb": rss / 2**20,
        "hb_p50_ms": max(r["hb_p50_ms"] for r in reports), "hb_max_ms": max(r["hb_max_ms"] for r in reports),
        "hb_unanswered": sum(r["hb_unanswered"] for r in reports),
        "lost": streams - info["streams_recorded"], "events_written": info["events_recorded"], "drain_s": drain_s,
    }


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--workers", type=int, default=4)
    p.add_argument("--rates", type=float, nargs="+", default=[100_000, 300_000, 1_000_000, 2_000_000])
    p.add_argument("--seconds", type=float, default=10)
    p.add_argument("--from", dest="source", help="a recorded run to replay (default: record one now)")
    p.add_argument("--simulate", action="store_true", help=argparse.SUPPRESS)
    p.add_argument("--port", type=int, help=argparse.SUPPRESS)
    p.add_argument("--index", type=int, default=0, help=argparse.SUPPRESS)
    p.add_argument("--rate", type=float, help=argparse.SUPPRESS)
    p.add_argument("--batches", help=argparse.SUPPRESS)
    args = p.parse_args()
    if args.simulate:
        simulate(args)
        return
    with tempfile.TemporaryDirectory(prefix="ingest-") as tmp_name:
        tmp = Path(tmp_name)
        source = Path(args.source) if args.source else record_run(tmp)
        n, per_batch = make_batches(source, tmp / "batches.msgpack")
        print(f"replaying {n} recorded batches of {STREAMS_PER_BATCH} streams (~{per_batch} events each) "
              f"from {args.workers} simulated workers, {args.seconds:g} s per rate\n")
        print(f"{'target ev/s':>12} {'sent ev/s':>11} {'master CPU':>10} {'us/event':>9} {'RSS MB':>7} "
              f"{'heartbeat p50/max ms':>21} {'unanswered':>10} {'lost':>5} {'drain s':>8}")
        for rate in args.rates:
            r = one_rate(rate, args.workers, args.seconds, tmp / "batches.msgpack", tmp)
            print(f"{r['target']:>12,.0f} {r['sent_ev_s']:>11,.0f} {r['cpu_pct']:>9.0f}% {r['us_per_event']:>9.3f} "
                  f"{r['rss_mb']:>7.0f} {r['hb_p50_ms']:>10.1f} / {r['hb_max_ms']:>8.1f} {r['hb_unanswered']:>10} "
                  f"{r['lost']:>5} {r['drain_s']:>8.1f}", flush=True)


if __name__ == "__main__":
    main()
