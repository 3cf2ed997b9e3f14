"""Precision chosen by measurement: both decisions with the probe's clock mocked, and the real probe here.

The mocks replace only core/plan/probe.py's `time_modes` (the timing boundary): the workloads are
still built and run once for real, the cache and the decision are the real code.
"""
from __future__ import annotations

import re
import time

import pytest
import torch

from core import hardware
from core.config import RunConfig
from core.messages import localize
from core.plan import checks
from core.plan import precision as P
from core.plan import probe as probes
from core.plan.model_shape import EMBEDDED_CONFIG, shape_of

HANGUL = re.compile("[\uac00-\ud7a3]")
pytestmark = pytest.mark.skipif(torch.cuda.is_available(), reason="CPU decisions (the GPU has its own default)")


REAL_PROBE_FLOPS = probes.PROBE_FLOPS


@pytest.fixture(autouse=True)
def cache(tmp_path, monkeypatch):
    monkeypatch.setattr(P, "_cache_file", lambda: tmp_path / "precision.json")
    monkeypatch.setattr(probes, "PROBE_FLOPS", 2e8)  # mocked clocks: the same shapes over fewer tokens, to stay fast
    probes.generic_speed.cache_clear()
    yield tmp_path / "precision.json"
    probes.generic_speed.cache_clear()


def clock(relative: dict[str, float], calls: list | None = None):
    """A fake `time_modes`: each mode takes `relative[mode]` x fp32's time (fp32 = 10 ms), every round."""
    def fake(workloads, rounds=probes.ROUNDS, device="cpu", budget_s=None):
        if calls is not None:
            calls.append(sorted(workloads))
        return {mode: [0.010 * relative.get(mode, 1.0)] * rounds for mode in workloads}
    return fake


def embedded() -> RunConfig:
    return RunConfig()  # the embedded SmolLM2-135M: its shape is known without loading it


def test_auto_picks_bf16_where_it_measures_faster(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 0.8, "bf16-weights": 0.6}))
    decision = P.decide(embedded())
    assert decision.mode == "bf16-weights" and decision.measured
    # CPU: loaded fp32, then cast_linears stores the linears in bf16; autocast runs them without casting
    assert decision.weights_dtype == torch.float32 and decision.autocast_dtype == torch.bfloat16
    assert "1.7x faster than fp32 on this CPU" in decision.reason
    assert HANGUL.search(localize(decision.reason, "ko"))


def test_auto_keeps_fp32_where_bf16_is_slower(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 1.6, "bf16-weights": 1.4}))
    decision = P.decide(embedded())
    assert decision.mode == "fp32" and decision.weights_dtype == torch.float32 and decision.autocast_dtype is None
    assert "not faster" in decision.reason and "bf16 weights 0.71x" in decision.reason


def test_a_gain_within_noise_keeps_fp32(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 0.97, "bf16-weights": 0.95}))  # 1.05x: noise
    assert P.decide(embedded()).mode == "fp32"


def test_autocast_is_picked_when_it_is_the_fastest(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 0.5, "bf16-weights": 0.7}))
    decision = P.decide(embedded())
    assert decision.mode == "bf16-autocast" and decision.autocast_dtype == torch.bfloat16
    assert decision.weights_dtype == torch.float32


def test_full_fine_tuning_never_trains_bf16_weights(monkeypatch):
    calls = []
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 0.9, "bf16-weights": 0.3}, calls))
    decision = P.decide(embedded().replace(method="full"))
    assert "bf16-weights" not in calls[0] and decision.mode == "bf16-autocast"


def test_the_measurement_is_cached_per_machine(monkeypatch, cache):
    calls = []
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 0.8, "bf16-weights": 0.6}, calls))
    first = P.decide(embedded())
    second = P.decide(embedded())
    assert len(calls) == 1 and first == second and cache.exists()
    assert hardware.cpu_model_name() in cache.read_text()
    monkeypatch.setattr(hardware, "cpu_model_name", lambda: "Another CPU")  # another machine: measured anew
    P.decide(embedded())
    assert len(calls) == 2


def test_explicit_precisions_are_honoured(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-autocast": 1.3, "bf16-weights": 1.2}))  # bf16 slower here
    assert P.decide(embedded().replace(precision="fp32")).mode == "fp32"
    bf16 = P.decide(embedded().replace(precision="bf16"))
    assert bf16.mode == "bf16-weights" and "as set" in bf16.reason  # the faster bf16 way, though fp32 is faster


def test_explicit_bf16_refused_only_where_the_cpu_measures_unable(monkeypatch):
    monkeypatch.setattr(probes, "time_modes", clock({"bf16": 30.0}))  # a CPU without bf16 kernels: 30x slower
    problems = checks.hardware_problems(RunConfig(precision="bf16"))
    assert any("30x slower than fp32" in p and hardware.cpu_model_name() in p for p in problems)
    assert all(HANGUL.search(localize(p, "ko")) for p in problems)
    probes.generic_speed.cache_clear()
    monkeypatch.setattr(probes, "time_modes", clock({"bf16": 0.7}))  # slower than fp32 but usable: allowed
    assert not [p for p in checks.hardware_problems(RunConfig(precision="bf16")) if "bf16" in p]


def test_tiny_models_stay_fp32_without_measuring(monkeypatch):
    calls = []
    monkeypatch.setattr(probes, "time_modes", clock({"bf16-weights": 0.1}, calls))
    tiny = dict(EMBEDDED_CONFIG, hidden_size=64, intermediate_size=128, num_hidden_layers=2, vocab_size=300)
    decision = P.decide(RunConfig(), model=type("M", (), {"config": tiny})())
    assert decision.mode == "fp32" and not calls


def test_the_real_probe_on_this_machine():
    """No mock: the probe runs every mode on the embedded model's layer shapes, quickly, and decides by it."""
    probes.PROBE_FLOPS = REAL_PROBE_FLOPS  # (restored by the fixture's monkeypatch)
    shape = shape_of(EMBEDDED_CONFIG)
    start = time.perf_counter()
    speed = P.measured_speed(shape, ("bf16-autocast", "bf16-weights", "fp32"))
    seconds = time.perf_counter() - start
    print(f"\n{hardware.cpu_model_name()} ({torch.get_num_threads()} threads, bf16 flags "
          f"{hardware.cpu_bf16_flags()}): {speed} in {seconds:.2f} s")
    assert speed["fp32"] == 1.0 and set(speed) == {"fp32", "bf16-autocast", "bf16-weights"}
    assert all(0.005 < v < 200 for v in speed.values())
    assert seconds < 30  # ~1 s on 2 idle cores; ~6 s with 10 busy processes on them (threads tuned, calls shrunk)
    decision = P.choose(speed, ("fp32", "bf16-autocast", "bf16-weights"))
    best = max(speed, key=speed.get)
    assert decision.mode == (best if speed[best] >= P.MARGIN else "fp32")
