"""What this machine can do: device, fast dtypes, memory, CPU threads.

Every "auto" choice in a run (precision, compute dtype, attention kernel,
threads) is made here, from the hardware, so a CPU never gets bf16 that it
would run hundreds of times slower than fp32.
"""
from __future__ import annotations

import functools
import importlib.util
import os

import psutil
import torch


def device_type() -> str:
    if torch.cuda.is_available():
        return "cuda"
    if getattr(torch.backends, "mps", None) and torch.backends.mps.is_available():
        return "mps"
    return "cpu"


def device_name() -> str:
    if device_type() == "cuda":
        return torch.cuda.get_device_name(0)
    return f"CPU ({os.cpu_count()} cores)"


def total_memory_bytes() -> int:
    """Memory a run may use on its device: GPU memory, or the machine's RAM."""
    if device_type() == "cuda":
        return torch.cuda.get_device_properties(0).total_memory
    return psutil.virtual_memory().total


def cuda_bf16() -> bool:
    return device_type() == "cuda" and torch.cuda.is_bf16_supported()


def resolve_precision(requested: str) -> str:
    """Turn 'auto' into fp32/fp16/bf16 for this hardware."""
    if requested != "auto":
        return requested
    if device_type() == "cuda":
        return "bf16" if cuda_bf16() else "fp16"
    return "fp32"  # bf16/fp16 matmuls on common CPUs are far slower than fp32


def torch_dtype(precision: str) -> torch.dtype:
    return {"fp32": torch.float32, "fp16": torch.float16, "bf16": torch.bfloat16}[resolve_precision(precision)]


def has_package(name: str) -> bool:
    return importlib.util.find_spec(name) is not None


@functools.lru_cache(maxsize=1)
def attention_implementation() -> str:
    if device_type() == "cuda" and has_package("flash_attn"):
        return "flash_attention_2"
    return "sdpa"


def set_cpu_threads() -> None:
    """Use every physical core for intra-op work (torch defaults can leave some idle)."""
    if device_type() == "cpu":
        cores = psutil.cpu_count(logical=False) or os.cpu_count() or 1
        torch.set_num_threads(max(1, cores))


def process_memory_bytes() -> int:
    """Memory this run uses now: peak GPU allocation, or the process's resident memory."""
    if device_type() == "cuda":
        return torch.cuda.max_memory_allocated()
    return psutil.Process().memory_info().rss
