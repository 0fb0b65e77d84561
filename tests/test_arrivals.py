"""The open model's one schedule per process: in order, at the rate, none after the run time."""

import random

import numpy as np
import pytest

from sseload.scenario.arrivals import Arrivals

pytestmark = pytest.mark.unit


def test_constant_arrivals_are_evenly_spaced_from_one_gap_in():
    a = Arrivals("constant", 40.0, run_s=1.0)
    starts = []
    while (t := a.take(now_ns=0)) is not None:
        starts.append(t)
    assert starts[0] == 25_000_000 and np.all(np.diff(starts) == 25_000_000)
    assert len(starts) == 39 and starts[-1] < 1_000_000_000  # none at or after the run time


def test_poisson_arrivals_have_the_rate_and_exponential_gaps():
    a = Arrivals("poisson", 40.0, run_s=300.0, rng=random.Random(7))
    starts = []
    while (t := a.take(now_ns=0)) is not None:
        starts.append(t)
    gaps_s = np.diff(starts) / 1e9
    assert abs(len(starts) / 300.0 - 40.0) < 1.5
    assert abs(gaps_s.std() / gaps_s.mean() - 1.0) < 0.05  # coefficient of variation of an exponential


def test_a_free_user_takes_the_earliest_arrival_not_yet_taken():
    """Arrivals are handed out in order, so one waits only when every user is busy."""
    a = Arrivals("constant", 10.0)
    first, second, third = a.take(now_ns=0), a.take(now_ns=0), a.take(now_ns=5_000_000_000)
    assert (first, second, third) == (100_000_000, 200_000_000, 300_000_000)  # late, not skipped: that is lag


def test_an_open_model_needs_a_rate():
    with pytest.raises(ValueError):
        Arrivals("poisson", 0.0)


def test_the_start_rate_is_over_the_load_window_not_the_drain():
    import pandas as pd

    from sseload.views.results import run_seconds, start_rate

    starts = np.arange(0, 30, 1 / 40) * 1e9  # 40/s for a 30 s run time
    streams = pd.DataFrame({"start_ns": starts.astype(np.int64), "duration_ms": np.full(starts.size, 5000.0)})
    seconds = run_seconds(streams)  # 35 s: the last streams finish 5 s after the run time
    assert start_rate(streams, seconds, run_s=30.0) == pytest.approx(40.0)
    assert start_rate(streams, seconds) == pytest.approx(1200 / seconds)  # no run time known: the run length
    assert start_rate(streams, seconds, run_s=60.0) == pytest.approx(1200 / seconds)  # stopped early
