"""Timing this machine: how fast each precision runs a model's layers, and how fast its matmuls are.

Two measurements, both cheap and both shielded from a load that comes and goes:

- `mode_speeds` times the model's own layer shapes (every linear of one decoder
  layer, forward and backward, with LoRA) in each way of training (see
  core/plan/precision.py, which caches the result on disk and decides by it),
  interleaved and repeated (median), so a load that moves while measuring hits
  every way alike; ~0.5-3 s. `generic_speed` is the same comparison on one
  plain matmul, for "can this CPU run bf16 at all" (20-100 ms).
- `matmul_flops` is the device's matmul FLOP/s in its training precision, the
  speed the time estimate before Start divides by (core/plan/speed.py). It is the
  best of many one-matmul samples spread over ~0.1 s (best-of-N: interference
  only ever makes a sample slower, so the fastest is the machine's own speed),
  and is kept for SPEED_TTL_S per process, so the form and the run's Start share
  one figure. Six samples of three matmuls each, taken back to back, used to
  catch a load spike in all six and estimated 33 minutes for a run that took 6.

`time_modes` and `_timed` are the timing boundary the tests replace.
"""
from __future__ import annotations

import functools
import statistics
import time
from collections.abc import Callable
from contextlib import nullcontext

import torch
import torch.nn.functional as F

from core import hardware
from core.plan.model_shape import Shape

ROUNDS = 5
MIN_ROUNDS = 3
PROBE_BUDGET_S = 1.5   # the timed part of the probe, roughly (the first build/warm-up comes on top)
PROBE_FLOPS = 6e9      # work of one probe call (~30 ms on 2 idle cores; ~280 tokens of the embedded model)

SPEED_SIDE = 384        # CPU matmul side: ~0.4-0.7 ms per call, short enough to run between two preemptions
SPEED_CALLS = 1         # matmuls per timed sample (one: a sample that fits in a time slice is an undisturbed one)
SPEED_ROUNDS = 16
SPEED_MIN_ROUNDS = 3    # after these, thread counts far slower than the best are no longer tried
SPEED_KEEP = 1.5        # ... far slower: their best is more than this many times the best
SPEED_BUDGET_S = 0.25   # a busy machine stops after SPEED_MIN_ROUNDS once this much time has passed
SPEED_PAUSE_S = 0.005   # between rounds: a short spike passes, and a thread woken from sleep gets a whole time slice
SPEED_TTL_S = 300       # the machine's load moves: measured again after 5 minutes
_MATMUL: dict[str, tuple[float, float]] = {}  # device -> (when measured, FLOP/s)


def _device() -> str:
    return "cuda" if hardware.device_type() == "cuda" else "cpu"


def _sync(device: str) -> None:
    if device == "cuda":
        torch.cuda.synchronize()


def _timed(run: Callable[[], None], device: str) -> float:
    """Seconds one call of `run` takes on `device` (its queued GPU work included)."""
    _sync(device)
    start = time.perf_counter()
    run()
    _sync(device)
    return time.perf_counter() - start


# -- the matmul speed the time estimate divides by ----------------------------------------------
def matmul_flops(device: str = "cpu") -> float:
    """Measured matmul FLOP/s of this device in its training precision, cached per process for SPEED_TTL_S.

    On CPU each thread count the trainer may pick is tried (busy cores make fewer
    threads faster, see core/hardware.py) and the best is kept; the calling
    thread's own setting is restored.
    """
    cached = _MATMUL.get(device)
    if cached and time.time() - cached[0] < SPEED_TTL_S:
        return cached[1]
    flops = _measure_matmul(device)
    _MATMUL[device] = (time.time(), flops)
    return flops


def _measure_matmul(device: str) -> float:
    """The fastest of up to SPEED_ROUNDS rounds of one sample per thread count, with a pause between rounds."""
    if device == "cuda" and torch.cuda.is_available():
        dtype, n, threads = (torch.bfloat16 if hardware.cuda_bf16() else torch.float16), 4096, [None]
    else:
        device, dtype, n = "cpu", torch.float32, SPEED_SIDE
        threads = hardware._thread_candidates(hardware.cpu_cores())
    a = torch.randn(n, n, device=device, dtype=dtype)
    b = torch.randn(n, n, device=device, dtype=dtype)

    def run() -> None:
        for _ in range(SPEED_CALLS):
            a @ b
    before = torch.get_num_threads()
    best = {count: float("inf") for count in threads}
    began = time.perf_counter()
    try:
        for round_ in range(SPEED_ROUNDS):
            for count in best:
                if count:
                    torch.set_num_threads(count)
                a @ b  # wake the thread pool at this size (and, the first time, warm up)
                best[count] = min(best[count], _timed(run, device) / SPEED_CALLS)
            if round_ + 1 >= SPEED_MIN_ROUNDS:
                if time.perf_counter() - began > SPEED_BUDGET_S:
                    break
                # a thread count that waits on descheduled threads costs ~10 ms a call: time the fast ones more often
                best = {count: t for count, t in best.items() if t <= min(best.values()) * SPEED_KEEP}
            time.sleep(SPEED_PAUSE_S)
    finally:
        torch.set_num_threads(before)
    return 2 * n ** 3 / min(best.values())


# -- the precision probe --------------------------------------------------------------------------
def _workload(mode: str, shape: Shape, tokens: int, device: str, lora: bool, r: int = 8) -> Callable[[], None]:
    """One decoder layer's linears, forward and backward, trained the way `mode` trains them."""
    g = torch.Generator().manual_seed(0)
    base_dtype = {"bf16-weights": torch.bfloat16, "fp16": torch.float16}.get(mode, torch.float32)
    if mode == "fp16" and device == "cpu":
        base_dtype = torch.float32  # fp16 on CPU: autocast over fp32 weights
    act = base_dtype if device == "cuda" else torch.float32  # CPU: the residual stream stays fp32
    layers = []
    for n_in, n_out in shape.linear_shapes():
        w = (torch.randn(n_out, n_in, generator=g) * n_in ** -0.5).to(device=device, dtype=base_dtype)
        a = (torch.randn(r, n_in, generator=g) * 0.01).to(device).requires_grad_(lora)
        b = torch.zeros(n_out, r, device=device).requires_grad_(lora)
        x = torch.randn(tokens, n_in, generator=g).to(device=device, dtype=act).requires_grad_(True)
        layers.append((w, a, b, x))
    cast = {"bf16-autocast": torch.bfloat16, "bf16-weights": torch.bfloat16, "fp16": torch.float16}.get(mode)
    context = (lambda: torch.autocast(device, dtype=cast)) if cast else nullcontext

    def run() -> None:
        with context():
            total = None
            for w, a, b, x in layers:
                y = F.linear(x, w)
                if lora:  # fp32 adapters (the engine's fast path casts the input to them)
                    y = y + F.linear(F.linear(x.to(a.dtype) if not cast else x, a), b).to(y.dtype)
                y = F.silu(y)
                part = y.float().square().mean()
                total = part if total is None else total + part
        total.backward()
        for _, a, b, x in layers:
            x.grad = a.grad = b.grad = None
    return run


def time_modes(workloads: dict[str, Callable[[], None]], rounds: int = ROUNDS,
               device: str = "cpu", budget_s: float | None = None) -> dict[str, list[float]]:
    """Seconds per call of each (warmed-up) workload, over interleaved rounds: the timing boundary.

    With `budget_s`, stops after MIN_ROUNDS once that much time has passed (a busy machine).
    """
    times: dict[str, list[float]] = {mode: [] for mode in workloads}
    began = time.perf_counter()
    for round_ in range(rounds):
        for mode, run in workloads.items():
            times[mode].append(_timed(run, device))
        if budget_s is not None and round_ + 1 >= MIN_ROUNDS and time.perf_counter() - began > budget_s:
            break
    return times


def _probe_tokens(shape: Shape) -> int:
    """Tokens per probe call: a micro-batch's worth (512), fewer for big layers so the probe stays short."""
    per_token = 6 * shape.layer_linear_params
    return int(max(16, min(512, PROBE_FLOPS / per_token)))


def _build(modes, shape: Shape, tokens: int, device: str, lora: bool) -> dict[str, Callable[[], None]]:
    """The workloads of the modes this device can run, each run once (its warm-up and its check)."""
    workloads = {}
    for mode in modes:
        try:
            run = _workload(mode, shape, tokens, device, lora)
            start = time.perf_counter()
            run()
            run.seconds = time.perf_counter() - start
            workloads[mode] = run
        except (RuntimeError, TypeError, NotImplementedError):
            continue  # this device has no kernel for it: not a candidate
    return workloads


def mode_speeds(shape: Shape, modes: tuple[str, ...], lora: bool = True) -> dict[str, float]:
    """Speed of each mode relative to fp32 on this device (median of interleaved rounds); fp32 is 1.0.

    A mode that fails to run (no kernel for it here) is left out. On a busy
    machine the calls are shrunk (fewer tokens) so the whole probe stays near
    PROBE_BUDGET_S: ratios of the same shapes are what is compared.
    """
    device = _device()
    tokens = _probe_tokens(shape)
    order = ("fp32",) + tuple(m for m in modes if m != "fp32")
    workloads = _build(order, shape, tokens, device, lora)
    first = getattr(workloads.get("fp32"), "seconds", 0.0)
    per_call = PROBE_BUDGET_S / (len(workloads) * (ROUNDS + 1))
    if first > 2 * per_call and tokens > 16:  # busy or slow: smaller calls, same shapes
        workloads = _build(order, shape, max(16, int(tokens * per_call / first)), device, lora)
    times = time_modes(workloads, device=device, budget_s=PROBE_BUDGET_S)
    medians = {mode: statistics.median(t) for mode, t in times.items() if t}
    return {mode: medians["fp32"] / t for mode, t in medians.items() if t > 0}


@functools.lru_cache(maxsize=4)
def generic_speed(precision: str) -> float | None:
    """A matmul in `precision` (bf16/fp16) relative to fp32 on this device (None when it cannot run): 20-100 ms."""
    device = _device()
    dtype = {"bf16": torch.bfloat16, "fp16": torch.float16}[precision]
    g = torch.Generator().manual_seed(0)
    a32, b32 = torch.randn(256, 576, generator=g).to(device), torch.randn(576, 1536, generator=g).to(device)
    try:
        a16, b16 = a32.to(dtype), b32.to(dtype)
        times = time_modes({"fp32": lambda: a32 @ b32, precision: lambda: a16 @ b16}, rounds=7, device=device)
    except (RuntimeError, TypeError, NotImplementedError):
        return None
    return statistics.median(times["fp32"]) / statistics.median(times[precision])
