"""Side by side: sseload's user against hand-written Locust users, on the same target.

    python bench/streams_bench.py                       # users 250 to 4,000 (issue 7), all three clients, 20 s each
    python bench/streams_bench.py --users 250 1000 --clients sseload fast --seconds 15
    python bench/streams_bench.py --clients sseload --users 2000 4000 --gap-ms 100   # open streams, not event rate
    python bench/streams_bench.py --clients sseload --users 250 500 --tls     # HTTPS, throwaway CA
    python bench/streams_bench.py --clients sseload raw --users 1000 2000 --target c --schemes http https
                                        # TLS against plain on the C target (bench/fixed_target.c), and the floor
    python bench/streams_bench.py --clients sseload --users 2000 --keep /tmp/runs   # keep the results
    python bench/streams_bench.py --clients sseload raw --users 1000 2000   # against a bare uvloop client
    python bench/streams_bench.py --clients sseload floor --users 1000 2000 --target c --schemes http https
                                        # against the C floor (bench/floor.c), plain and TLS (issue 33 item 2)
    python bench/streams_bench.py --clients sseload --users 2000 --seconds 15 --openai   # plain and LLM-style
    python bench/streams_bench.py --clients sseload --users 100 --events 1 --ttfe-ms 5 --gap-ms 1   # per-stream cost
    SSELOAD_READER=python python bench/streams_bench.py --clients sseload   # the event-loop reader

Workload (issue 7): streams of 50 events, 200 ms to the first event, 20 ms gaps, loopback.
The reference target runs pinned to CPU 1 and the harness (one Locust process) to CPU 0, so
"per core" means what it says. For each client and user count it reports, over a steady-state
window after the ramp: streams/s, events/s, harness CPU %, harness CPU per event, TTFE error
and event lateness (receive time minus the target's embedded send time), and the target's own
CPU and schedule lateness (so a saturated target is visible, not mistaken for the harness).
``raw`` (not in the default set) is the floor the issue calibrated against: a bare uvloop client
that only times events (bench/raw_client.py), to show what any Python client must spend.
``floor`` (not in the default set) is the floor below that: bench/floor.c, a C epoll reader that
only times and counts events (built with gcc and OpenSSL into bench/.build on first use); with it
in the run, the table is followed by sseload's CPU per event over the floor's (the goal: 1.2x).
``vs_target`` divides the harness's CPU per event by the target's in the same run: the VM's
speed drifts by up to a quarter between runs, the unchanged target's cost with it, so that ratio
is what to compare across commits (bench/history/2026-11-sessions-1-7.md, section 2l).

``--target c`` serves the same workload from bench/fixed_target.c (compiled on first use; needs a C
compiler and OpenSSL's headers: Debian's gcc and libssl-dev): the reference target sends at most
~27,500 TLS events/s on its core, so over TLS it, not the harness, is the limit past ~700 streams.
``--schemes http https`` runs every point plain and over TLS, one after the other, and prints
TLS's CPU per event over plain's for each client and user count.
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

import fixed_target
import numpy as np
import pandas as pd
import psutil

from sseload.views import results

ROOT = Path(__file__).resolve().parents[1]
NAIVE = ROOT / "bench" / "naive_locustfile.py"
FLOOR = ROOT / "bench" / "floor.c"
RAW = ROOT / "bench" / "raw_client.py"
SSELOAD = ROOT / "sseload" / "run" / "locustfile.py"
WORKLOAD = {"--ttfe-ms": "200", "--gap-ms": "20", "--events": "50", "--payload-bytes": "64"}


def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def throwaway_ca(tmp: Path) -> tuple[list[str], Path]:
    """--tls: the target's flags for a certificate from a throwaway CA, and the CA file."""
    import trustme  # the test extra

    ca = trustme.CA()
    cert = ca.issue_cert("127.0.0.1")
    chain, key, ca_file = tmp / "chain.pem", tmp / "key.pem", tmp / "ca.pem"
    cert.private_key_and_cert_chain_pem.write_to_path(str(chain))
    cert.private_key_pem.write_to_path(str(key))
    ca.cert_pem.write_to_path(str(ca_file))
    return ["--tls-cert", str(chain), "--tls-key", str(key)], ca_file


def start_target(tmp: Path, cpu: int | None, workload: dict, tls_flags: list[str],
                 kind: str = "sseload", openai: bool = False) -> tuple[subprocess.Popen, str]:
    port_file = tmp / "port"
    if kind == "c":
        try:
            program = [str(fixed_target.binary()), *(["--openai"] if openai else [])]
        except fixed_target.BuildError as err:
            sys.exit(f"--target c: {err}")
    else:
        program = [sys.executable, "-m", "sseload.target"]
    proc = subprocess.Popen(
        pinned([*program, "--port", "0", "--port-file", str(port_file),
                *[x for kv in workload.items() for x in kv], *tls_flags], cpu),
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    while not port_file.exists():
        if proc.poll() is not None:
            sys.exit(f"the {kind} target exited ({proc.returncode}) before listening")
        time.sleep(0.05)
    return proc, f"{'https' if tls_flags else 'http'}://127.0.0.1:{port_file.read_text()}"


def target_stats(url: str, reset: bool = False, ca_file: Path | None = None) -> dict:
    import ssl

    req = urllib.request.Request(url + "/_sseload/stats", method="POST" if reset else "GET",
                                 data=b"" if reset else None)
    context = ssl.create_default_context(cafile=str(ca_file)) if ca_file else None
    with urllib.request.urlopen(req, timeout=10, context=context) as response:
        return json.loads(response.read())


def run_one(client: str, users: int, seconds: float, ramp_s: float, cpus: tuple, workload: dict,
            tls: bool = False, keep: Path | None = None, openai: bool = False, target_kind: str = "sseload") -> dict:
    with tempfile.TemporaryDirectory(prefix="sseload-bench-") as tmp_name:
        tmp = Path(tmp_name)
        tls_flags, ca_file = throwaway_ca(tmp) if tls else ([], None)
        target, url = start_target(tmp, cpus[1], workload, tls_flags, target_kind, openai)
        env = dict(os.environ)
        if client == "sseload":
            locustfile = SSELOAD
            extra = ["--results-dir", str(tmp), "--run-id", "run"]
            if ca_file:
                scenario = tmp / "tls.toml"
                scenario.write_text(f'name = "tls"\n[stream]\ncompletion = "event:done"\nca_bundle = "{ca_file}"\n')
                extra += ["--scenario", str(scenario)]
        else:
            locustfile = NAIVE
            env["NAIVE_KIND"] = client
            env["NAIVE_OUT"] = str(tmp / "naive.npz")
            extra = []
        total_s = ramp_s + 1.0 + seconds
        # --openai: the target's LLM-style chat stream, read with sseload's token metrics (openai mode)
        stream_url = url + "/v1/chat/completions" if openai else url
        if client == "floor":  # no Python: the C floor (bench/floor.c)
            try:
                floor = fixed_target.build(FLOOR, ROOT / "bench" / ".build")
            except fixed_target.BuildError as err:
                sys.exit(f"--clients floor: {err}")
            from workload import BODY, PATH

            cmd = pinned([str(floor), "--url", url, "--users", str(users), "--ramp", str(ramp_s),
                          "--seconds", str(int(total_s + 4)), "--out", str(tmp / "floor.bin"),
                          "--path", PATH, "--body", BODY.decode()], cpus[0])
        elif client == "raw":  # no Locust: the floor (bench/raw_client.py)
            # past the window's end (it starts 2 s after the launch, below), as Locust's -t is
            cmd = pinned([sys.executable, str(RAW), "--url", url, "--users", str(users), "--ramp", str(ramp_s),
                          "--seconds", str(int(total_s + 4)), "--out", str(tmp / "naive.npz"),
                          *(["--ca-file", str(ca_file)] if ca_file else [])], cpus[0])
        else:
            cmd = pinned([sys.executable, "-m", "locust", "-f", str(locustfile), "--headless", "-u", str(users),
                          "-r", str(users / ramp_s), "-t", f"{int(total_s + 1)}s", "-H", stream_url, "--only-summary",
                          "--stop-timeout", "5", "--loglevel", "ERROR", *extra], cpus[0])
        proc = subprocess.Popen(cmd, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True)
        ps = psutil.Process(proc.pid)
        # wait for Locust to come up (its first stream), then skip the ramp
        t_launch = time.time()
        time.sleep(2.0)
        time.sleep(ramp_s + 1.0)
        target_stats(url, reset=True, ca_file=ca_file)
        cpu0, wall0 = sum(ps.cpu_times()[:2]), time.time()
        time.sleep(seconds)
        cpu1, wall1 = sum(ps.cpu_times()[:2]), time.time()
        tstats = target_stats(url, ca_file=ca_file)
        _, stderr = proc.communicate(timeout=120)
        target.terminate()
        target.wait()
        window = (wall0 * 1e9, wall1 * 1e9)
        if client == "sseload":
            if keep is not None:  # the run's results, for a closer look with sseload.views.results
                shutil.copytree(tmp / "run", keep / f"{client}-{users}", dirs_exist_ok=True)
            run = results.load(tmp / "run")  # every shard
            streams, events = run.streams, run.events
            start = events["stream_id"].map(streams.set_index("stream_id")["start_ns"])
            recv = start.to_numpy() + events["t_ms"].to_numpy() * 1e6
            late = events["lateness_ms"].to_numpy()
            first = (events["seq"] == 0).to_numpy()
            keep = (recv >= window[0]) & (recv < window[1]) & ~np.isnan(late)
        elif client == "floor":
            data = np.fromfile(tmp / "floor.bin", dtype=np.int64).reshape(-1, 3)
            recv = data[:, 0].astype(np.float64)
            late = data[:, 1] / 1e6
            first = data[:, 2].astype(bool)
            keep = (recv >= window[0]) & (recv < window[1])
        else:
            data = np.load(tmp / "naive.npz")
            recv = data["recv_ns"].astype(np.float64)
            late = data["late_ns"] / 1e6
            first = data["first"].astype(bool)
            keep = (recv >= window[0]) & (recv < window[1])
        n_events = int(keep.sum())
        wall = wall1 - wall0
        cpu_s = cpu1 - cpu0
        lk, fk = late[keep], late[keep & first]

        def pct(a, p):
            return float(np.percentile(a, p)) if a.size else float("nan")

        return {
            "client": client + ("/openai" if openai else ""), "scheme": "https" if tls else "http", "users": users,
            "streams_s": fk.size / wall, "events_s": n_events / wall,
            "cpu_pct": 100 * cpu_s / wall,
            "us_per_event": 1e6 * cpu_s / n_events if n_events else float("nan"),
            "us_per_stream": 1e6 * cpu_s / fk.size if fk.size else float("nan"),
            "ttfe_err_p50": pct(fk, 50), "ttfe_err_p99": pct(fk, 99),
            "late_p50": pct(lk, 50), "late_p99": pct(lk, 99), "late_p999": pct(lk, 99.9),
            "target_cpu_pct": tstats["cpu_percent"], "target_late_p99": tstats["lateness_ms"]["p99"],
            "target_us_per_event": 1e6 * tstats["cpu_s"] / max(1, tstats["events_sent"]),
            # the VM's speed drifts by up to a quarter between runs, and the unchanged target
            # with it: harness CPU per event over the target's compares commits across runs
            "vs_target": (cpu_s / n_events) / (tstats["cpu_s"] / max(1, tstats["events_sent"]))
            if n_events and tstats["cpu_s"] else float("nan"),
            "launch_s": round(wall0 - t_launch, 1),
        }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--users", type=int, nargs="+", default=[250, 500, 1000, 2000, 4000])
    ap.add_argument("--clients", nargs="+", default=["sseload", "fast", "http"],
                    choices=["sseload", "fast", "http", "raw", "floor"],
                    help="raw: a bare uvloop client that only times events (no Locust); floor: a C epoll "
                         "reader that only times and counts events (bench/floor.c)")
    ap.add_argument("--seconds", type=float, default=20.0, help="measured window per point")
    ap.add_argument("--ramp", type=float, default=4.0, help="seconds to spawn all users")
    ap.add_argument("--no-pin", action="store_true", help="do not pin harness and target to CPUs 0 and 1")
    ap.add_argument("--gap-ms", type=float, default=20.0, help="gap between events (issue 7's workload: 20)")
    ap.add_argument("--events", type=int, default=50, help="events per stream (issue 7's workload: 50)")
    ap.add_argument("--ttfe-ms", type=float, default=200.0, help="time to the first event (issue 7's workload: 200)")
    ap.add_argument("--tls", action="store_true",
                    help="HTTPS with a throwaway CA (sseload and raw only; needs trustme): --schemes https")
    ap.add_argument("--schemes", nargs="+", choices=["http", "https"],
                    help="run each point over these, one after the other (http https: TLS against plain)")
    ap.add_argument("--target", choices=["sseload", "c"], default="sseload",
                    help="the reference target (sseload serve), or bench/fixed_target.c (fast enough for TLS)")
    ap.add_argument("--openai", action="store_true",
                    help="also run sseload on the target's LLM-style chat stream (openai mode: token metrics; "
                         "the C target's --openai chunks on the same schedule)")
    ap.add_argument("--csv", help="also write the table here")
    ap.add_argument("--keep", type=Path, help="copy each sseload run's results into this directory")
    args = ap.parse_args()
    schemes = args.schemes or (["https"] if args.tls else ["http"])
    if "https" in schemes and not set(args.clients) <= {"sseload", "raw", "floor"}:
        ap.error("https measures sseload, raw and floor only (the naive users have no CA setting here)")
    cpus = (None, None) if args.no_pin else (0, 1)
    rows = []
    cols = ["client", "scheme", "users", "streams_s", "events_s", "cpu_pct", "us_per_event", "us_per_stream",
            "ttfe_err_p50", "ttfe_err_p99", "late_p50", "late_p99", "late_p999", "target_cpu_pct", "target_late_p99",
            "target_us_per_event", "vs_target"]
    print("times in ms; cpu_pct of one core; us_per_event is harness CPU per event received", flush=True)
    for users in args.users:
        for client in args.clients:
            workload = dict(WORKLOAD, **{"--gap-ms": f"{args.gap_ms:g}", "--events": str(args.events),
                                         "--ttfe-ms": f"{args.ttfe_ms:g}"})
            for scheme in schemes:
                for openai in (False, True) if args.openai and client == "sseload" else (False,):
                    row = run_one(client, users, args.seconds, args.ramp, cpus, workload, tls=scheme == "https",
                                  keep=args.keep, openai=openai, target_kind=args.target)
                    rows.append(row)
                    print(pd.DataFrame([row])[cols].round(2).to_string(index=False, header=len(rows) == 1),
                          flush=True)
    table = pd.DataFrame(rows)[cols]
    print()
    print(table.round(2).to_string(index=False))
    if set(schemes) == {"http", "https"}:  # TLS's cost, point by point
        per = table.pivot_table(index=["client", "users"], columns="scheme", values="us_per_event")
        per["tls_vs_plain"] = per["https"] / per["http"]
        print("\nCPU per event, TLS over plain:")
        print(per.round(2).to_string())
    if {"sseload", "floor"} <= set(args.clients):  # issue 33: within 1.2x the C floor's CPU per event
        side = table[table["client"].isin(["sseload", "floor"])].pivot_table(
            index=["scheme", "users"], columns="client", values=["us_per_event", "late_p99"])
        print("\nsseload against the C floor (bench/floor.c): CPU per event and lateness p99, side by side")
        for (scheme, users), r in side.iterrows():
            ratio = r[("us_per_event", "sseload")] / r[("us_per_event", "floor")]
            verdict = "within" if ratio <= 1.2 else f"over by {ratio / 1.2:.2f}x"
            print(f"  {scheme} {users:>5} streams: sseload {r[('us_per_event', 'sseload')]:.2f} µs, floor "
                  f"{r[('us_per_event', 'floor')]:.2f} µs: {ratio:.2f}x (goal 1.2x: {verdict}); lateness p99 "
                  f"{r[('late_p99', 'sseload')]:.2f} against {r[('late_p99', 'floor')]:.2f} ms")
    if args.csv:
        table.to_csv(args.csv, index=False)


if __name__ == "__main__":
    main()
