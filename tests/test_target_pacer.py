"""The reference target's pacer: every stream's next event in one heap, one loop timer."""

import asyncio

import pytest

from sseload.target.server import Pacer

pytestmark = pytest.mark.unit


class FakeStream:
    """What the pacer needs of a stream: a token, a done flag, tick()."""

    def __init__(self, pacer: Pacer, name: str, fired: list, offsets_s: list[float], t0: float) -> None:
        self.pacer, self.name, self.fired = pacer, name, fired
        self.offsets_s, self.t0, self.i = offsets_s, t0, 0
        self.token = 0
        self.done = False

    def schedule(self) -> None:
        if self.i < len(self.offsets_s):
            self.token += 1
            self.pacer.at(self.t0 + self.offsets_s[self.i], self, self.token)

    def tick(self) -> None:
        loop = self.pacer.loop
        self.fired.append((self.name, self.i, loop.time() - (self.t0 + self.offsets_s[self.i])))
        self.i += 1
        self.schedule()


def run(body) -> None:
    loop = asyncio.new_event_loop()  # the default loop: its _scheduled list can be inspected
    try:
        loop.run_until_complete(body(loop))
    finally:
        loop.close()


def live_timers(loop) -> int:
    return sum(1 for handle in loop._scheduled if not handle.cancelled())


def test_events_of_many_streams_fire_in_due_order_and_not_early():
    fired: list = []

    async def body(loop):
        pacer = Pacer(loop)
        t0 = loop.time()
        streams = [FakeStream(pacer, f"s{k}", fired, [0.01 * k + 0.02 * j for j in range(5)], t0) for k in range(4)]
        for stream in reversed(streams):
            stream.schedule()
        await asyncio.sleep(0.2)

    run(body)
    assert len(fired) == 20
    dues = [round(int(name[1:]) * 0.01 + 0.02 * i, 6) for name, i, _ in fired]
    assert dues == sorted(dues)
    assert min(early for _, _, early in fired) > -0.001  # never before its time (clock resolution aside)
    assert max(late for _, _, late in fired) < 0.05


def test_a_stream_that_ended_gets_no_more_ticks():
    fired: list = []

    async def body(loop):
        pacer = Pacer(loop)
        t0 = loop.time()
        kept = FakeStream(pacer, "kept", fired, [0.01, 0.02, 0.03], t0)
        ended = FakeStream(pacer, "ended", fired, [0.01, 0.02, 0.03], t0)
        kept.schedule()
        ended.schedule()
        await asyncio.sleep(0.015)
        ended.done = True
        ended.token += 1  # as Stream.finish_quietly does
        await asyncio.sleep(0.05)

    run(body)
    assert [i for name, i, _ in fired if name == "kept"] == [0, 1, 2]
    assert [i for name, i, _ in fired if name == "ended"] == [0]


def test_streams_rescheduling_while_the_pacer_runs_leave_one_timer():
    async def body(loop):
        pacer = Pacer(loop)
        t0 = loop.time()
        fired: list = []
        streams = [FakeStream(pacer, f"s{k}", fired, [0.005 + 0.01 * j for j in range(20)], t0) for k in range(50)]
        for stream in streams:
            stream.schedule()
        for _ in range(10):
            await asyncio.sleep(0.013)
            assert live_timers(loop) <= 1  # one timer for the whole heap, never a pile of them
        await asyncio.sleep(0.2)
        assert len(fired) == 50 * 20
        assert live_timers(loop) == 0 and pacer.heap == []

    run(body)


def test_with_a_seed_the_nth_request_gets_the_same_fault_whatever_was_drawn_in_between():
    from sseload.target.config import TargetConfig
    from sseload.target.server import TargetState

    def faults(draws_between: int) -> list:
        state = TargetState(TargetConfig.from_dict({"faults": {"reset": 0.3}, "seed": 1}))
        out = []
        for _ in range(20):
            out.append(state.pick_fault({}))
            for _ in range(draws_between):  # event delays and split points drawn by other streams
                state.rng.random()
        return out

    assert faults(0) == faults(7) == faults(1)
    assert "reset" in faults(0) and None in faults(0)
