"""The training loop's optimizer: the RunConfig's `optimizer` over the trainable weights, with LoRA+ where asked.

AdamW runs as one fused kernel over all tensors (CPU and CUDA) where it can; the 8-bit and paged kinds
come from bitsandbytes, imported only when chosen.
"""
from __future__ import annotations

import torch
from peft.optimizers import create_loraplus_optimizer

from core.config import RunConfig


def _optimizer_kind(name: str):
    """The optimizer class and its extra arguments for a RunConfig `optimizer` name."""
    if name == "sgd":
        return torch.optim.SGD, {"momentum": 0.9}
    if name == "adamw_torch":
        return torch.optim.AdamW, {}
    import bitsandbytes as bnb  # noqa: PLC0415 - optional package: only the 8-bit/paged optimizers need it

    return {"adamw_8bit": bnb.optim.AdamW8bit, "paged_adamw_8bit": bnb.optim.PagedAdamW8bit,
            "paged_adamw_32bit": bnb.optim.PagedAdamW32bit}[name], {}


def make_optimizer(model, config: RunConfig):
    """The configured optimizer over the trainable weights; with LoRA+ built by peft's create_loraplus_optimizer.

    LoRA+ (Hayou et al. 2024): B starts at zero and learns slowly at A's rate; a higher rate for B
    (`loraplus_ratio` x) reaches the same loss in fewer steps. peft groups the weights (B matrices and
    1-d weights fast, LoRA embeddings at their own rate) and, for the 8-bit kinds, keeps embeddings 32-bit.
    """
    kind, extra = _optimizer_kind(config.optimizer)
    params = [p for p in model.parameters() if p.requires_grad]
    if kind is torch.optim.AdamW:
        # One fused kernel over all tensors (CPU and CUDA) instead of a Python loop or foreach chains.
        fused = bool(params) and all(p.device.type in ("cpu", "cuda") and p.is_floating_point() for p in params)
        extra = {"fused": True} if fused else {"foreach": True}
    lr, wd = config.learning_rate, config.weight_decay
    if config.uses_lora and config.loraplus_ratio > 0:
        optimizer = create_loraplus_optimizer(model, kind, lr=lr, loraplus_lr_ratio=config.loraplus_ratio,
                                              loraplus_weight_decay=wd, **extra)
        # peft always makes its four groups; empty ones would only clutter the scheduler's rates
        optimizer.param_groups[:] = [g for g in optimizer.param_groups if g["params"]]
        return optimizer
    return kind(params, lr=lr, weight_decay=wd, **extra)
