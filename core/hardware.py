"""What this machine can do: device, fast dtypes, memory, CPU threads.

Every "auto" choice in a run (attention kernel, threads, optional GPU kernels)
is made here, from the hardware. Training precision is measured, not guessed
from the CPU's name (core/plan/precision.py probes fp32 against bf16 on the
model's own layer shapes); `resolve_precision` here is only the choice that
needs no measurement (loading a model to chat with, merging).

CPU threads are measured, not assumed: on a machine whose cores are busy with
other work, an OpenMP op split over every core waits for the slowest
(descheduled) thread at each of its barriers, and a small element-wise op can
take 10-100x longer than on one thread. `tune_cpu_threads` times a short
training-shaped workload with each candidate thread count and keeps the
fastest; the trainer repeats it now and then, because the load changes.
"""
from __future__ import annotations

import ctypes
import functools
import gc
import importlib.util
import os
import platform
import sys
import time
from collections.abc import Callable

import psutil
import torch

from core.messages import msg


def device_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_name() -> str:
    """The GPU's name, or "CPU (N cores)" (a Msg, so the planner's line names it in the page's language)."""
    if device_type() == "cuda":
        return torch.cuda.get_device_name(0)
    return msg("hardware.cpu", cores=os.cpu_count())


def total_memory_bytes() -> int:
    """Memory a run may use on its device: GPU memory, or the machine's RAM."""
    if device_type() == "cuda":
        return torch.cuda.get_device_properties(0).total_memory
    return psutil.virtual_memory().total


def cuda_bf16() -> bool:
    return device_type() == "cuda" and torch.cuda.is_bf16_supported()


def resolve_precision(requested: str) -> str:
    """Turn 'auto' into fp32/fp16/bf16 without measuring (training measures: core.plan.precision)."""
    if requested != "auto":
        return requested
    if device_type() == "cuda":
        return "bf16" if cuda_bf16() else "fp16"
    return "fp32"  # the CPU default until a probe says otherwise: bf16 is 5x faster on some CPUs, 600x slower on others


@functools.lru_cache(maxsize=1)
def cpu_model_name() -> str:
    """The CPU's model name as the kernel reports it (lscpu's "Model name"), or the platform's guess."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.lower().startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or platform.machine() or "unknown CPU"


@functools.lru_cache(maxsize=1)
def cpu_flags() -> frozenset[str]:
    """The CPU's feature flags (/proc/cpuinfo), empty where the kernel doesn't list them."""
    try:
        for line in open("/proc/cpuinfo", encoding="utf-8", errors="replace"):
            if line.startswith("flags"):
                return frozenset(line.split(":", 1)[1].split())
    except OSError:
        pass
    return frozenset()


def cpu_bf16_flags() -> list[str]:
    """The CPU's bf16 instruction sets (avx512_bf16, amx_bf16): a hint only; the probe decides."""
    return sorted(f for f in cpu_flags() if "bf16" in f)


def torch_dtype(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[resolve_precision(precision)]


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.lru_cache(maxsize=1)
def attention_implementation() -> str:
    """flash_attention_2 on a GPU where the package is installed, else PyTorch SDPA (its CPU flash kernel on CPU)."""
    if device_type() == "cuda" and has_package("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def liger_available() -> bool:
    """Liger's fused Triton kernels (RMSNorm, RoPE, SwiGLU): GPU only, when installed."""
    return device_type() == "cuda" and has_package("liger_kernel") and has_package("triton")


def compile_pays() -> bool:
    """torch.compile: on CPU it costs minutes of compiling on few cores for a few % at best
    (shapes change every packed step), so only a CUDA GPU gets it, and only when asked
    (TUNELAB_COMPILE=1) until it has been measured on one."""
    return device_type() == "cuda" and os.environ.get("TUNELAB_COMPILE", "0") == "1"


def cpu_cores() -> int:
    """Physical cores this process may run on (affinity and cgroup limits respected)."""
    try:
        allowed = len(os.sched_getaffinity(0))
    except (AttributeError, OSError):
        allowed = os.cpu_count() or 1
    physical = psutil.cpu_count(logical=False) or allowed
    quota = _cgroup_cpu_quota()
    return max(1, min(allowed, physical, quota or allowed))


def _cgroup_cpu_quota() -> int | None:
    try:
        quota, period = open("/sys/fs/cgroup/cpu.max").read().split()[:2]
        return None if quota == "max" else max(1, int(int(quota) / int(period)))
    except (OSError, ValueError):
        return None


def set_cpu_threads() -> None:
    """Use every physical core for intra-op work (torch defaults can leave some idle).

    Called when a job starts; the trainer then measures what really runs
    fastest (`tune_cpu_threads`) and may lower it when the cores are busy.
    """
    if device_type() == "cpu":
        torch.set_num_threads(cpu_cores())


def _thread_candidates(cores: int) -> list[int]:
    return sorted({1, max(1, cores // 2), cores})


def _workload(size: int = 128, hidden: int = 576) -> Callable[[], None]:
    """A few ms of the ops a transformer step is made of: matmuls and element-wise passes."""
    g = torch.Generator().manual_seed(0)
    x = torch.randn(size, hidden, generator=g)
    w = torch.randn(hidden, hidden * 8 // 3, generator=g)
    w2 = torch.randn(hidden * 8 // 3, hidden, generator=g)

    def run() -> None:
        h = x @ w
        h = torch.nn.functional.silu(h) * h
        y = h @ w2
        y = y * torch.rsqrt(y.pow(2).mean(-1, keepdim=True) + 1e-6) + x
    return run


def tune_cpu_threads(rounds: int = 3) -> int:
    """Time a training-shaped workload with 1 .. all cores and keep the fastest; returns it.

    Costs ~0.1-0.5 s. On the GPU (or with one core) it changes nothing.
    Must run on the thread that trains: OpenMP thread counts are per thread.
    """
    if device_type() != "cpu":
        return torch.get_num_threads()
    cores = cpu_cores()
    candidates = _thread_candidates(cores)
    if len(candidates) == 1:
        torch.set_num_threads(cores)
        return cores
    run = _workload()
    times: dict[int, list[float]] = {n: [] for n in candidates}
    for _ in range(rounds):  # interleaved: the load moves while we measure
        for n in candidates:
            torch.set_num_threads(n)
            run()  # wake the thread pool at this size
            start = time.perf_counter()
            run()
            run()
            times[n].append(time.perf_counter() - start)
    typical = {n: sorted(t)[len(t) // 2] for n, t in times.items()}  # median: what a step will usually see
    choice = min(typical, key=typical.get)
    if typical[cores] <= typical[choice] * 1.1:  # a tie within noise: more cores win on an idle machine
        choice = cores
    torch.set_num_threads(choice)
    return choice


MMAP_THRESHOLD_BYTES = 1 << 20


@functools.lru_cache(maxsize=1)
def return_freed_memory() -> bool:
    """CPU (glibc): give big tensors' memory back to the system as soon as they are freed.

    glibc raises its mmap threshold as large blocks are freed (up to 32 MB), so
    after the first step most activations live on the heap, where freed memory
    stays resident and fragments: the process's peak grows ~1.5x over what is
    really in use and never comes back down. A fixed 1 MB threshold maps every
    tensor above 1 MB on its own and unmaps it on free: measured on the embedded
    model, peak resident memory -35% (4.6 -> 3.0 GB at 1024 tokens a step) for
    ~2% more time in page faults. Process-wide and idempotent; a no-op elsewhere.
    """
    if device_type() != "cpu" or not sys.platform.startswith("linux"):
        return False
    try:
        libc = ctypes.CDLL("libc.so.6")
        return bool(libc.mallopt(-3, MMAP_THRESHOLD_BYTES))  # M_MMAP_THRESHOLD
    except (OSError, AttributeError):
        return False


def process_memory_bytes() -> int:
    """Memory this run uses now: peak GPU allocation, or the process's resident memory."""
    if device_type() == "cuda":
        return torch.cuda.max_memory_allocated()
    return psutil.Process().memory_info().rss


def release_memory() -> None:
    """Give freed memory back: Python garbage, CUDA cache, and glibc's heap (which keeps freed pages otherwise)."""
    gc.collect()
    if torch.cuda.is_available():
        torch.cuda.empty_cache()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except (OSError, AttributeError):
        pass  # not glibc (macOS, musl): nothing to trim
