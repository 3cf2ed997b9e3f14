"""TuneLab's training loop: a plain PyTorch loop that does only useful work.

Why not trl's SFTTrainer: at its defaults it turns on bf16 and gradient
checkpointing even on CPUs where bf16 is ~600x slower, computes the output
layer over every prompt token, pads batches and logs extra metrics each step
(bench/throughput.py measures the difference). This loop
- packs each micro-batch's examples into one row without padding (position ids
  restart per example) and runs attention per example (causal SDPA on each
  example's slice, or flash-attention's varlen kernel on a GPU), instead of one
  masked attention over the whole row that would do ~L^2 work, mostly masked,
- runs the output head only where a label is trained on (`logits_to_keep`),
- runs LoRA adapters through one autograd function (`_LoraDelta`): dropout
  masks from 16-bit random draws kept as 1 byte, the layer input kept once
  for q/k/v and gate/up, scales folded into the small matrices,
- normalises the loss by trained tokens over the whole accumulated step,
- picks its speed settings from the hardware: CPU threads measured against
  the machine's current load (re-measured every minute), fused AdamW, Liger
  kernels / torch.compile on a GPU where installed or asked for,
- keeps per-step extras off the clock: tokens/s counts training time only,
- on CPU, has big tensors unmapped when freed (see hardware.return_freed_memory):
  a third less peak memory, and a peak that the planner can predict,
- checks the stop flag after every micro-batch and checkpoints resumably.
"""
from __future__ import annotations

import json
import math
import os
import random
import shutil
import threading
import time
from contextlib import nullcontext
from pathlib import Path
from typing import Callable

import torch
import torch.nn.functional as F
from transformers import get_scheduler

from core import hardware
from core.config import RunConfig
from core.events import EventLog
from core.tokenize import IGNORE

KEEP_CHECKPOINTS = 2
RETUNE_THREADS_EVERY_S = 60.0
PACKED_ATTENTION = "tunelab_packed_sdpa"
MAX_CUDA_SEGMENTS = 32  # more packed examples than this in a row: one masked SDPA call instead


class StopRequested(Exception):
    pass


def micro_batches(examples: list[dict], config: RunConfig, epoch: int) -> list[list[dict]]:
    """The epoch's micro-batches, in a seeded order that resume can reproduce."""
    order = list(range(len(examples)))
    random.Random(config.seed * 1000 + epoch).shuffle(order)
    size = config.batch_size
    return [[examples[i] for i in order[j: j + size]] for j in range(0, len(order), size)]


def steps_per_epoch(n_examples: int, config: RunConfig) -> int:
    return max(1, math.ceil(math.ceil(n_examples / config.batch_size) / config.grad_accum))


def total_steps(n_examples: int, config: RunConfig) -> int:
    if config.max_steps > 0:
        return config.max_steps
    return max(1, math.ceil(steps_per_epoch(n_examples, config) * config.epochs))


def collate(batch: list[dict], config: RunConfig, device: str) -> dict:
    """Packed (one padding-free row) or padded tensors for one micro-batch.

    Packed rows carry `cu_seq_lens_q/k` (example borders, flash-attention's
    varlen convention) so attention runs per example rather than over the row.
    """
    if config.packing:
        ids, labels, positions, borders = [], [], [], [0]
        for e in batch:
            n = len(e["input_ids"])
            ids += e["input_ids"]
            labels += [IGNORE] + e["labels"][1:]  # no loss across example borders
            positions += range(n)
            borders.append(borders[-1] + n)
        cu = torch.tensor(borders, dtype=torch.int32, device=device)
        cu.example_sizes = [b - a for a, b in zip(borders, borders[1:])]
        longest = max(b - a for a, b in zip(borders, borders[1:]))
        return {"input_ids": torch.tensor([ids], device=device),
                "position_ids": torch.tensor([positions], device=device),
                "labels": torch.tensor([labels], device=device),
                "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}
    width = max(len(e["input_ids"]) for e in batch)
    pad = lambda seq, v: seq + [v] * (width - len(seq))
    return {"input_ids": torch.tensor([pad(e["input_ids"], 0) for e in batch], device=device),
            "attention_mask": torch.tensor([pad([1] * len(e["input_ids"]), 0) for e in batch], device=device),
            "labels": torch.tensor([pad(e["labels"], IGNORE) for e in batch], device=device)}


def loss_sum(model, inputs: dict) -> tuple[torch.Tensor, int]:
    """Sum of token losses and the number of trained tokens, with the head run only where needed."""
    labels = inputs.pop("labels")
    targets = labels[:, 1:]
    keep = targets != IGNORE
    n = int(keep.sum())
    if n == 0:
        return torch.zeros((), device=labels.device, requires_grad=True), 0
    if labels.shape[0] == 1:
        positions = keep[0].nonzero().squeeze(1)  # position t predicts token t+1
        logits = model(**inputs, logits_to_keep=positions, use_cache=False).logits
        # a view, not `[0]`: select's backward would zero-fill and copy a (kept x vocab) tensor
        logits = logits.view(-1, logits.shape[-1])
        loss = F.cross_entropy(logits.float(), targets[0, positions], reduction="sum")
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1]
        loss = F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum")
    return loss, n


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                is_causal=None, **kwargs):
    """SDPA run on each packed example's slice with `is_causal` (no mask, GQA native).

    One masked SDPA over a packed row of length L does L^2 work of which only
    sum(l_i^2)/2 counts, and a mask keeps the kernels off their fast causal
    path; per-example calls skip both (2-2.5x faster attention on CPU for 4
    packed examples). Anything else (generation, padded batches) goes to the
    stock SDPA function unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    cu = kwargs.get("cu_seq_lens_q")
    sizes = None
    if cu is not None and query.shape[0] == 1 and query.shape[2] == key.shape[2] > 1:
        sizes = getattr(cu, "example_sizes", None)  # set by collate: no device sync per layer
        if sizes is None:
            borders = cu.tolist()
            sizes = [b - a for a, b in zip(borders, borders[1:])]
        if sum(sizes) != query.shape[2] or min(sizes) < 1 or (query.is_cuda and len(sizes) > MAX_CUDA_SEGMENTS):
            sizes = None  # not this row's borders, or so many examples that kernel launches would dominate
    if sizes is None:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      is_causal=is_causal, **kwargs)
    gqa = query.shape[1] != key.shape[1]
    # split, not slicing: split's backward is one cat, a slice's is a zero-filled full-size tensor per example
    outs = [F.scaled_dot_product_attention(q, k, v, dropout_p=dropout, scale=scaling, is_causal=True, enable_gqa=gqa)
            for q, k, v in zip(query.split(sizes, dim=2), key.split(sizes, dim=2), value.split(sizes, dim=2))]
    out = outs[0] if len(outs) == 1 else torch.cat(outs, dim=2)
    return out.transpose(1, 2).contiguous(), None


def _register_packed_attention() -> None:
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
    from transformers.modeling_utils import AttentionInterface

    if PACKED_ATTENTION not in AttentionInterface._global_mapping:
        AttentionInterface.register(PACKED_ATTENTION, packed_sdpa)
        AttentionMaskInterface.register(PACKED_ATTENTION, sdpa_mask)


def _model_configs(model) -> list:
    """Every config object whose `_attn_implementation` the attention layers read."""
    seen, out = set(), []
    for module in model.modules():
        config = getattr(module, "config", None)
        if config is not None and hasattr(config, "_attn_implementation") and id(config) not in seen:
            seen.add(id(config))
            out.append(config)
    return out


class fast_attention:
    """Context: packed rows use `packed_sdpa` while training; the model's own setting comes back after.

    Only swapped when the model runs stock SDPA (flash-attention 2 already reads
    `cu_seq_lens_*` natively; eager/custom kernels are left alone). Nothing is
    written to the saved config: transformers never serialises the choice.
    """

    def __init__(self, model):
        self.configs = [c for c in _model_configs(model) if c._attn_implementation == "sdpa"]

    def __enter__(self):
        if self.configs:
            _register_packed_attention()
            for c in self.configs:
                c._attn_implementation_internal = PACKED_ATTENTION
        return self

    def __exit__(self, *exc):
        for c in self.configs:
            c._attn_implementation_internal = "sdpa"
        return False


def _keep_mask(shape: torch.Size, p: float, device) -> tuple[torch.Tensor, float]:
    """A bool dropout mask (keep with probability ~1-p) and the matching 1/keep scale.

    16 random bits per element, four elements per 64-bit draw: ~4x faster than
    `bernoulli_` on CPU, and kept as 1 byte/element instead of a float noise tensor.
    p is rounded to 1/65536 and the scale uses the rounded value, so it stays unbiased.
    """
    n = math.prod(shape)
    drop = round(p * 65536)
    bits = torch.empty((n + 3) // 4, dtype=torch.int64, device=device).random_(-2**63, None)
    mask = (bits.view(torch.int16)[:n] >= drop - 32768).view(shape)
    return mask, 65536 / (65536 - drop)


class _LoraDelta(torch.autograd.Function):
    """scaling * B(A(dropout(x))) with a memory-light backward.

    peft's modules keep, per adapter, the dropped-out input (4 bytes/element) and
    the float dropout noise (4 more) for backward; this keeps the input itself
    (the same tensor for q/k/v or gate/up, so stored once) and a 1-byte mask,
    and redoes the cheap masking in backward. Scales ride on the small r x d
    matrices, never on a (tokens x d) tensor. No input gradient is computed
    where none is needed (the first layer's input).
    """

    @staticmethod
    def forward(ctx, x, a, b, p: float, scaling: float):
        mask, keep_scale = _keep_mask(x.shape, p, x.device) if p > 0 else (None, 1.0)
        a = a * keep_scale if mask is not None else a  # the 1/keep scale rides on the small matrix
        xd = torch.where(mask, x, x.new_zeros(())) if mask is not None else x  # one pass, no float copy of the mask
        h = xd @ a.t()
        ctx.save_for_backward(x, mask, h, a, b)
        ctx.scaling, ctx.keep_scale = scaling, keep_scale
        return h @ (b * scaling).t()

    @staticmethod
    def backward(ctx, grad):
        x, mask, h, a, b = ctx.saved_tensors  # `a` here already carries the dropout scale
        g = grad.reshape(-1, grad.shape[-1])  # the LoRA scaling is applied to the small matrices, not to g
        grad_b = (g.t() @ h.reshape(-1, h.shape[-1])) * ctx.scaling if ctx.needs_input_grad[2] else None
        gh = g @ (b * ctx.scaling)
        grad_a = grad_x = None
        if ctx.needs_input_grad[1]:
            xd = torch.where(mask, x, x.new_zeros(())) if mask is not None else x
            grad_a = gh.t() @ xd.reshape(-1, xd.shape[-1])
            if mask is not None:
                grad_a = grad_a * ctx.keep_scale
        if ctx.needs_input_grad[0]:
            grad_x = (gh @ a).view(x.shape)
            if mask is not None:
                grad_x = torch.where(mask, grad_x, grad_x.new_zeros(()))
        return grad_x, grad_a, grad_b, None, None


def _fast_lora_forward(self, x, *args, **kwargs):
    """peft LoRA forward for the common case (one plain adapter, with gradients); else peft's own.

    Under autocast (GPU, bf16/fp16) the small adapter matrices are cast to the
    autocast dtype instead of the (tokens x d) input to fp32, so the input is
    still kept once, in its own dtype (peft keeps a cast copy per adapter).
    """
    adapters = self.active_adapters
    name = adapters[0] if len(adapters) == 1 else None
    if (name is None or self.disable_adapters or self.merged or kwargs or args or name not in self.lora_A
            or name in getattr(self, "lora_variant", {}) or getattr(self, "lora_bias", {}).get(name)
            or not torch.is_grad_enabled()):
        return type(self).forward(self, x, *args, **kwargs)
    lora_a, lora_b = self.lora_A[name], self.lora_B[name]
    dropout = self.lora_dropout[name]
    p = dropout.p if isinstance(dropout, torch.nn.Dropout) and dropout.training else 0.0
    result = self.base_layer(x)
    kind = x.device.type
    if torch.is_autocast_enabled(kind):
        dtype = torch.get_autocast_dtype(kind)
        a, b = lora_a.weight.to(dtype), lora_b.weight.to(dtype)
        delta = _LoraDelta.apply(x.to(dtype), a, b, p, self.scaling[name])
    else:
        delta = _LoraDelta.apply(x.to(lora_a.weight.dtype), lora_a.weight, lora_b.weight, p, self.scaling[name])
    return result + delta.to(result.dtype)


class fast_lora:
    """Context: peft LoRA linears use `_fast_lora_forward` while training; removed after.

    Same parameters, same state_dict, same maths (dropout included); only the
    forward/backward bookkeeping is cheaper. Modules it does not understand keep peft's path.
    """

    def __init__(self, model):
        self.modules = []
        try:
            from peft.tuners.lora import LoraLayer
        except ImportError:
            return
        for module in model.modules():
            if isinstance(module, LoraLayer) and isinstance(module, torch.nn.Module) and hasattr(module, "base_layer") \
                    and all(isinstance(a, torch.nn.Linear) for a in module.lora_A.values()) \
                    and "forward" not in module.__dict__:
                self.modules.append(module)

    def __enter__(self):
        for module in self.modules:
            module.forward = _fast_lora_forward.__get__(module)
        return self

    def __exit__(self, *exc):
        for module in self.modules:
            module.__dict__.pop("forward", None)
        return False


def apply_gpu_kernels(model) -> list[str]:
    """Liger's fused kernels on a CUDA GPU where installed; returns what was applied (empty on CPU)."""
    applied = []
    if not hardware.liger_available():
        return applied
    try:
        from liger_kernel.transformers import _apply_liger_kernel_to_instance

        base = model.get_base_model() if hasattr(model, "get_base_model") else model
        # The loss stays ours (head only on trained positions), so no fused linear-cross-entropy.
        _apply_liger_kernel_to_instance(model=base, cross_entropy=False, fused_linear_cross_entropy=False)
        applied.append("liger")
    except Exception:  # an unsupported architecture or version: the stock kernels are fine
        pass
    return applied


def compile_layers(model) -> list[str]:
    """torch.compile each decoder layer in place (module identity and state_dict unchanged, so
    saving and checkpoints are untouched); dynamic shapes because packed rows change length."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile(dynamic=True)
    return ["torch.compile"] if layers else []


def make_optimizer(model, config: RunConfig):
    params = [p for p in model.parameters() if p.requires_grad]
    name, lr, wd = config.optimizer, config.learning_rate, config.weight_decay
    if name == "sgd":
        return torch.optim.SGD(params, lr=lr, momentum=0.9, weight_decay=wd)
    if name == "adamw_torch":
        # One fused kernel over all tensors (CPU and CUDA) instead of a Python loop or foreach chains.
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        return torch.optim.AdamW(params, lr=lr, weight_decay=wd, **({"fused": True} if fused else {"foreach": True}))
    import bitsandbytes as bnb

    kind = {"adamw_8bit": bnb.optim.AdamW8bit, "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
            "paged_adamw_32bit": bnb.optim.PagedAdamW32bit}[name]
    return kind(params, lr=lr, weight_decay=wd)


class Trainer:
    """Trains `model` on tokenized examples, writing events to `log`."""

    def __init__(self, model, tokenizer, train: list[dict], validation: list[dict], config: RunConfig,
                 log: EventLog, run_dir: Path, stop_event: threading.Event,
                 probe: Callable[[int], None] | None = None):
        self.model, self.tokenizer, self.config = model, tokenizer, config
        self.train_set, self.val_set = train, validation
        self.log, self.run_dir, self.stop_event, self.probe = log, run_dir, stop_event, probe
        self.device = next(model.parameters()).device.type
        self.kernels = apply_gpu_kernels(model) if self.device == "cuda" else []
        if self.device == "cpu" and hardware.return_freed_memory():
            self.kernels.append("malloc: 1 MB mmap threshold")
        if hardware.compile_pays():
            self.kernels += compile_layers(model)
        self.params = [p for p in model.parameters() if p.requires_grad]
        self.threads = torch.get_num_threads()
        self.total = total_steps(len(train), config)
        self.per_epoch = steps_per_epoch(len(train), config)
        self.optimizer = make_optimizer(model, config)
        self.scheduler = get_scheduler(config.scheduler, self.optimizer,
                                       num_warmup_steps=int(config.warmup_ratio * self.total),
                                       num_training_steps=self.total)
        precision = hardware.resolve_precision(config.precision)
        self.autocast = (torch.autocast(self.device, dtype=hardware.torch_dtype(precision))
                         if self.device == "cuda" and precision != "fp32" else nullcontext())
        self.scaler = torch.amp.GradScaler("cuda") if self.device == "cuda" and precision == "fp16" else None
        self.step = 0
        every = config.eval_steps or max(1, self.total // 5)
        self.eval_every, self.save_every = every, config.save_steps or every

    # -- the loop ---------------------------------------------------------
    def train(self) -> str:
        """Runs to the end or until stopped; returns 'finished' or 'stopped'."""
        torch.manual_seed(self.config.seed)
        self.model.train()
        self._tune_threads()
        start_step, window = self.step, _Window()
        start_time = time.time()
        with fast_attention(self.model), fast_lora(self.model):
            while self.step < self.total:
                epoch = self.step // self.per_epoch
                batches = micro_batches(self.train_set, self.config, epoch)
                first = (self.step % self.per_epoch) * self.config.grad_accum
                for at in range(first, len(batches), self.config.grad_accum):
                    group = batches[at: at + self.config.grad_accum]
                    if self._optimizer_step(group, window) is None:
                        return "stopped"
                    self._after_step(epoch, window, start_time, start_step)
                    if self.step >= self.total:
                        break
        return "finished"

    def _tune_threads(self) -> None:
        """CPU: the thread count that runs fastest under the machine's current load (see hardware)."""
        if self.device == "cpu":
            self.threads = hardware.tune_cpu_threads()
            self._tuned_at = time.time()

    def _optimizer_step(self, group: list[list[dict]], window: "_Window") -> float | None:
        n_total = sum(sum(1 for l in e["labels"][1:] if l != IGNORE) for b in group for e in b)
        total_loss = 0.0
        for batch in group:
            if self.stop_event.is_set():
                self.optimizer.zero_grad(set_to_none=True)
                return None
            inputs = collate(batch, self.config, self.device)
            with self.autocast:
                loss, n = loss_sum(self.model, inputs)
            scaled = loss / max(1, n_total)
            (self.scaler.scale(scaled) if self.scaler else scaled).backward()
            total_loss += float(loss.detach())
            window.tokens += sum(len(e["input_ids"]) for e in batch)
        grad_norm = self._clip_and_step()
        self.step += 1
        window.loss += total_loss / max(1, n_total)
        window.steps += 1
        window.grad_norm = grad_norm
        return total_loss

    def _clip_and_step(self) -> float:
        if self.scaler:
            self.scaler.unscale_(self.optimizer)
        norm = torch.nn.utils.clip_grad_norm_(self.params, self.config.max_grad_norm or float("inf"))
        if self.scaler:
            self.scaler.step(self.optimizer)
            self.scaler.update()
        else:
            self.optimizer.step()
        self.scheduler.step()
        self.optimizer.zero_grad(set_to_none=True)
        return float(norm)

    def _after_step(self, epoch: int, window: "_Window", start_time: float, start_step: int) -> None:
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
            window.reset()
        paused = time.time()
        if self.step % self.eval_every == 0 or self.step == self.total:
            self.evaluate()
            if self.probe:
                self.probe(self.step)
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
        total, count = 0.0, 0
        for j in range(0, len(self.val_set), self.config.batch_size):
            inputs = collate(self.val_set[j: j + self.config.batch_size], self.config, self.device)
            with self.autocast:
                loss, n = loss_sum(self.model, inputs)
            total, count = total + float(loss), count + n
        val_loss = total / max(1, count)
        self.log.append("eval", step=self.step, val_loss=round(val_loss, 5))
        self.model.train()
        return val_loss

    # -- checkpoints ------------------------------------------------------
    def save_checkpoint(self) -> Path:
        """Write checkpoints/step-N atomically (temp folder, then rename) and keep the newest few."""
        root = self.run_dir / "checkpoints"
        final = root / f"step-{self.step:06d}"
        tmp = root / f".tmp-step-{self.step:06d}"
        shutil.rmtree(tmp, ignore_errors=True)
        tmp.mkdir(parents=True)
        save_trainable(self.model, tmp, self.config)
        torch.save({"optimizer": self.optimizer.state_dict(), "scheduler": self.scheduler.state_dict(),
                    "scaler": self.scaler.state_dict() if self.scaler else None,
                    "rng": torch.get_rng_state()}, tmp / "training_state.pt")
        (tmp / "state.json").write_text(json.dumps({"step": self.step, "total_steps": self.total}))
        shutil.rmtree(final, ignore_errors=True)
        os.replace(tmp, final)
        for old in sorted(p for p in root.glob("step-*") if p.is_dir())[:-KEEP_CHECKPOINTS]:
            shutil.rmtree(old, ignore_errors=True)
        self.log.append("checkpoint", step=self.step, path=str(final.relative_to(self.run_dir)))
        return final

    def load_checkpoint(self, path: Path) -> None:
        load_trainable(self.model, path, self.config)
        state = torch.load(path / "training_state.pt", weights_only=False)
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict(state["scheduler"])
        if self.scaler and state.get("scaler"):
            self.scaler.load_state_dict(state["scaler"])
        torch.set_rng_state(state["rng"])
        self.step = json.loads((path / "state.json").read_text())["step"]


class _Window:
    """Loss and throughput accumulated since the last log line."""

    def __init__(self):
        self.reset()

    def reset(self):
        self.loss, self.steps, self.tokens, self.grad_norm, self.since = 0.0, 0, 0, 0.0, time.time()


def save_trainable(model, folder: Path, config: RunConfig) -> None:
    """LoRA: the adapter (peft format). Full: only the weights (safetensors)."""
    if config.uses_lora:
        model.save_pretrained(folder / "adapter")
    else:
        from safetensors.torch import save_file
        state = {k: v.detach().contiguous().cpu() for k, v in model.state_dict().items()}
        save_file(_untie(state), str(folder / "weights.safetensors"))


def load_trainable(model, folder: Path, config: RunConfig) -> None:
    if config.uses_lora:
        from peft import load_peft_weights, set_peft_model_state_dict
        set_peft_model_state_dict(model, load_peft_weights(str(folder / "adapter")))
    else:
        from safetensors.torch import load_file
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
