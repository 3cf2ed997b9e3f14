"""Resumable checkpoints: checkpoints/step-N written atomically, the newest few kept.

A checkpoint holds the trainable weights (the LoRA adapter in peft format, or
all weights for full fine-tuning), the optimizer, scheduler, grad-scaler and
RNG state, and the step. It is written to a temporary folder and renamed, so
a crash or a full disk mid-save leaves the previous checkpoint untouched.
"""
from __future__ import annotations

import json
import os
import shutil
from pathlib import Path

import torch
from peft import load_peft_weights, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from core.config import RunConfig

KEEP_CHECKPOINTS = 2


def save_checkpoint(run_dir: Path, step: int, total: int, model, config: RunConfig, training_state: dict) -> Path:
    """Write checkpoints/step-N atomically (temp folder, then rename) and keep the newest few."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    save_trainable(model, tmp, config)
    torch.save({**training_state, "rng": torch.get_rng_state()}, tmp / "training_state.pt")
    (tmp / "state.json").write_text(json.dumps({"step": step, "total_steps": total}))
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def load_checkpoint(path: Path, model, config: RunConfig) -> tuple[int, dict]:
    """Loads the trainable weights and RNG; returns (step, the optimizer/scheduler/scaler states)."""
    load_trainable(model, path, config)
    state = torch.load(path / "training_state.pt", weights_only=False)
    torch.set_rng_state(state["rng"])
    return json.loads((path / "state.json").read_text())["step"], state


def save_trainable(model, folder: Path, config: RunConfig) -> None:
    """LoRA: the adapter (peft format). Full: only the weights (safetensors)."""
    if config.uses_lora:
        model.save_pretrained(folder / "adapter")
    else:
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(_untie(state), str(folder / "weights.safetensors"))


def load_trainable(model, folder: Path, config: RunConfig) -> None:
    if config.uses_lora:
        set_peft_model_state_dict(model, load_peft_weights(str(folder / "adapter")))
    else:
        model.load_state_dict(load_file(str(folder / "weights.safetensors")), strict=False)


def _untie(state: dict) -> dict:
    # safetensors refuses tensors that share memory (tied embeddings): keep one copy.
    seen, out = {}, {}
    for k, v in state.items():
        key = (v.data_ptr(), v.shape)
        if key in seen:
            continue
        seen[key] = k
        out[k] = v
    return out
