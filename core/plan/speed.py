"""Time per epoch, estimated before Start: FLOPs per token over the device's measured speed.

Time per epoch = tokens x FLOPs per token / (device FLOP/s x efficiency). The
device's matmul speed is measured by core/plan/probe.py (best of several short
rounds, ~0.1 s, kept per process for 5 minutes); the efficiencies were fitted
on TuneLab's engine (core/train/trainer.py). On a CPU the speed is
measured in fp32, so a run that trains in bf16 (core/plan/precision.py measured it
faster here) is scaled by that measured speed-up; a GPU's speed is measured in its
half precision already. core/plan/memory.py shows the result next to the memory
estimate, core/plan/cost.py turns it into the whole run's time and cost.
"""
from __future__ import annotations

from core import hardware
from core.config import RunConfig
from core.plan import precision as precisions
from core.plan import probe as probes
from core.plan.model_shape import Shape

# Share of the measured matmul speed a training step reaches on a CPU: bench.throughput on the idle 2-core
# Xeon (family 6 model 207) gave 242 tok/s for the engine against a 653 tok/s fp32 matmul limit, i.e. 37%.
CPU_EFFICIENCY = 0.37
GPU_EFFICIENCY = 0.35            # same, GPU (small LoRA batches rarely beat ~35-40% of peak)
ANSWER_SHARE = 0.5               # share of tokens trained on when answers-only and the data is not known yet


def flops_per_token(config: RunConfig, s: Shape, share: float, seq: int) -> float:
    body = s.layers * s.layer_linear_params
    head = s.vocab * s.hidden
    attention = s.layers * 4 * seq / 2 * s.q  # causal: half of QK^T and AV, per token
    forward = 2 * body + 2 * head * share + 2 * attention
    backward = 2 * body + 2 * head * share + 4 * attention  # gradients of the activations
    if not config.uses_lora:
        backward += 2 * body + 2 * head * share          # and of the weights
    recompute = 2 * body + 2 * attention if config.gradient_checkpointing else 0
    return forward + backward + recompute


def device_flops(device: str = "cpu") -> float:
    """This device's measured matmul FLOP/s in its training precision: core/plan/probe.py's `matmul_flops`
    (the best of several short rounds, kept per process for 5 minutes)."""
    return probes.matmul_flops(device)


def seconds_per_epoch(config: RunConfig, s: Shape, device: str, n_tokens: int | None,
                       stats: dict | None) -> float | None:
    if not n_tokens or device != hardware.device_type():
        return None
    share = float(stats.get("trained_share", ANSWER_SHARE)) if stats else (1.0 if config.train_on == "all" else ANSWER_SHARE)
    seq = int(stats.get("length_p50", config.max_length // 2)) if stats else config.max_length // 2
    efficiency = CPU_EFFICIENCY if device == "cpu" else GPU_EFFICIENCY
    slow = 1.0
    if config.effective_quantization != "none":
        slow = 1.1 if device == "cpu" else 1.3  # dequantising weights on every matmul (measured ~free on CPU)
    speed = device_flops(device) * efficiency * _speedup(config, s, device)
    return n_tokens * flops_per_token(config, s, share, seq) * slow / speed


def _speedup(config: RunConfig, s: Shape, device: str) -> float:
    """The run's precision against the precision `device_flops` measured in: on CPU that is fp32, and a run
    the precision probe found faster in bf16 trains at that measured speed-up (1.0 when not measured yet)."""
    if device != "cpu":
        return 1.0
    speed = precisions.planned_speed(config, s)
    return speed if speed and speed > 0 else 1.0
