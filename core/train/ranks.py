"""What a training step does differently as one rank of several (accelerate) or as the only process.

With an Accelerator (core/train/worker.py makes one per rank) the model and optimizer are prepared by
accelerate (DDP, FSDP or DeepSpeed wrap the model; accelerate's own scaler handles fp16), gradients are
all-reduced on a step's last micro-batch only, the Stop flag and the loss are summed over the ranks so all
leave at the same micro-batch, and rank 0 saves while the others wait. Alone, the same calls are plain
PyTorch (with torch's GradScaler for fp16).

`RankSteps` is a part of core.train.trainer.Trainer; it reads the trainer's `acc`, `world`, `stop_event`,
`model`, `raw`, `optimizer`, `scheduler`, `scaler`, `params`, `config` and `step`.
"""
from __future__ import annotations

import math
from contextlib import nullcontext

import torch

from core.errors import TrainingDiverged


class RankSteps:
    """The trainer's backward, clipping, optimizer step, stop check, sums and barriers, over one or several ranks."""

    def _join(self, accelerator) -> None:
        """This process's place among the ranks: accelerate's Accelerator, or None when it trains alone."""
        self.acc = accelerator
        self.rank, self.world = (accelerator.process_index, accelerator.num_processes) if accelerator else (0, 1)
        self.main = self.rank == 0

    def _prepare(self) -> None:
        """DDP/FSDP/DeepSpeed wrap the model; accelerate's own scaler handles fp16."""
        if self.acc:
            self.model, self.optimizer = self.acc.prepare(self.raw, self.optimizer)
            self.params = [p for p in self.model.parameters() if p.requires_grad]
            self.scaler = None

    def _stopping(self) -> bool:
        """The stop flag; with several ranks, set when any rank saw it, so all leave at the same micro-batch."""
        stop = self.stop_event.is_set()
        if self.world > 1:
            stop = self._sum(1.0 if stop else 0.0) > 0
        return stop

    def _sum(self, value: float) -> float:
        """`value` summed over the ranks (itself with one process)."""
        if self.world == 1:
            return value
        return float(self.acc.reduce(torch.tensor([float(value)], device=self.acc.device), "sum").item())

    def _sync(self, last: bool):
        """Gradients are all-reduced on the step's last micro-batch only (accelerate's no_sync before it)."""
        return self.acc.no_sync(self.model) if self.acc and not last else nullcontext()

    def _backward(self, loss: torch.Tensor) -> None:
        if self.acc:
            self.acc.backward(loss)
        elif self.scaler:
            self.scaler.scale(loss).backward()
        else:
            loss.backward()

    def _wait(self) -> None:
        if self.world > 1:
            self.acc.wait_for_everyone()

    def _refuse_non_finite(self, norm) -> None:
        """A NaN/inf gradient stops the run before the optimizer writes it into the weights."""
        value = float(norm) if norm is not None else 0.0
        if not math.isfinite(value):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self.step + 1, "NaN" if math.isnan(value) else "inf")

    def _clip_and_step(self) -> float:
        if self.acc:  # accelerate unscales fp16 gradients, and its optimizer steps the scaler
            norm = self.acc.clip_grad_norm_(self.params, self.config.max_grad_norm or float("inf"))
            if self.acc.scaler is None:  # fp16's scaler skips an overflowing step by itself
                self._refuse_non_finite(norm)
            self.optimizer.step()
            self.scheduler.step()
            self.optimizer.zero_grad(set_to_none=True)
            return float(norm) if norm is not None else 0.0
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm or float("inf"))
        if not self.scaler:  # fp16's scaler skips an overflowing step by itself
            self._refuse_non_finite(norm)
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)
