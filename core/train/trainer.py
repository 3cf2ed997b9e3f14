"""TuneLab's training loop: a plain PyTorch loop that does only useful work.

Why not trl's SFTTrainer: at its defaults it turns on bf16 and gradient
checkpointing even on CPUs where bf16 is slower (~600x on some), computes the output
layer over every prompt token, pads batches and logs extra metrics each step
(bench/throughput.py measures the difference). This loop
- packs each micro-batch's examples into one row without padding (position ids
  restart per example) and runs attention per example (causal SDPA on each
  example's slice, or flash-attention's varlen kernel on a GPU), instead of one
  masked attention over the whole row that would do ~L^2 work, mostly masked,
- runs the output head only where a label is trained on (`logits_to_keep`),
- runs LoRA adapters through one autograd function (core/train/fastpath.py): dropout
  masks from 16-bit random draws kept as 1 byte, the layer input kept once
  for q/k/v and gate/up, scales folded into the small matrices,
- trains in the precision measured fastest on this machine (core/plan/precision.py:
  fp32, bf16 autocast, or a bf16 frozen base with fp32 adapters and optimizer state),
- normalises the loss by trained tokens over the whole accumulated step,
- picks its speed settings from the hardware: CPU threads measured against
  the machine's current load (re-measured every minute), fused AdamW, Liger
  kernels / torch.compile on a GPU where installed or asked for,
- keeps per-step extras off the clock: tokens/s counts training time only,
- on CPU, has big tensors unmapped when freed (see hardware.return_freed_memory):
  a third less peak memory, and a peak that the planner can predict,
- checks the stop flag after every micro-batch and checkpoints resumably.

Its parts: the batches and their loss (core/train/batches.py), the optimizer (core/train/optimizers.py),
what a step does as one rank of several or alone (core/train/ranks.py), the fast paths (core/train/fastpath.py).
"""
from __future__ import annotations

import math
import threading
import time
from collections.abc import Callable
from contextlib import nullcontext
from pathlib import Path

import torch
from transformers import get_scheduler

from core import hardware
from core.config import RunConfig
from core.errors import TrainingDiverged
from core.events import EventLog
from core.messages import event_fields, msg
from core.models import is_seq2seq
from core.plan import precision as precisions
from core.train import checkpoints
from core.train.batches import collate, loss_sum, micro_batches, shard, steps_per_epoch, total_steps, trained_count
from core.train.fastpath import apply_gpu_kernels, compile_layers, fast_attention, fast_lora
from core.train.optimizers import make_optimizer
from core.train.ranks import RankSteps
from core.train.seq2seq import seq2seq_loss_sum

RETUNE_THREADS_EVERY_S = 60.0


class Trainer(RankSteps):
    """Trains `model` on tokenized examples, writing events to `log`."""

    def __init__(self, model, tokenizer, train: list[dict], validation: list[dict], config: RunConfig,
                 log: EventLog, run_dir: Path, stop_event: threading.Event,
                 probe: Callable[[int], None] | None = None, precision: precisions.Decision | None = None,
                 accelerator=None):
        """`accelerator` (accelerate's Accelerator) when this is one rank of a multi-process run (core/train/worker.py)."""
        self._join(accelerator)
        # Seeded here, before the job restores a checkpoint's RNG state: seeding in train() threw the restore away.
        torch.manual_seed(config.seed + self.rank)
        self.model = self.raw = model  # `raw`: the model itself; `model`: what trains (accelerate's wrapper)
        self.tokenizer, self.config = tokenizer, config
        self.train_set, self.val_set = train, validation
        self.log, self.run_dir, self.stop_event, self.probe = log, run_dir, stop_event, probe
        self.device = next(model.parameters()).device.type
        self.seq2seq = is_seq2seq(model)
        self.loss_sum = seq2seq_loss_sum if self.seq2seq else loss_sum
        if self.seq2seq:
            self._seq2seq_notices()
        self.kernels = apply_gpu_kernels(model) if self.device == "cuda" else []
        if self.device == "cpu" and hardware.return_freed_memory():
            self.kernels.append("malloc: 1 MB mmap threshold")
        if hardware.compile_pays():
            self.kernels += compile_layers(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.threads = torch.get_num_threads()
        self.total = total_steps(len(train), config, self.world)
        self.per_epoch = steps_per_epoch(len(train), config, self.world)
        self.optimizer = make_optimizer(model, config)
        self.scheduler = get_scheduler(config.scheduler, self.optimizer,
                                       num_warmup_steps=int(config.warmup_ratio * self.total),
                                       num_training_steps=self.total)
        # measured per machine (core/plan/precision.py); the job passes what it loaded the model for
        self.precision = precision or precisions.for_model(model, config)
        cast = self.precision.autocast_dtype
        self.autocast = torch.autocast(self.device, dtype=cast) if cast is not None else nullcontext()
        self.scaler = torch.amp.GradScaler(self.device) if self.precision.mode == "fp16" else None
        self._prepare()
        self.step = self.saved_step = 0
        self.loss_watch = checkpoints.LossWatch(self.total)
        every = config.eval_steps or max(1, self.total // 5)
        self.eval_every, self.save_every = every, config.save_steps or every

    # -- the loop ---------------------------------------------------------
    def train(self) -> str:
        """Runs to the end or until stopped; returns 'finished' or 'stopped'."""
        self.model.train()
        self._tune_threads()
        start_step, window = self.step, _Window()
        start_time = time.time()
        span = self.config.grad_accum * self.world  # one step's micro-batches, over every rank
        # packed attention is for decoders' packed rows; seq2seq batches are padded (seq2seq_collate)
        with fast_attention(self.raw) if not self.seq2seq else nullcontext(), fast_lora(self.raw):
            while self.step < self.total:
                epoch = self.step // self.per_epoch
                batches = micro_batches(self.train_set, self.config, epoch)
                first = (self.step % self.per_epoch) * span
                for at in range(first, len(batches), span):
                    group = batches[at: at + span]
                    if self._optimizer_step(group, window) is None:
                        return "stopped"
                    self._after_step(epoch, window, start_time, start_step)
                    if self.step >= self.total:
                        break
        return "finished"

    def _seq2seq_notices(self) -> None:
        """Settings that have no meaning for an encoder-decoder are said once, not silently dropped."""
        if self.config.packing:
            self.log.append("notice", **event_fields(msg("seq2seq.no_packing")))
        if self.config.train_on == "all":
            self.log.append("notice", **event_fields(msg("seq2seq.train_on_all")))

    def _tune_threads(self) -> None:
        """CPU: the thread count that runs fastest under the machine's current load (see hardware)."""
        if self.device == "cpu":
            self.threads = hardware.tune_cpu_threads()
            self._tuned_at = time.time()

    def _optimizer_step(self, group: list[list[dict]], window: _Window) -> float | None:
        # the trained tokens of the whole step, over every rank: each rank sees the whole group
        n_total = sum(trained_count(e) for b in group for e in b)
        total_loss = 0.0
        mine = shard(group, self.rank, self.world)
        for i, (batch, weight) in enumerate(mine):
            if self._stopping():
                self.optimizer.zero_grad(set_to_none=True)
                return None
            inputs = collate(batch, self.config, self.device)
            with self._sync(i == len(mine) - 1):
                with self.autocast:
                    loss, n = self.loss_sum(self.model, inputs)
                    # no trained token: still one pass, so the ranks' collectives pair up (seq2seq: never, EOS)
                    if n == 0 and self.world > 1 and not self.seq2seq:
                        loss = self.model(**inputs, logits_to_keep=1, use_cache=False).logits.sum() * 0
                # DDP averages the ranks' gradients: x world makes it their sum / the step's tokens
                self._backward(loss * (weight * self.world / max(1, n_total)))
            total_loss += float(loss.detach()) * weight
        window.tokens += sum(len(e["input_ids"]) for b in group for e in b)
        total_loss = self._sum(total_loss)
        if not math.isfinite(total_loss):  # stop before the optimizer spreads it into the weights
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self.step + 1, "NaN" if math.isnan(total_loss) else "inf")
        grad_norm = self._clip_and_step()
        self.step += 1
        window.loss += total_loss / max(1, n_total)
        window.steps += 1
        window.grad_norm = grad_norm
        return total_loss


    def _after_step(self, epoch: int, window: _Window, start_time: float, start_step: int) -> None:
        if self.step % self.config.logging_steps == 0 or self.step == self.total:
            elapsed = time.time() - start_time
            done = self.step - start_step
            self.log.append("log", step=self.step, total_steps=self.total,
                            epoch=round(self.step / self.per_epoch, 3),
                            loss=round(window.loss / max(1, window.steps), 5),
                            lr=self.scheduler.get_last_lr()[0], grad_norm=round(window.grad_norm, 4),
                            tokens_per_sec=round(window.tokens / max(1e-9, time.time() - window.since), 1),
                            memory_mb=round(hardware.process_memory_bytes() / 2**20),
                            elapsed=round(elapsed, 1),
                            eta=round(elapsed / done * (self.total - self.step), 1) if done else None)
            if self.loss_watch.check(self.step, window.loss / max(1, window.steps), self.log) \
                    and self.config.stop_on_collapse:
                self.log.append("notice", **event_fields(msg("train.stopped_on_collapse", step=self.step)))
                self.stop_event.set()  # ends like Stop: a checkpoint at this step, resumable
            window.reset()
        paused = time.time()
        if self.step % self.eval_every == 0 or self.step == self.total:
            self.evaluate()
            if self.probe and self.main:
                self.probe(self.step)
            self._wait()
            self.model.train()
        if self.step % self.save_every == 0 and self.step < self.total:
            self.save_checkpoint()
        if self.device == "cpu" and time.time() - getattr(self, "_tuned_at", 0.0) > RETUNE_THREADS_EVERY_S:
            self._tune_threads()
        window.since += time.time() - paused  # tokens/s is training speed: evals, probes, saves are off the clock

    # -- evaluation -------------------------------------------------------
    @torch.no_grad()
    def evaluate(self) -> float | None:
        if not self.val_set:
            return None
        self.model.eval()
        # DDP: every rank holds the whole model, so each evaluates its share with no collective;
        # FSDP/DeepSpeed: through the wrapper (shard() keeps the ranks' passes paired)
        model = self.raw if self.acc is None or self.config.distributed == "ddp" else self.model
        size = self.config.batch_size
        chunks = [self.val_set[j: j + size] for j in range(0, len(self.val_set), size)]
        total, count = 0.0, 0.0
        for batch, weight in shard(chunks, self.rank, self.world):
            inputs = collate(batch, self.config, self.device)
            with self.autocast:
                loss, n = self.loss_sum(model, inputs)
            total, count = total + float(loss) * weight, count + n * weight
        val_loss = self._sum(total) / max(1, self._sum(count))
        self.log.append("eval", step=self.step, val_loss=round(val_loss, 5))
        self.loss_watch.val_losses.append(val_loss)
        self.model.train()
        return val_loss

    # -- checkpoints ------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Rank 0 writes it (with DDP every rank holds the same weights and optimizer state); the others wait."""
        final = self.run_dir / "checkpoints" / f"step-{self.step:06d}"
        if self.acc and self.config.distributed != "ddp":
            return final  # FSDP/DeepSpeed shards are not gathered mid-run yet: no checkpoint (a notice says so)
        if self.main:
            state = {"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                     "scaler": self.scaler.state_dict() if self.scaler else None}
            final = checkpoints.save_checkpoint(self.run_dir, self.step, self.total, self.raw, self.config, state)
            self.log.append("checkpoint", step=self.step, path=str(final.relative_to(self.run_dir)))
        self.saved_step = self.step
        self._wait()
        return final

    def load_checkpoint(self, path: Path) -> None:
        self.step, state = checkpoints.load_checkpoint(path, self.raw, self.config)
        if self.rank:  # the checkpoint holds rank 0's RNG state: the others draw their own dropout masks
            torch.manual_seed(self.config.seed + self.rank + 7919 * self.step)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])


class _Window:
    """Loss and throughput accumulated since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.steps, self.tokens, self.grad_norm, self.since = 0.0, 0, 0, 0.0, time.time()
