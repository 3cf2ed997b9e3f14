"""Resumable checkpoints: checkpoints/step-N written atomically, the newest few kept.

A checkpoint holds the trainable weights (the LoRA adapter in peft format, or
all weights for full fine-tuning), the optimizer, scheduler, grad-scaler and
RNG state, and the step. It is written to a temporary folder and renamed, so
a crash or a full disk mid-save leaves the previous checkpoint untouched.
"""
from __future__ import annotations

import array
import hashlib
import json
import os
import shutil
import statistics
from pathlib import Path

import torch
from peft import load_peft_weights, set_peft_model_state_dict
from safetensors.torch import load_file, save_file

from core.config import RunConfig
from core.messages import event_fields, msg

KEEP_CHECKPOINTS = 2


def save_checkpoint(run_dir: Path, step: int, total: int, model, config: RunConfig, training_state: dict) -> Path:
    """Write checkpoints/step-N atomically (temp folder, then rename) and keep the newest few."""
    root = run_dir / "checkpoints"
    final = root / f"step-{step:06d}"
    tmp = root / f".tmp-step-{step:06d}"
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    try:
        save_trainable(model, tmp, config)
        torch.save({**training_state, **rng_state()}, tmp / "training_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": step, "total_steps": total}))
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk: give the space back; the previous one stays
        raise
    shutil.rmtree(final, ignore_errors=True)
    os.replace(tmp, final)
    for old in checkpoint_folders(run_dir)[:-KEEP_CHECKPOINTS]:
        shutil.rmtree(old, ignore_errors=True)
    return final


def checkpoint_folders(run_dir: Path) -> list[Path]:
    """checkpoints/step-N folders, oldest first, ordered by N as a number (step-1000000 after step-999999)."""
    found = []
    for path in (run_dir / "checkpoints").glob("step-*"):
        number = path.name.removeprefix("step-")
        if number.isdigit() and path.is_dir():
            found.append((int(number), path))
    return [path for _, path in sorted(found)]


def resumable_checkpoints(run_dir: Path) -> list[Path]:
    """Checkpoints with their state file, newest first: Resume tries each until one loads."""
    return [p for p in reversed(checkpoint_folders(run_dir)) if (p / "state.json").exists()]


def data_fingerprint(train: list[dict], validation: list[dict]) -> str:
    """A hash of the tokenized rows (ids and labels, in order): it changes with the data file and with
    every setting that shapes the rows (template, max length, filters), and with nothing else."""
    digest = hashlib.sha256()
    for part in (train, validation):
        for example in part:
            digest.update(array.array("q", example["input_ids"]).tobytes())
            digest.update(array.array("q", example["labels"]).tobytes())
        digest.update(b"|")
    return digest.hexdigest()


class LossWatch:
    """Flags a sudden collapse of the training loss (a warning, not a stop).

    A fall by more than 10x that holds for a few logged steps, or a loss near zero while the
    validation loss rises, is far more often a fault (a broken kernel, duplicated
    answers, a learning rate far too high) than learning: users lost 16-hour QLoRA
    runs to such a drop that a bitsandbytes upgrade cured.
    """

    WITHIN = 5          # logged points the fall is measured over
    PERSIST = 3         # the fall must hold for this many logged points in a row
    FACTOR = 10.0       # "an order of magnitude"
    NEAR_ZERO = 0.01

    def __init__(self, total_steps: int):
        self.total = total_steps
        self.recent: list[tuple[int, float]] = []
        self.val_losses: list[float] = []
        self.warned = False

    def _fallen_from(self, step: int) -> float | None:
        """The typical loss before the latest stretch when that whole stretch sits 10x below it, else None."""
        # one batch of short, already-learned answers can score 10x below its neighbours (the built-in
        # demo's mixed English/Korean batches: 1.17 then 0.085); a fault keeps the loss down, so the whole
        # latest stretch must sit an order of magnitude below the median loss before it
        if len(self.recent) <= self.PERSIST or step < max(10, self.total // 20):
            return None
        before = statistics.median(x for _, x in self.recent[:-self.PERSIST])
        latest = max(x for _, x in self.recent[-self.PERSIST:])
        return before if before > 0.1 and latest < before / self.FACTOR else None

    def check(self, step: int, loss: float, log) -> bool:
        """Record one logged loss; writes one warning notice the first time a collapse is seen."""
        self.recent = (self.recent + [(step, loss)])[-(self.WITHIN + self.PERSIST):]
        if self.warned or len(self.recent) < 2:
            return False
        first_step, first_loss = self.recent[0]
        vals = self.val_losses
        overfit = loss < self.NEAR_ZERO and len(vals) >= 2 and vals[-1] > vals[-2]
        before = first_loss if overfit else self._fallen_from(step)
        if before is None:
            return False
        self.warned = True
        log.append("notice", warning=True, **event_fields(msg(
            "train.loss_collapse", before=f"{before:.3f}", after=f"{loss:.4f}", steps=step - first_step, step=step)))
        return True


def load_checkpoint(path: Path, model, config: RunConfig) -> tuple[int, dict]:
    """Loads the trainable weights and RNG; returns (step, the optimizer/scheduler/scaler states)."""
    load_trainable(model, path, config)
    # weights_only: the file holds tensors, numbers, strings and dicts only, so nothing in a checkpoint can run code
    state = torch.load(path / "training_state.pt", weights_only=True)
    restore_rng(state)
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


def rng_state() -> dict:
    """The CPU RNG and, on a GPU machine, every GPU's (dropout masks on CUDA draw from the latter)."""
    return {"rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None}


def restore_rng(state: dict) -> None:
    """Put back what rng_state saved; GPU states only where the same number of GPUs is visible."""
    torch.set_rng_state(state["rng"])
    cuda = state.get("cuda_rng")
    if cuda and torch.cuda.is_available() and len(cuda) == torch.cuda.device_count():
        torch.cuda.set_rng_state_all(cuda)
