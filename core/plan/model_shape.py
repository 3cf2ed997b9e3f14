"""A model's shape (layer sizes, heads, vocabulary) read from its config, without loading weights.

The linear layers' names and shapes and the parameter count come from the empty (meta-device) model
of the config (core/plan/targets.py) for any architecture transformers can build: GPT-2's Conv1D,
GPT-NeoX's fused query_key_value, Llama's seven projections; the Llama formula is the fallback.

The memory and time planner (core/plan/memory.py) needs only sizes: they come from
the transformers config of a local folder, the cache, or the Hub when it is
reachable, and for the embedded model from a built-in copy of its config so
the estimate works before the first conversion.
"""
from __future__ import annotations

import os
import re
import socket
import time
from dataclasses import dataclass

from transformers import AutoConfig

from core.config import DEFAULT_MODEL
from core.messages import msg
from core.models import EMBEDDED, cache_root, resolve
from core.plan import targets

# SmolLM2-135M-Instruct's shape: the embedded default, so the estimate works before its first conversion.
EMBEDDED_CONFIG = dict(model_type="llama", hidden_size=576, intermediate_size=1536, num_hidden_layers=30,
                       num_attention_heads=9, num_key_value_heads=3, head_dim=64, vocab_size=49152,
                       tie_word_embeddings=True, dtype="float32")


@dataclass
class Shape:
    hidden: int
    intermediate: int
    layers: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    dtype: str = "bfloat16"  # the checkpoint's stored precision
    # From the empty (meta-device) model of the config, when transformers can build it (core/plan/targets.py);
    # else None and the sizes above stand for Llama's seven linear layers.
    modules: dict | None = None      # {full name: (in, out)} of every linear layer but the head
    all_linear: tuple = ()           # the names peft's all-linear resolution picks
    param_count: int | None = None   # every parameter (tied weights once)
    mlp_saved: int = 4               # tensors of intermediate size autograd keeps per MLP (see memory.py)
    attention_dropout: float = 0.0   # > 0 (GPT-2's 0.1): attention runs SDPA's math path, which keeps the weights
    # encoder-decoder (T5, BART): `layers` is the encoder's, `decoder_layers` the decoder's (core/plan/seq2seq.py)
    seq2seq: bool = False
    decoder_layers: int = 0
    hidden_dropout: float = 0.0      # dropout on the residual stream and the MLP (T5's dropout_rate, BART's dropout)

    @property
    def kv(self) -> int:
        return self.kv_heads * self.head_dim

    @property
    def q(self) -> int:
        return self.heads * self.head_dim

    def linear_shapes(self) -> list[tuple[int, int]]:
        """(in, out) of every linear layer in one decoder layer (the model's own where it was built empty)."""
        if self.modules:
            return [shape for name, shape in self.modules.items() if _layer_index(name) == 0]
        h, i = self.hidden, self.intermediate
        return [(h, self.q), (h, self.kv), (h, self.kv), (self.q, h), (h, i), (h, i), (i, h)]

    @property
    def linear_params(self) -> int:
        """Weights of every linear layer but the head (what 4/8-bit quantization shrinks)."""
        if self.modules:
            return sum(a * b for a, b in self.modules.values())
        return self.layers * self.layer_linear_params

    @property
    def linear_outputs(self) -> int:
        """Output features summed over every linear layer but the head (8-bit keeps a scale per row)."""
        if self.modules:
            return sum(o for _, o in self.modules.values())
        return self.layers * sum(o for _, o in self.linear_shapes())

    @property
    def layer_linear_params(self) -> int:
        return sum(a * b for a, b in self.linear_shapes())

    @property
    def embed_params(self) -> int:
        return self.vocab * self.hidden

    @property
    def head_params(self) -> int:
        return 0 if self.tied else self.vocab * self.hidden

    @property
    def other_params(self) -> int:  # norms
        return self.layers * 2 * self.hidden + self.hidden

    @property
    def total_params(self) -> int:
        if self.param_count is not None:
            return self.param_count
        return self.layers * self.layer_linear_params + self.embed_params + self.head_params + self.other_params

    @property
    def rest_params(self) -> int:
        """Everything but the linear layers: embeddings, position embeddings, norms, biases elsewhere, the head."""
        return self.total_params - self.linear_params


def _layer_index(name: str) -> int | None:
    """The block number in a module path (model.layers.3.mlp.up_proj -> 3), None outside the blocks."""
    found = re.search(r"\.(\d+)\.", name)
    return int(found[1]) if found else None


# tensors of intermediate size autograd keeps per MLP, by activation: a gated MLP keeps gate, up, act(gate)
# and their product; a plain one its first layer's output and act(output); GPT-2's gelu_new is written as
# Python arithmetic, whose autograd keeps x, tanh(.), 0.5x, 1+tanh(.) and the product
PLAIN_MLP_SAVED = {"gelu_new": 5}
GATE_NAMES = ("gate_proj", "w1", "w3", "gate_up_proj", "fc_in_gate", "wi_0")  # wi_0: T5 v1.1 / mT5 / mt0


def _with_empty_model(shape: Shape, model_config) -> Shape:
    """`shape` with the layer names, shapes and parameter count of the empty model (unchanged if it can't be built)."""
    try:
        model = targets.empty_model(model_config)
    except Exception:  # a custom architecture (remote code), an unknown model type: the formula stands
        return shape
    shape.modules = targets.linear_layers(model)
    shape.all_linear = tuple(targets.targeted(model, "all-linear"))
    shape.param_count = sum(p.numel() for p in model.parameters())
    gated = any(n.rsplit(".", 1)[-1] in GATE_NAMES for n in shape.modules)
    get = (lambda k: model_config.get(k)) if isinstance(model_config, dict) else (lambda k: getattr(model_config, k, None))
    act = get("activation_function") or get("hidden_act") or get("dense_act_fn") or ""
    # gated: gate, up, act(gate), the product, plus what an arithmetic activation keeps beyond its input/output
    shape.mlp_saved = (2 if gated else 0) + PLAIN_MLP_SAVED.get(act, 2)
    return shape


def shape_of(model_config) -> Shape:
    c = model_config
    get = (lambda k, d=None: c.get(k, d)) if isinstance(c, dict) else (lambda k, d=None: getattr(c, k, d))
    if get("text_config") is not None and get("hidden_size") is None:  # multimodal wrappers
        return shape_of(get("text_config"))
    hidden = get("hidden_size") or get("n_embd") or get("d_model")
    layers = get("num_hidden_layers") or get("n_layer") or get("num_layers")
    heads = get("num_attention_heads") or get("n_head")
    if not (hidden and layers and heads):
        raise ValueError(msg("plan.shape_incomplete"))
    head_dim = get("head_dim") or hidden // heads
    seq2seq = bool(get("is_encoder_decoder", False))
    intermediate = get("intermediate_size") or get("n_inner") or get("d_ff") or get("encoder_ffn_dim") or 4 * hidden
    # T5 applies its one dropout_rate to the attention weights too; BART has a separate attention_dropout
    attention_dropout = get("attn_pdrop") or get("attention_dropout") or (get("dropout_rate") if seq2seq else 0.0)
    shape = Shape(hidden=hidden, intermediate=intermediate,
                  layers=layers, heads=heads, kv_heads=get("num_key_value_heads") or heads, head_dim=head_dim,
                  vocab=get("vocab_size") or 32000, tied=bool(get("tie_word_embeddings", False)),
                  dtype=str(get("dtype") or get("torch_dtype") or "bfloat16").replace("torch.", ""),
                  attention_dropout=float(attention_dropout or 0.0), seq2seq=seq2seq,
                  decoder_layers=(get("num_decoder_layers") or get("decoder_layers") or layers) if seq2seq else 0,
                  hidden_dropout=float((get("dropout_rate") or get("dropout") or 0.0) if seq2seq else 0.0))
    return _with_empty_model(shape, c)


def read_model_config(ref: str):
    """The model's transformers config without loading weights; raises with a plain reason."""
    ref = (ref or "").strip() or DEFAULT_MODEL
    if ref in EMBEDDED:
        folder = cache_root() / "models" / ref.split(":", 1)[1]
        if not (folder / "config.json").exists():
            return dict(EMBEDDED_CONFIG)
    path = resolve(ref)
    try:
        return AutoConfig.from_pretrained(path, local_files_only=True)
    except Exception:
        pass
    if not _hub_reachable():
        raise LookupError(msg("plan.model_offline", model=ref))
    try:
        return AutoConfig.from_pretrained(path)
    except Exception as err:
        raise LookupError(msg("plan.model_unreadable", model=ref, detail=str(err).splitlines()[0][:160])) from None


_HUB_CHECK: dict = {}


def _hub_reachable(timeout: float = 2.0) -> bool:
    """A quick TCP check (cached a minute), so an offline machine answers at once instead of after retries."""
    if os.environ.get("HF_HUB_OFFLINE", "0") not in ("0", "", "false", "False"):
        return False
    now = time.time()
    if _HUB_CHECK and now - _HUB_CHECK["at"] < 60:
        return _HUB_CHECK["ok"]
    try:
        socket.create_connection(("huggingface.co", 443), timeout=timeout).close()
        ok = True
    except OSError:
        ok = False
    _HUB_CHECK.update(at=now, ok=ok)
    return ok
