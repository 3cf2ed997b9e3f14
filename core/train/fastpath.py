"""Speed paths the training loop switches on: packed attention, fused LoRA, GPU kernels, compile.

Each is used as a context manager or applied once by core/train/trainer.py, and
each falls back to the stock library code path wherever it does not apply
(generation, padded batches, an unsupported layer), so turning one off never
changes what is computed, only how fast. bench/throughput.py measures them.
"""
from __future__ import annotations

import inspect
import math

import torch
import torch.nn.functional as F
from peft.tuners.lora import LoraLayer
from transformers.integrations.sdpa_attention import sdpa_attention_forward
from transformers.masking_utils import AttentionMaskInterface, sdpa_mask
from transformers.modeling_utils import AttentionInterface

from core import hardware

PACKED_ATTENTION = "tunelab_packed_sdpa"
MAX_CUDA_SEGMENTS = 32  # more packed examples than this in a row: one masked SDPA call instead


def packed_sdpa(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                is_causal=None, **kwargs):
    """SDPA run on each packed example's slice with `is_causal` (no mask, GQA native).

    One masked SDPA over a packed row of length L does L^2 work of which only
    sum(l_i^2)/2 counts, and a mask keeps the kernels off their fast causal
    path; per-example calls skip both (2-2.5x faster attention on CPU for 4
    packed examples). Anything else (generation, padded batches) goes to the
    stock SDPA function unchanged.
    """
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
    """Liger's fused kernels on a CUDA GPU where installed; returns what was applied (empty on CPU).

    Through Liger's public per-architecture switch, `apply_liger_kernel_to_<model_type>(model=...)`,
    which patches this instance only; an architecture Liger has no switch for keeps the stock kernels.
    """
    if not hardware.liger_available():
        return []
    import liger_kernel.transformers as liger  # noqa: PLC0415 - optional, CUDA-only package

    base = model.get_base_model() if hasattr(model, "get_base_model") else model
    switch = getattr(liger, f"apply_liger_kernel_to_{getattr(base.config, 'model_type', '')}", None)
    if switch is None:
        return []
    # The loss stays ours (head only on trained positions), so no fused linear-cross-entropy.
    wanted = {"model": base, "cross_entropy": False, "fused_linear_cross_entropy": False}
    accepted = inspect.signature(switch).parameters
    try:
        switch(**{k: v for k, v in wanted.items() if k in accepted})
    except (TypeError, ValueError, AttributeError, NotImplementedError):
        return []  # a Liger version that can't patch this model's layers: the stock kernels compute the same
    return ["liger"]


def compile_layers(model) -> list[str]:
    """torch.compile each decoder layer in place (module identity and state_dict unchanged, so
    saving and checkpoints are untouched); dynamic shapes because packed rows change length."""
    layers = [m for m in model.modules() if type(m).__name__.endswith("DecoderLayer")]
    for layer in layers:
        layer.compile(dynamic=True)
    return ["torch.compile"] if layers else []
