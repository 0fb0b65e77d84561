"""``sseload search``: the highest load a service holds, found by a bounded search over runs.

Each point is a normal run (sseload.run.supervisor's ``run``, called with the point's users, or its
rate in the run-plan file), written as its own folder under the search's: reportable, comparable,
checkable. A point holds when the share of its streams meeting ``[slo]`` (the one definition,
sseload.views.summary.meets_slo) is at least ``[search] share`` and its run's verdict passes; the
statistics (intervals, samples a percentile needs, the answer) are sseload.views.capacity's, the
exit code sseload.run.verdict's, the curve sseload.views.search_report's. docs/search.md says how
the search decides and how to read it.
"""

from __future__ import annotations

import argparse
import contextlib
import io
import json
import math
import sys
import time
from pathlib import Path
from typing import Any

from sseload.record.metrics import BY_KEY, THRESHOLDS
from sseload.run import room, runinfo, supervisor
from sseload.run import verdict as run_verdict
from sseload.run.verdict import BadInput
from sseload.scenario.load import resolve, select
from sseload.scenario.model import Scenario
from sseload.views import capacity, search_report
from sseload.views.search_report import amount, answer_line

SEARCH_JSON = "search.json"
#: The statistics a point keeps of each latency it measured.
KEPT_STATS = ("p50", "p90", "p95", "p99", "max", "count")
#: The latencies a point keeps (those its run measured).
KEPT_LATENCIES = ("ttft_ms", "ttfe_ms", "itl_ms", "tpot_ms", "schedule_lag_ms")
#: A point's users reach their number within this share of its length (unless -r says otherwise).
RAMP_SHARE = 0.1


class Stopped(Exception):
    """The search cannot go on: a point recorded nothing, stopped itself at once, or a signal came."""

    def __init__(self, code: int, text: str) -> None:
        super().__init__(text)
        self.code = code


class Search:
    """One search: its settings, its folder, its points so far, and the clock of its budget."""

    def __init__(self, args: argparse.Namespace) -> None:
        self.args = args
        path = str(resolve(args.scenario)) if args.scenario else None
        self.scenario: Scenario = select(path, args.host, args)[0]
        self.table = self.scenario.search
        self.whole = self.table.over == "users"
        self.unit = "users" if self.whole else "streams/s"
        self._check_flags()
        try:
            self.folder = runinfo.create_run_dir(Path(args.results_dir), args.run_id,
                                                 f"search-{self.scenario.name}")
        except runinfo.RunDirError as err:
            raise BadInput(str(err)) from None
        self.points: list[dict] = []
        self.started = time.monotonic()
        self.overhead_s = 0.0  # the most a point took beyond its length (start-up, drain, reading back)
        self.needs = self._needs()

    def _check_flags(self) -> None:
        where = f"{self.scenario.source or self.scenario.name}: [search]"
        if self.args.run_time is not None:
            raise BadInput(f"-t/--run-time does not apply to a search: each point lasts {where} point_s "
                           f"({self.table.point_s:g} s) or longer where its statistics need more streams")
        if self.whole and self.args.users is not None:
            raise BadInput(f"-u/--users does not apply to a search over users: it varies them from {where} min to "
                           "max; with over = \"rate\", -u is the most streams open at once")
        if self.scenario.load.shape != "constant":
            raise BadInput(f"[load] shape = {self.scenario.load.shape!r}: a search sets each point's load itself; "
                           "use a scenario with the constant shape")

    def _needs(self) -> dict[str, int]:
        """The samples a point should have: streams to be sure of the share, and each percentile
        threshold's samples (sseload.views.capacity.samples_for), by metric."""
        needs = {"streams": capacity.streams_to_be_sure(self.table.share) or 0}
        for name in self.scenario.thresholds:
            rule = THRESHOLDS[name]
            if rule.stat is not None:
                needs[rule.metric] = max(needs.get(rule.metric, 0), capacity.samples_for(rule.stat))
        return needs

    # --- the loop ---

    def run(self) -> int:
        stopped, code, text = "", None, ""
        try:
            while True:
                load, stopped = capacity.next_load(self.decided(), self.table.min, self.table.max, self.whole,
                                                   self.table.resolution)
                if load is None:
                    break
                load = int(load) if self.whole else load
                length = self.length_for(load)
                if length is None:
                    stopped = "budget"
                    break
                point = self.run_point(load, length)
                if point["thin"] and not point["holds"]:  # once more, long enough now that its rate is known
                    longer = self.length_for(load)
                    if longer is not None and longer > length:
                        point["superseded"] = True
                        self.run_point(load, longer)
        except Stopped as stop:
            stopped, code, text = "stopped", stop.code, str(stop)
        except KeyboardInterrupt:
            stopped, code, text = "stopped", run_verdict.signal_code("SIGINT"), "interrupted by SIGINT"
        result = self.write(stopped, text)
        self.say(result)
        return result["exit_code"] if code is None else code

    def decided(self) -> list[dict]:
        """The points the decisions rest on: not those run again for more samples."""
        return [p for p in self.points if not p.get("superseded")]

    def length_for(self, load: float) -> int | None:
        """A point's length: ``point_s`` at least, longer where what it judges needs more samples
        (predicted from the nearest point below: in proportion to the load); None past the budget."""
        length = self.table.point_s
        below = [p for p in self.points if p["load"] <= load] or self.points
        if below:
            ref = max(below, key=lambda p: (p["load"], p["length_s"]))
            for key, need in self.needs.items():
                have = ref["counts"].get(key) or 0
                if have and need:
                    length = max(length, need / (have / ref["length_s"] * load / ref["load"]))
        if not self.points:
            return math.ceil(length)  # the first point always runs: the budget is at least one point
        left = self.table.budget_s - (time.monotonic() - self.started) - self.overhead_s
        if left < self.table.point_s:
            return None
        return math.ceil(min(length, left))

    def run_point(self, load: float, length: int) -> dict:
        """Run one point (a normal run) and read it back as a point of the search."""
        args = argparse.Namespace(**vars(self.args))
        tag = f"{load:g}".replace(".", "_")
        args.results_dir, args.run_id = str(self.folder), f"{len(self.points) + 1:02d}-{self.table.over}-{tag}"
        args.run_time = f"{length}s"
        if self.whole:
            args.users, values = int(load), {"arrival": "closed"}
        else:
            arrival = self.scenario.load.arrival if self.scenario.load.arrival != "closed" else "constant"
            args.users = self.args.users or self.scenario.load.users
            values = {"arrival": arrival, "rate_per_s": float(load)}
        args.spawn_rate = self.args.spawn_rate or max(self.scenario.load.spawn_rate,
                                                      args.users / max(1.0, RAMP_SHARE * length))
        console = io.StringIO()  # a point's summary and verdict go to its folder; the console gets one line
        began = time.monotonic()
        with contextlib.redirect_stdout(console), contextlib.redirect_stderr(console):
            code = supervisor.run(args, load=values, progress=sys.stderr.isatty())
        run_dir = self.folder / args.run_id
        try:  # whole, never half of one (no folder: the point was refused before it made one)
            room.write_whole(run_dir / "console.txt", console.getvalue())
        except room.DiskFull as err:  # said; the point's own files stand
            print(f"sseload: {err}", file=sys.stderr)
        except OSError:
            pass
        if code >= run_verdict.SIGNALLED:
            raise Stopped(code, f"point {args.run_id} was stopped by a signal")
        if code == run_verdict.NOTHING_RECORDED:
            raise Stopped(code, f"point {args.run_id} recorded nothing (see {run_dir / 'console.txt'})")
        point = self.read_point(run_dir, load, length, args.users)
        point["wall_s"] = time.monotonic() - began
        self.overhead_s = max(self.overhead_s, point["wall_s"] - length)
        self.points.append(point)
        self.write("", "")
        print(point_line(point, self.unit), flush=True)
        return point

    def read_point(self, run_dir: Path, load: float, length: int, users: int) -> dict:
        """A point from its run's files: the share meeting the SLO and how sure, the verdict, its numbers."""
        from sseload.views import results

        verdict, run, summary = run_verdict.of_run(run_dir, self.scenario)
        if verdict.stopped_early and not self.points:
            raise Stopped(run_verdict.BAD_INPUT, f"the first point stopped itself: {'; '.join(verdict.failures)}")
        streams = run.streams
        met = int(results.meets_slo(streams, (run.info.get("scenario") or {}).get("slo") or {}).sum())
        counts = {"streams": len(streams)}
        thin_counts, thin_needs = {}, {}
        for name in self.scenario.thresholds:
            rule = THRESHOLDS[name]
            if rule.stat is not None:
                have = int((summary.get(rule.metric) or {}).get("count") or 0)
                counts[rule.metric] = have
                thin_counts[name], thin_needs[name] = (rule.metric, have), capacity.samples_for(rule.stat)
        thin = capacity.too_few(thin_counts, thin_needs)
        thin_names = {name for name, (_, have) in thin_counts.items() if have < thin_needs[name]}
        failures = [f for f in verdict.failures if f.split(":")[0].removeprefix("threshold ") not in thin_names]
        if not self.whole:  # the open model: were the streams started as scheduled?
            asked = load * length
            if len(streams) < asked - 3 * math.sqrt(asked) - 1:
                failures.append(f"only {len(streams)} streams started of the {asked:.0f} scheduled: all {users} "
                                "users were busy (give more with -u)")
        judged = capacity.judge_point(len(streams), met, self.table.share, failures, thin)
        per_s = summary["streams_per_s"]
        return {
            "load": load, "run_id": run_dir.name, "length_s": length, "users": users, "streams": len(streams),
            "met_slo": met, **judged, "thin": thin, "warnings": verdict.warnings, "counts": counts,
            "streams_per_s": per_s, "goodput": per_s * judged["share_met"],
            "events_per_s": summary["events_per_s"], "output_tokens_per_s": summary.get("output_tokens_per_s"),
            "error_rate": summary["error_rate"], "cutoff_rate": summary["cutoff_rate"],
            "outcomes": summary["outcomes"],
            **{key: {s: summary[key].get(s) for s in KEPT_STATS}
               for key in KEPT_LATENCIES if (summary.get(key) or {}).get("count")},
        }

    # --- the answer ---

    def write(self, stopped: str, text: str) -> dict:
        """search.json, written whole after every point (an interrupted search keeps its points)."""
        found, interval = capacity.answer(self.decided(), self.whole)
        result = {
            "search_id": self.folder.name, "scenario": self.scenario.name, "over": self.table.over,
            "unit": self.unit, "search": vars(self.table).copy(), "slo": vars(self.scenario.slo).copy(),
            "thresholds": dict(self.scenario.thresholds), "capacity": found, "interval": interval,
            "stopped": stopped, "stopped_text": text or capacity.STOPPED.get(stopped, ""),
            "require": self.table.require, "exit_code": run_verdict.search_code(found, self.table.require),
            "elapsed_s": time.monotonic() - self.started, "points": self.points,
        }
        result["passed"] = result["exit_code"] == run_verdict.PASSED
        try:  # (whole: an interrupted search keeps the points before)
            room.write_whole(self.folder / SEARCH_JSON, json.dumps(result, indent=2, default=_plain))
        except room.DiskFull as err:  # the answer still goes to the console; the points' folders say theirs
            print(f"sseload: {err}", file=sys.stderr)
        return result

    def say(self, result: dict) -> None:
        """The answer, last: the capacity and its interval, why the search stopped, the gate."""
        try:
            search_report.write(self.folder, result)
        except Exception as err:  # the answer stands without its chart
            print(f"sseload: search.html could not be drawn: {err}", file=sys.stderr)
        print(answer_line(result), flush=True)
        print(self.folder, flush=True)


def _plain(value: Any) -> Any:
    """numpy's numbers in search.json as JSON's."""
    return value.item() if hasattr(value, "item") else str(value)


def point_line(point: dict, unit: str) -> str:
    """One line per point as it finishes."""
    low, high = point["share_interval"]
    latency = next((f"{BY_KEY[key].label} p99 {point[key]['p99']:.1f} ms"
                    for key in ("ttft_ms", "ttfe_ms") if key in point and point[key]["p99"] is not None), "")
    verdict = "holds" if point["holds"] else "fails"
    sure = "sure" if point["sure"] else "not sure"
    why = f": {'; '.join(point['reasons'])}" if point["reasons"] else ""
    return (f"sseload: {amount(point['load'], unit)} for {point['length_s']} s: {point['streams']} streams, "
            f"{point['share_met']:.1%} met the SLO (95% interval {low:.1%}-{high:.1%}), {latency}, "
            f"{point['streams_per_s']:.1f} streams/s, errors {point['error_rate']:.1%}: {verdict} ({sure}){why}")


def search(args: argparse.Namespace) -> int:
    """``sseload search``; its exit code (sseload.run.verdict.search_code)."""
    return Search(args).run()
