"""The checks of a RunConfig that depend on this machine, before anything is loaded.

`check(config)` is what Start, the CLI and the form ask: the config's own
checks (RunConfig.validate, true on any machine) plus the ones that need the
hardware at hand: a precision this device can't run, bitsandbytes missing.
Each problem names the setting, says what is wrong and what to do.
"""
from __future__ import annotations

import torch

from core import hardware
from core.config import RunConfig
from core.messages import Msg, msg
from core.plan import precision
from core.plan.model_shape import read_model_config
from core.plan.targets import needs_layers, target_problems

# report_to -> (the module it needs, its pip package)
TRACKER_PACKAGES = {"tensorboard": ("tensorboard", "tensorboard"), "wandb": ("wandb", "wandb"),
                    "mlflow": ("mlflow", "mlflow"), "trackio": ("trackio", "trackio")}


def check(config: RunConfig) -> list[Msg]:
    """Every problem that would stop this config from training here; empty when it can start."""
    problems = config.validate()
    # the model's layers are read (config only, meta device) only for a config that is otherwise sound
    targets = [] if problems else layer_problems(config)
    return problems + hardware_problems(config) + tracker_problems(config) + targets


def layer_problems(c: RunConfig) -> list[Msg]:
    """target_modules against the model's real layers (core/plan/targets.py), from its config alone.
    A config that can't be read here (offline, not cached) is left to the load, which says why."""
    if not needs_layers(c):
        return []
    try:
        model_config = read_model_config(c.model)
    except Exception:  # offline, gated, no such model: not this check's to say
        return []
    return target_problems(c, model_config)


def tracker_problems(c: RunConfig) -> list[Msg]:
    """The tracker `report_to` names must be installed here (core/train/trackers.py), with the pip command."""
    out = []
    for name in (n.strip() for n in c.report_to.split(",")):
        module, package = TRACKER_PACKAGES.get(name, (None, None))
        if module and not hardware.has_package(module):
            out.append(msg("plan.needs_tracker", tracker=name, pip=f"pip install {package}"))
    return out


def hardware_problems(c: RunConfig) -> list[Msg]:
    out = []
    device = hardware.device_type()
    # an explicit bf16/fp16 is refused only where this device measures unable to train in it
    if (problem := precision.capability(c.precision)) is not None:
        out.append(problem)
    needs_bnb = c.effective_quantization != "none" or "8bit" in c.optimizer or c.optimizer.startswith("paged")
    if needs_bnb and not hardware.has_package("bitsandbytes"):
        out.append(msg("plan.needs_bitsandbytes"))
    return out + distributed_problems(c, device)


def distributed_problems(c: RunConfig, device: str) -> list[Msg]:
    """Several processes: enough GPUs on this machine, a strategy this device can run, deepspeed installed."""
    if c.num_processes == 1 and c.num_machines == 1:
        return []
    out = []
    gpus = torch.cuda.device_count() if device == "cuda" else 0
    if device == "cuda" and c.num_processes > gpus:
        out.append(msg("plan.more_processes_than_gpus", processes=c.num_processes, gpus=gpus))
    if device != "cuda" and c.distributed != "ddp":
        out.append(msg("plan.strategy_needs_gpu", strategy=c.distributed))
    if device == "mps":
        out.append(msg("plan.no_multiprocess_mps"))
    if c.distributed == "deepspeed" and not hardware.has_package("deepspeed"):
        out.append(msg("plan.needs_deepspeed"))
    return out
