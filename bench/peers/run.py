"""sseload and the LLM benchmarks people use instead, held to one ground truth (issue 33 item 1).

    python bench/peers/run.py                          # every tool, concurrency 1 to 2,000, 20 s windows
    python bench/peers/run.py --quick                  # a smoke: concurrency 2, 5 s, every tool
    python bench/peers/run.py --tools sseload aiperf --concurrency 10,100 --seconds 30
    python bench/peers/run.py --install-only           # only make the peers' virtual environments

The truth is bench/fixed_target.c --openai: a C server (epoll, one thread, pinned to CPU 1) that
answers POST /v1/chat/completions with the role chunk at once, the first content chunk --ttft-ms
after the request, then one every --itl-ms on an absolute schedule, --tokens of them, then a
chunk with finish_reason and usage and `data: [DONE]`, and logs when each request came and each
chunk went out (bench/peers/truth.py; a request's arrival is the kernel's receive time of its
bytes, so the server's own delays are in the truth, not in the tools' errors). Each tool (pinned
to CPU 0) runs against a fresh server per concurrency; the bench reads the tool's own reported
TTFT, TPOT and ITL p50/p99 from its output files (bench/peers/tools.py says where) and prints them
minus the truth's, the tool's CPU per content chunk (every process it started: a cpuacct cgroup,
else /proc sampled), and requests completed by the tool's count against the server's. A tool's
sweep stops once its TTFT p99 error passes --stop-ms. At the end: the highest concurrency each
tool holds at a TTFT p99 error within 2 ms and within 10 ms, and sseload's over the best peer's
(the goal: 10x at 2 ms).

The peers (pinned versions, tools.py) are installed into bench/peers/.venvs/<tool> the first time
(git-ignored; nothing of theirs is a dependency of sseload). A tool that cannot be installed or
run here is named with why, and the rest go on. Run it with sseload's own environment active
(the bench runs sseload as `python -m sseload run`). It needs root for the CPU cgroup (else
sampling), taskset, gcc and OpenSSL's headers (bench/fixed_target.py builds the server).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import signal
import subprocess
import sys
import tempfile
import time
import urllib.request
from dataclasses import asdict
from pathlib import Path

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE))
sys.path.insert(1, str(HERE.parent))  # bench/: fixed_target

try:
    import fixed_target  # noqa: E402
    import tools  # noqa: E402
    import truth  # noqa: E402
except ImportError as err:  # numpy: sseload's environment is not the active one
    sys.exit(f"bench/peers/run.py: {err}; run it in sseload's environment (. .venv/bin/activate; pip install -e .)")

DEFAULT_CONCURRENCY = "1,5,10,20,50,200,500,1000,2000"
BOUNDS_MS = (2.0, 10.0)
RAMP_S = 6.0  # a tool's own time to reach its concurrency, before the measured window


# --- installing the peers -----------------------------------------------------------------------

def python_for(version: tuple[int, int]) -> str | None:
    """An interpreter at least this version that runs: this one, pythonX.Y on PATH, or pyenv's
    (a pyenv shim for a version that is not selected is on PATH and fails, so each is asked)."""
    if sys.version_info[:2] >= version:
        return sys.executable
    candidates = [shutil.which(f"python{version[0]}.{minor}") for minor in range(version[1], 16)]
    root = Path(os.environ.get("PYENV_ROOT", Path.home() / ".pyenv")) / "versions"
    pyenv = root.glob(f"{version[0]}.*/bin/python3")  # the oldest that is new enough: wheels exist for it
    candidates += [str(exe) for exe in sorted(pyenv, key=lambda e: tuple(map(int, e.parts[-3].split(".")[:2])))]
    for exe in filter(None, candidates):
        asked = subprocess.run([exe, "-c", "import sys; print(*sys.version_info[:2])"], capture_output=True, text=True)
        if asked.returncode == 0 and tuple(map(int, asked.stdout.split())) >= version:
            return exe
    return None


def install(tool: tools.Tool) -> str | None:
    """Make the tool's venv if missing; None when it is ready, else why it is not."""
    if not tool.pip:
        try:
            import sseload  # noqa: F401
        except ImportError:
            return "sseload is not importable here: activate its environment (pip install -e .)"
        return None
    marker = tool.venv / ".installed"
    if marker.exists() and marker.read_text() == tool.spec and (tool.venv / "bin" / tool.exe).exists():
        return None
    python = python_for(tool.python)
    if python is None:
        return f"needs Python >= {tool.python[0]}.{tool.python[1]} and none was found (PATH, pyenv)"
    print(f"installing {tool.name} ({tool.spec}) into {tool.venv} ...", flush=True)
    if not (tool.venv / "bin" / "pip").exists():
        made = subprocess.run([python, "-m", "venv", str(tool.venv)], capture_output=True, text=True)
        if made.returncode:
            return f"could not make its venv: {made.stderr.strip()[-300:]}"
    for step in tool.pip:
        done = subprocess.run([str(tool.venv / "bin" / "pip"), "install", "--quiet", *step],
                              capture_output=True, text=True)
        if done.returncode:
            lines = [x for x in done.stderr.splitlines() if "ERROR" in x] or done.stderr.splitlines()[-3:]
            return f"pip install {' '.join(step)} failed: {' '.join(lines)[-400:]}"
    if not (tool.venv / "bin" / tool.exe).exists():
        return f"installed, but {tool.exe} is not in {tool.venv / 'bin'}"
    marker.write_text(tool.spec)
    return None


# --- CPU of a process tree ----------------------------------------------------------------------

class CpuMeter:
    """CPU seconds of a process and everything it starts: a cgroup's account where one can be made
    (cgroup v1 cpuacct, or v2 cpu.stat), else the /proc tree summed at each reading (a child that
    exits between two readings is then lost: the table says which way was used)."""

    def __init__(self, name: str) -> None:
        self.path: Path | None = None
        self.kind = "proc"
        self.root_pid = 0
        v1 = Path("/sys/fs/cgroup/cpuacct")
        v2 = next((p for p in (Path("/sys/fs/cgroup"), Path("/sys/fs/cgroup/unified"))
                   if (p / "cgroup.controllers").exists()), None)
        for base, kind in ((v1, "cgroup"), (v2, "cgroup2")):
            if base is None or not base.is_dir():
                continue
            try:
                (base / name).mkdir(exist_ok=True)
                self.path, self.kind = base / name, kind
                break
            except OSError:
                continue

    def join(self) -> None:
        """In the child, before exec (preexec_fn): the tool and all it starts are counted."""
        if self.path is not None:
            (self.path / "cgroup.procs").write_text(str(os.getpid()))

    def seconds(self) -> float:
        if self.kind == "cgroup":
            return int((self.path / "cpuacct.usage").read_text()) / 1e9
        if self.kind == "cgroup2":
            stat = dict(line.split() for line in (self.path / "cpu.stat").read_text().splitlines())
            return int(stat["usage_usec"]) / 1e6
        return self._proc_tree()

    def _proc_tree(self) -> float:
        children: dict[int, list[int]] = {}
        times: dict[int, float] = {}
        tick = os.sysconf("SC_CLK_TCK")
        for stat in Path("/proc").glob("[0-9]*/stat"):
            try:
                fields = stat.read_text().rsplit(")", 1)[1].split()
            except OSError:
                continue
            pid = int(stat.parent.name)
            children.setdefault(int(fields[1]), []).append(pid)
            times[pid] = (int(fields[11]) + int(fields[12])) / tick
        total, todo = 0.0, [self.root_pid]
        while todo:
            pid = todo.pop()
            total += times.get(pid, 0.0)
            todo.extend(children.get(pid, []))
        return total

    def remove(self) -> None:
        if self.path is None:
            return
        for _ in range(50):
            try:
                self.path.rmdir()
                return
            except OSError:  # its last process is still exiting
                time.sleep(0.1)


# --- one point ----------------------------------------------------------------------------------

def pinned(cmd: list[str], cpu: int | None) -> list[str]:
    if cpu is None or not shutil.which("taskset"):
        return cmd
    return ["taskset", "-c", str(cpu), *cmd]


def stats(url: str, reset: bool = False) -> dict:
    req = urllib.request.Request(url + "/_sseload/stats", method="POST" if reset else "GET",
                                 data=b"" if reset else None)
    with urllib.request.urlopen(req, timeout=10) as response:
        return json.loads(response.read())


def start_server(tmp: Path, args, cpu: int | None) -> tuple[subprocess.Popen, str, Path]:
    port_file, log = tmp / "port", tmp / "truth.log"
    proc = subprocess.Popen(pinned([str(fixed_target.binary()), "--openai", "--port", "0", "--port-file",
                                    str(port_file), "--log", str(log), "--ttfe-ms", f"{args.ttft_ms:g}",
                                    "--gap-ms", f"{args.itl_ms:g}", "--events", str(args.tokens)], cpu),
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    while not port_file.exists():
        if proc.poll() is not None:
            sys.exit(f"the truth server (bench/fixed_target.c) exited ({proc.returncode}) before listening")
        time.sleep(0.05)
    return proc, f"http://127.0.0.1:{port_file.read_text()}", log


def stop(proc: subprocess.Popen, grace_s: float = 10.0) -> None:
    """SIGTERM to the process group the tool leads, SIGKILL after the grace."""
    for sig, wait_s in ((signal.SIGTERM, grace_s), (signal.SIGKILL, 5.0)):
        if proc.poll() is not None:
            return
        try:
            os.killpg(proc.pid, sig)
        except ProcessLookupError:
            return
        try:
            proc.wait(timeout=wait_s)
        except subprocess.TimeoutExpired:
            continue


def run_point(tool: tools.Tool, concurrency: int, args, cpus: tuple, keep: Path | None) -> dict:
    stream_s = (args.ttft_ms + (args.tokens - 1) * args.itl_ms) / 1e3
    row: dict = {"tool": tool.name, "concurrency": concurrency}
    with tempfile.TemporaryDirectory(prefix=f"sseload-peers-{tool.name}-") as tmp_name:
        tmp = Path(tmp_name)
        out = tmp / "out"
        out.mkdir()
        server, url, log = start_server(tmp, args, cpus[1])
        run = tools.Run(url=url, concurrency=concurrency, duration_s=RAMP_S + args.seconds + 2 * stream_s,
                        stream_s=stream_s, tokens=args.tokens, tokenizer=args.tokenizer, out=out)
        env = {**os.environ, **tools.NO_HUB, **tool.env}
        meter = CpuMeter(f"sseload-peers-{os.getpid()}-{tool.name}-{concurrency}")
        console = (tmp / "console.txt").open("w")
        t_launch = time.monotonic()
        proc = subprocess.Popen(pinned(tool.command(run), cpus[0]), env=env, cwd=out, stdout=console,
                                stderr=subprocess.STDOUT, start_new_session=True, preexec_fn=meter.join)
        meter.root_pid = proc.pid
        # the window: from when the server has `concurrency` streams open (or RAMP_S + 60 s after the
        # launch, whichever first: a tool may never get there), for --seconds
        wanted = max(1, int(0.9 * concurrency))
        window = None
        reached = False
        hard_deadline = t_launch + run.duration_s + 180
        try:
            while proc.poll() is None and time.monotonic() < hard_deadline:
                now = time.monotonic()
                if window is None:
                    active = stats(url)["streams_active"]
                    if active >= wanted or now - t_launch > RAMP_S + 60:
                        reached = active >= wanted
                        stats(url, reset=True)
                        window = (now, meter.seconds())
                elif now - window[0] >= args.seconds:
                    break
                time.sleep(0.2)
            if window is not None:
                cpu1, t1, served = meter.seconds(), time.monotonic(), stats(url)
            try:
                proc.wait(timeout=max(1.0, hard_deadline - time.monotonic()))
            except subprocess.TimeoutExpired:
                row["note"] = "killed at its deadline"
        finally:
            stop(proc)
            console.close()
            server.send_signal(signal.SIGTERM)  # flushes the log
            server.wait(timeout=30)
            meter.remove()
        row["cpu_from"] = meter.kind
        if window is not None:
            row.update(window_s=t1 - window[0], reached=reached, server_chunks=served["events_sent"],
                       us_per_chunk=1e6 * (cpu1 - window[1]) / served["events_sent"] if served["events_sent"] else None,
                       tool_cpu_pct=100 * (cpu1 - window[1]) / (t1 - window[0]),
                       server_late_p99=(served.get("lateness_ms") or {}).get("p99"))
        t = truth.read(log, args.tokens)
        row.update({f"truth_{k}": v for k, v in asdict(t).items()})
        row["rc"] = proc.returncode
        try:
            reported = tool.read(out)
            row.update(asdict(reported))
            for metric in ("ttft", "tpot", "itl"):
                for p in ("p50", "p99"):
                    got = getattr(reported, f"{metric}_{p}")
                    row[f"{metric}_err_{p}"] = None if got is None else got - getattr(t, f"{metric}_{p}")
        except (OSError, KeyError, ValueError, StopIteration, IndexError) as err:
            tail = (tmp / "console.txt").read_text(errors="replace").strip().splitlines()[-3:]
            row["note"] = (f"no results ({type(err).__name__}: {err}); exit {proc.returncode}; "
                           + " | ".join(tail)[-300:])
        if keep is not None:
            shutil.copytree(tmp, keep / f"{tool.name}-{concurrency}", dirs_exist_ok=True,
                            ignore=shutil.ignore_patterns("*.log"))
    return row


# --- the table ----------------------------------------------------------------------------------

def fmt(v, digits: int = 2) -> str:
    if v is None or (isinstance(v, float) and v != v):
        return "-"
    if isinstance(v, float):
        return f"{v:,.{digits}f}"
    return f"{v:,}" if isinstance(v, int) and not isinstance(v, bool) else str(v)


COLUMNS = [  # header, key, digits
    ("tool", "tool", 0), ("conc.", "concurrency", 0),
    ("TTFT p50", "ttft_p50", 2), ("err", "ttft_err_p50", 2), ("TTFT p99", "ttft_p99", 2), ("err", "ttft_err_p99", 2),
    ("TPOT p50 err", "tpot_err_p50", 3), ("TPOT p99 err", "tpot_err_p99", 3),
    ("ITL p50 err", "itl_err_p50", 3), ("ITL p99 err", "itl_err_p99", 3),
    ("µs CPU/chunk", "us_per_chunk", 1), ("tool CPU %", "tool_cpu_pct", 0),
    ("done tool/server", "done", 0), ("truth TTFT p50/p99", "truth_ttft", 0), ("server late p99", "server_late_p99", 2),
]


def print_table(rows: list[dict]) -> None:
    cells = []
    for r in rows:
        r = dict(r)
        r["done"] = f"{fmt(r.get('completed'))}/{fmt(r.get('truth_completed'))}"
        r["truth_ttft"] = f"{fmt(r.get('truth_ttft_p50'))}/{fmt(r.get('truth_ttft_p99'))}"
        cells.append([fmt(r.get(key), digits) for _, key, digits in COLUMNS])
    widths = [max(len(h), *(len(c[i]) for c in cells)) for i, (h, _, _) in enumerate(COLUMNS)]
    print("  ".join(h.rjust(w) for (h, _, _), w in zip(COLUMNS, widths, strict=True)))
    for c in cells:
        print("  ".join(x.rjust(w) for x, w in zip(c, widths, strict=True)))
    for r in rows:
        if r.get("note") or (r.get("window_s") is not None and not r.get("reached")):
            why = r.get("note") or f"never had {r['concurrency']} streams open at the server; measured anyway"
            print(f"  {r['tool']} at {r['concurrency']}: {why}")


def holds(rows: list[dict], tool: str, bound_ms: float) -> int | None:
    """The highest concurrency at which the tool had its streams open and its TTFT p99 error was within
    the bound (the highest tried that held, not a search between the points)."""
    ok = [r["concurrency"] for r in rows if r["tool"] == tool and r.get("ttft_err_p99") is not None
          and abs(r["ttft_err_p99"]) <= bound_ms and r.get("reached")]
    return max(ok) if ok else None


def print_summary(rows: list[dict], ran: list[str], cannot: dict[str, str]) -> None:
    print("\nHighest concurrency held (one core each; TTFT p99 error within the bound):")
    for name in ran:
        held = [holds(rows, name, b) for b in BOUNDS_MS]
        per_chunk = [r["us_per_chunk"] for r in rows if r["tool"] == name and r.get("us_per_chunk")]
        at = [f"{fmt(h) if h else 'none'} at {b:g} ms" for h, b in zip(held, BOUNDS_MS, strict=True)]
        print(f"  {name:>15}: " + ", ".join(at)
              + (f"; CPU per chunk {min(per_chunk):.1f}-{max(per_chunk):.1f} µs" if per_chunk else ""))
    for name, why in cannot.items():
        print(f"  {name:>15}: cannot run here: {why}")
    if "sseload" in ran:
        for bound in BOUNDS_MS:
            mine = holds(rows, "sseload", bound)
            peers = {n: holds(rows, n, bound) for n in ran if n != "sseload"}
            peers = {n: h for n, h in peers.items() if h}
            if not peers:
                lowest = min(r["concurrency"] for r in rows)
                print(f"  at {bound:g} ms: no peer held the bound at any concurrency tried (the lowest: {lowest}), "
                      f"so no ratio; sseload held {fmt(mine) if mine else 'none'}")
                continue
            best = max(peers, key=peers.get)
            ratio = (mine or 0) / peers[best]
            verdict = "met" if ratio >= 10 else f"short by {10 / ratio:.1f}x" if ratio else "not met"
            goal = f" (the goal, 10x: {verdict})" if bound == 2.0 else ""
            top = max(r["concurrency"] for r in rows if r["tool"] == "sseload")
            bounded = "; sseload held the highest concurrency tried, so this is a lower bound" if mine == top else ""
            print(f"  at {bound:g} ms: sseload {fmt(mine) if mine else 'none'} against the best peer, {best}, "
                  f"{fmt(peers[best])}: {ratio:.1f}x{goal}{bounded}")


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0],
                                 formatter_class=argparse.RawDescriptionHelpFormatter,
                                 epilog="\n".join(__doc__.splitlines()[2:]))
    ap.add_argument("--tools", nargs="+", default=list(tools.TOOLS), choices=list(tools.TOOLS), metavar="TOOL",
                    help=f"which tools, in order (default: all: {' '.join(tools.TOOLS)})")
    ap.add_argument("--concurrency", default=DEFAULT_CONCURRENCY,
                    help=f"comma-separated concurrent streams, each a point (default: {DEFAULT_CONCURRENCY})")
    ap.add_argument("--seconds", type=float, default=20.0,
                    help="measured window per point, once the server has the streams open (default: 20)")
    ap.add_argument("--quick", action="store_true", help="a smoke: concurrency 2, 5 s windows")
    ap.add_argument("--ttft-ms", type=float, default=200.0, help="the server's time to first content (default: 200)")
    ap.add_argument("--itl-ms", type=float, default=20.0, help="the server's gap between content chunks (default: 20)")
    ap.add_argument("--tokens", type=int, default=50, help="content chunks per stream, one token each (default: 50)")
    ap.add_argument("--stop-ms", type=float, default=50.0,
                    help="stop a tool's sweep once its TTFT p99 error is past this (default: 50)")
    ap.add_argument("--no-pin", action="store_true", help="do not pin the tool to CPU 0 and the server to CPU 1")
    ap.add_argument("--keep", type=Path, help="copy each point's tool output and console here")
    ap.add_argument("--json", type=Path, help="also write every row here")
    ap.add_argument("--install-only", action="store_true", help="install the peers' venvs and stop")
    args = ap.parse_args()
    concurrencies = [2] if args.quick else [int(x) for x in args.concurrency.split(",") if x.strip()]
    if args.quick:
        args.seconds = min(args.seconds, 5.0)
    cpus = (None, None) if args.no_pin else (0, 1)
    cannot: dict[str, str] = {}
    for name in args.tools:
        why = install(tools.TOOLS[name])
        if why:
            cannot[name] = why
            print(f"{name}: cannot run here: {why}", flush=True)
    if args.install_only:
        return
    try:
        fixed_target.binary()
    except fixed_target.BuildError as err:
        sys.exit(f"the truth server: {err}")
    if args.keep:
        args.keep.mkdir(parents=True, exist_ok=True)
    rows: list[dict] = []
    ran = [n for n in args.tools if n not in cannot]
    with tempfile.TemporaryDirectory(prefix="sseload-peers-tok-") as tok:
        args.tokenizer = tools.tokenizer_dir(Path(tok) / "tokenizer")
        for name in ran:
            for c in concurrencies:
                t0 = time.monotonic()
                row = run_point(tools.TOOLS[name], c, args, cpus, args.keep)
                rows.append(row)
                print(f"{name} at {c}: TTFT p99 {fmt(row.get('ttft_p99'))} ms (truth {fmt(row.get('truth_ttft_p99'))}, "
                      f"error {fmt(row.get('ttft_err_p99'))}), {fmt(row.get('us_per_chunk'), 1)} µs CPU per chunk, "
                      f"{fmt(row.get('completed'))}/{fmt(row.get('truth_completed'))} done "
                      f"[{time.monotonic() - t0:.0f} s]" + (f"; {row['note']}" if row.get("note") else ""), flush=True)
                err = row.get("ttft_err_p99")
                if err is None or abs(err) > args.stop_ms:
                    why = "no result" if err is None else f"TTFT p99 error {err:.1f} ms > {args.stop_ms:g} ms"
                    print(f"{name}: sweep stopped at {c} ({why})", flush=True)
                    break
    params = (f"server: TTFT {args.ttft_ms:g} ms, a content chunk every {args.itl_ms:g} ms, {args.tokens} chunks; "
              f"windows of {args.seconds:g} s")
    print(f"\n{params}. Times in ms; err = the tool's reported value minus the truth's (the server's send log); "
          "TPOT per request (end - TTFT) / (tokens - 1), ITL per chunk; µs CPU per content chunk the server sent "
          "in the window, every process of the tool")
    print_table(rows)
    print_summary(rows, ran, cannot)
    if args.json:
        args.json.write_text(json.dumps({"params": params, "rows": rows, "cannot_run": cannot}, indent=1))


if __name__ == "__main__":
    main()
