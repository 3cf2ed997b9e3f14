"""Plain-language checks of a RunConfig, before anything is loaded.

Each problem names the setting, says what is wrong and what to do. Checks that
depend on the hardware (bf16 on a CPU, fp16 on a CPU, bitsandbytes missing)
live here too, so a setting that cannot work is refused before Start.
"""
from __future__ import annotations

import re
from typing import TYPE_CHECKING

from core import hardware

if TYPE_CHECKING:
    from core.config import RunConfig

RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")


def problems(c: "RunConfig") -> list[str]:
    found: list[str] = []
    found += _choice_problems(c)
    found += _range_problems(c)
    found += _combination_problems(c)
    found += _hardware_problems(c)
    return found


def _choice_problems(c: "RunConfig") -> list[str]:
    out = []
    for name in c.field_names():
        choices = c.field_info(name)["choices"]
        value = getattr(c, name)
        if choices and value not in choices:
            out.append(f"'{name}' is '{value}', but it must be one of: {', '.join(choices)}.")
    return out


def _range_problems(c: "RunConfig") -> list[str]:
    out = []
    checks = [
        (not c.model.strip(), "Pick a model: the embedded default, a Hub id or a local folder."),
        (not c.dataset.strip(), "Pick a dataset: builtin:demo, a Hub id or a file."),
        (c.lora_r < 1 or c.lora_r > 1024, f"LoRA rank must be between 1 and 1024 (it is {c.lora_r}); 8-64 is typical."),
        (c.lora_alpha < 1, f"LoRA alpha must be at least 1 (it is {c.lora_alpha}); 2 x rank is a good start."),
        (not 0 <= c.lora_dropout < 1, f"LoRA dropout must be from 0 up to (not including) 1 (it is {c.lora_dropout})."),
        (not 0 <= c.loraplus_ratio <= 64, f"LoRA+ ratio must be from 0 (off) to 64 (it is {c.loraplus_ratio}); 4-16 is typical."),
        (c.max_length < 16 or c.max_length > 131072, f"Max length must be between 16 and 131072 tokens (it is {c.max_length})."),
        (not 0 <= c.validation_share < 1, f"Validation share must be from 0 up to (not including) 1 (it is {c.validation_share}); 0.1 is typical."),
        (not 0 < c.subset_share <= 1, f"Subset share must be above 0 and at most 1 (it is {c.subset_share})."),
        (c.epochs <= 0 and c.max_steps <= 0, "Set epochs above 0, or max steps above 0."),
        (c.max_steps < 0, f"Max steps can't be negative (it is {c.max_steps}); 0 means 'use epochs'."),
        (c.batch_size < 1, f"Batch size must be at least 1 (it is {c.batch_size})."),
        (c.grad_accum < 1, f"Gradient accumulation must be at least 1 (it is {c.grad_accum})."),
        (not 0 < c.learning_rate < 1, f"Learning rate must be above 0 and below 1 (it is {c.learning_rate}); try 2e-4 for LoRA."),
        (not 0 <= c.warmup_ratio < 1, f"Warmup ratio must be from 0 up to (not including) 1 (it is {c.warmup_ratio})."),
        (c.weight_decay < 0, f"Weight decay can't be negative (it is {c.weight_decay})."),
        (c.max_grad_norm < 0, f"Max grad norm can't be negative (it is {c.max_grad_norm}); 0 turns clipping off."),
        (c.logging_steps < 1, f"Logging steps must be at least 1 (it is {c.logging_steps})."),
        (c.eval_steps < 0 or c.save_steps < 0, "Eval steps and save steps can't be negative (0 means automatic)."),
        (c.min_chars < 0 or c.max_chars < 0, "Length filters can't be negative (0 means no limit)."),
        (bool(c.run_name) and not RUN_NAME_PATTERN.match(c.run_name),
         f"Run name '{c.run_name}' may only hold letters, digits, '-', '_' and '.', up to 80 characters, with no folders."),
    ]
    for failed, message in checks:
        if failed:
            out.append(message)
    return out


def _combination_problems(c: "RunConfig") -> list[str]:
    out = []
    if c.method == "full" and c.quantization != "none":
        out.append("Full fine-tuning can't train 4-bit or 8-bit weights. Use method 'qlora' (or 'lora'), or set quantization to 'none'.")
    if c.method == "qlora" and c.quantization == "8bit":
        out.append("QLoRA means a 4-bit base model. Set quantization to '4bit', or use method 'lora' with 8-bit.")
    return out


def _hardware_problems(c: "RunConfig") -> list[str]:
    out = []
    device = hardware.device_type()
    if device == "cpu" and c.precision in ("bf16", "fp16"):
        out.append(f"Precision '{c.precision}' on this CPU would train many times slower than fp32 (or fail). Set precision to 'auto' or 'fp32'.")
    if device == "cuda" and c.precision == "bf16" and not hardware.cuda_bf16():
        out.append("This GPU has no bf16 support. Set precision to 'auto' or 'fp16'.")
    needs_bnb = c.effective_quantization != "none" or "8bit" in c.optimizer or c.optimizer.startswith("paged")
    if needs_bnb and not hardware.has_package("bitsandbytes"):
        out.append("4-bit/8-bit loading and 8-bit/paged optimizers need the 'bitsandbytes' package: pip install bitsandbytes, or choose quantization 'none' and optimizer 'adamw_torch'.")
    return out
