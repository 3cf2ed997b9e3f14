"""The matmul speed the time estimate divides by: best of several rounds, kept per process, and really short.

The mocks replace only core/plan/probe.py's `_timed` (the timing boundary): the
rounds, the thread counts tried, the budget and the cache are the real code.
"""
from __future__ import annotations

import time

import pytest
import torch

from core.config import RunConfig
from core.plan import cost, probe, speed
from core.plan.model_shape import EMBEDDED_CONFIG

STATS = {"examples": 200, "tokens": 24_000, "trained_share": 0.4, "length_p50": 110}
FLOPS_PER_CALL = 2 * probe.SPEED_SIDE ** 3
IDLE = {1: 0.003, 2: 0.0016}  # seconds per round (SPEED_CALLS matmuls) on 1 and 2 threads, undisturbed
REAL_PAUSE_S, REAL_BUDGET_S = probe.SPEED_PAUSE_S, probe.SPEED_BUDGET_S


@pytest.fixture(autouse=True)
def two_idle_cores(monkeypatch):
    """A 2-core CPU, no pause between rounds, no budget (the warm-up matmuls are real), nothing measured yet."""
    monkeypatch.setattr(probe.hardware, "cpu_cores", lambda: 2)
    monkeypatch.setattr(probe, "SPEED_BUDGET_S", 60.0)
    monkeypatch.setattr(speed.hardware, "device_type", lambda: "cpu")
    monkeypatch.setattr(probe, "SPEED_PAUSE_S", 0.0)
    monkeypatch.setattr(probe, "_MATMUL", {})
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def clock(slow_rounds=(), factor: float = 10.0, calls: list | None = None, idle: dict | None = None):
    """A fake `_timed`: `idle` seconds for the current thread count, `factor` x that in `slow_rounds` (a load spike).

    A round times the thread counts in rising order, so a count not above the last one begins the next round.
    """
    idle = idle or IDLE
    state = {"round": -1, "last": 10 ** 6}

    def fake(run, device):
        threads = torch.get_num_threads()
        if threads <= state["last"]:
            state["round"] += 1
        state["last"] = threads
        if calls is not None:
            calls.append((state["round"], threads))
        return idle[threads] * (factor if state["round"] in slow_rounds else 1.0)
    return fake


def fastest() -> float:
    return FLOPS_PER_CALL / (min(IDLE.values()) / probe.SPEED_CALLS)


def estimate() -> float:
    config = RunConfig(precision="fp32")
    return cost.run_seconds(config, STATS, 100, 100, model_config=EMBEDDED_CONFIG)


@pytest.mark.parametrize("spike", [(0,), (0, 1, 2), tuple(range(probe.SPEED_ROUNDS - 1))])
def test_a_load_spike_does_not_slow_the_estimate(monkeypatch, spike):
    """One slow round, or every round but the last: the fastest round is the speed, so the estimate is the idle one."""
    monkeypatch.setattr(probe, "_timed", clock())
    idle = estimate()
    assert probe.matmul_flops() == pytest.approx(fastest())
    monkeypatch.setattr(probe, "_MATMUL", {})
    monkeypatch.setattr(probe, "_timed", clock(slow_rounds=spike))
    assert speed.device_flops() == pytest.approx(fastest())
    assert estimate() == pytest.approx(idle)


def test_thread_counts_far_slower_than_the_best_stop_being_timed(monkeypatch):
    """Idle, 1 thread is ~2x slower than 2; with one core busy, 2 threads wait on the busy one (~10x slower)."""
    last = probe.SPEED_MIN_ROUNDS - 1
    for idle, kept in ((IDLE, 2), ({1: 0.003, 2: 0.03}, 1)):
        calls = []
        monkeypatch.setattr(probe, "_MATMUL", {})
        monkeypatch.setattr(probe, "_timed", clock(calls=calls, idle=idle))
        torch.set_num_threads(2)
        flops = probe.matmul_flops()
        assert flops == pytest.approx(FLOPS_PER_CALL / (idle[kept] / probe.SPEED_CALLS))
        assert calls == [(r, t) for r in range(probe.SPEED_MIN_ROUNDS) for t in (1, 2)] + \
            [(r, kept) for r in range(last + 1, probe.SPEED_ROUNDS)]
        assert torch.get_num_threads() == 2  # the caller's own setting, restored


def test_a_busy_machine_stops_after_the_minimum_rounds(monkeypatch):
    calls = []
    timed = clock(calls=calls)

    def slow(run, device):
        time.sleep(0.004)  # every round past the budget
        return timed(run, device)
    monkeypatch.setattr(probe, "SPEED_BUDGET_S", 0.001)
    monkeypatch.setattr(probe, "_timed", slow)
    probe.matmul_flops()
    assert len(calls) == probe.SPEED_MIN_ROUNDS * len(IDLE)


def test_the_speed_is_measured_once_per_process_until_it_is_old(monkeypatch):
    calls = []
    monkeypatch.setattr(probe, "_timed", clock(calls=calls))
    first = estimate()
    measured = len(calls)
    assert measured and estimate() == first and speed.device_flops() == pytest.approx(fastest())
    assert len(calls) == measured  # the form's estimate and the run's Start share one measurement
    when, flops = probe._MATMUL["cpu"]
    probe._MATMUL["cpu"] = (when - probe.SPEED_TTL_S - 1, flops)  # five minutes later: the load may have moved
    estimate()
    assert len(calls) == 2 * measured


def test_the_real_probe_is_short_and_plausible(monkeypatch):
    """No mock: this machine's own matmuls, in a fraction of a second (budgeted, so also on busy cores)."""
    monkeypatch.setattr(probe, "SPEED_PAUSE_S", REAL_PAUSE_S)
    monkeypatch.setattr(probe, "SPEED_BUDGET_S", REAL_BUDGET_S)
    before = torch.get_num_threads()
    start = time.perf_counter()
    flops = probe.matmul_flops()
    seconds = time.perf_counter() - start
    print(f"\nmatmul {flops / 1e9:.0f} GFLOP/s in {seconds * 1000:.0f} ms")
    assert 1e8 < flops < 1e15 and torch.get_num_threads() == before
    assert seconds < 2.0  # ~0.1 s on 2 idle cores; the budget stops a busy machine after 3 rounds
