"""The checks of a RunConfig that depend on this machine, before anything is loaded.

`check(config)` is what Start, the CLI and the form ask: the config's own
checks (RunConfig.validate, true on any machine) plus the ones that need the
hardware at hand: a precision this device can't run, bitsandbytes missing.
Each problem names the setting, says what is wrong and what to do.
"""
from __future__ import annotations

from core import hardware
from core.config import RunConfig
from core.messages import Msg, msg


def check(config: RunConfig) -> list[Msg]:
    """Every problem that would stop this config from training here; empty when it can start."""
    return config.validate() + hardware_problems(config)


def hardware_problems(c: RunConfig) -> list[Msg]:
    out = []
    device = hardware.device_type()
    if device == "cpu" and c.precision in ("bf16", "fp16"):
        out.append(msg("plan.precision_on_cpu", precision=c.precision))
    if device == "cuda" and c.precision == "bf16" and not hardware.cuda_bf16():
        out.append(msg("plan.no_bf16"))
    needs_bnb = c.effective_quantization != "none" or "8bit" in c.optimizer or c.optimizer.startswith("paged")
    if needs_bnb and not hardware.has_package("bitsandbytes"):
        out.append(msg("plan.needs_bitsandbytes"))
    return out
