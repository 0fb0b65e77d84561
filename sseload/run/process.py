"""What a Locust process sets up for itself so that it measures well and never outlives ``sseload``.

Process-wide settings, not a role's state: the garbage collector, the interpreter's switch
interval, a cache over one of Locust's own calls, the users' default wait, and the watchdog that
kills a child of ``sseload run`` stuck in C after ``sseload`` died.
"""

from __future__ import annotations

import functools
import gc
import inspect
import logging
import sys

from sseload.record.recorder import warm_up

log = logging.getLogger("sseload")


def load_running(environment) -> bool:
    """Users are (or are being) started, or still stopping: streams may be open."""
    runner = environment.runner
    return runner is not None and runner.state in ("spawning", "running", "stopping", "cleanup")


def watch_for_orphaning(grace_s: float | None) -> None:
    """A child of `sseload run` gets SIGTERM when sseload dies (PR_SET_PDEATHSIG) and stops in
    order; should it be stuck in C code holding the GIL, its signal handler never runs. The
    native watchdog thread SIGKILLs it once the grace for that orderly stop is over."""
    if grace_s is None:
        return
    try:
        from sseload import _reader
    except ImportError:  # not built: the orderly SIGTERM is all there is
        log.warning("sseload._reader is not built: a child stuck in C could outlive sseload")
        return
    _reader.orphan_watchdog(grace_s)


def memoise_default_args() -> None:
    """Locust's worker, on every spawn message of a ramp, calls default_args_dict() once per
    option inside a comprehension, and each call builds a whole argparse parser: every open
    stream stalls while it does. The answer never changes within a process."""
    from locust import argument_parser

    if not hasattr(argument_parser.default_args_dict, "cache_info"):
        argument_parser.default_args_dict = functools.lru_cache(maxsize=1)(argument_parser.default_args_dict)


def prepare_users(environment, wait_s: float) -> None:
    """What a process that runs users needs before load starts: the recorder's first-use costs
    paid, the interpreter's switch interval short, [load] wait_s as the users' default wait, and
    users spawned in steps that let the event loop run (:func:`spawn_in_steps`)."""
    warm_up()
    # The writer thread must not hold the GIL for the default 5 ms while reads wait on it.
    sys.setswitchinterval(0.0005)
    for user_class in environment.user_classes:
        if getattr(user_class, "wait_time", None) is None:
            from locust import constant

            user_class.wait_time = constant(wait_s)
    if environment.runner is not None:
        spawn_in_steps(environment.runner)


#: Users a runner starts before it lets the event loop run again.
SPAWN_STEP_USERS = 100


def spawn_in_steps(runner) -> None:
    """Locust's runner starts all the users of one spawn step in a loop that never yields: with a
    spawn rate as high as the users (-u 1000000 -r 1000000) that is one loop of minutes, during
    which no stream is read, no progress is true and no signal is handled, not even the SIGTERM a
    child of ``sseload run`` gets when sseload dies; only the orphan watchdog's kill, after the stop
    timeout and its grace, ended such a child. Here the runner starts them SPAWN_STEP_USERS at a
    time and lets the event loop run in between, so a stop or a signal is handled within one step."""
    spawn_users = runner.spawn_users
    if getattr(spawn_users, "in_steps", False):
        return
    import gevent

    def in_steps(user_classes_spawn_count: dict[str, int], wait: bool = False) -> list:
        left = {name: count for name, count in user_classes_spawn_count.items() if count > 0}
        new_users: list = []
        while True:  # at least once, so Locust's own bookkeeping (its state) is as it would be
            step, room = {}, SPAWN_STEP_USERS
            for name in list(left):
                step[name] = min(left[name], room)
                room -= step[name]
                left[name] -= step[name]
                if not left[name]:
                    del left[name]
                if not room:
                    break
            new_users += spawn_users(step, wait=wait and not left)
            if not left:
                return new_users
            gevent.sleep(0)

    in_steps.in_steps = True
    runner.spawn_users = in_steps


def quiet_collector() -> None:
    """As load starts: start-up garbage frozen out of the collector's sight and young collections
    made rarer, since full collections pause the event loop under every open stream. And Locust's
    Runner.stop() logs its caller with inspect.stack(), whose first call scans every loaded module
    while the last streams are still open: paid here instead."""
    inspect.getframeinfo(inspect.stack()[0][0])
    gc.collect()
    gc.freeze()
    gc.set_threshold(50_000, 50, 1000)
