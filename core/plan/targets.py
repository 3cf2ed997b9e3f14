"""The model's real layers from its config alone: an empty (meta-device) model, no weights read.

`empty_model(model_config)` builds the architecture with accelerate's
init_empty_weights (parameters on the meta device: shapes, no memory, nothing
loaded or downloaded beyond config.json). From it:

- `linear_layers(model)`      every linear-like layer (nn.Linear, GPT-2's Conv1D) but the output head,
                              by full name, with its (in, out) features
- `targeted(model, value)`    the layers a `target_modules` value will put LoRA on: `all-linear` by
                              peft's own resolution, a comma list by peft's name matching (a name, or
                              the end of a dotted path)
- `target_problems(config)`   what Start, the CLI and the form refuse (core/plan/checks.py): names that
                              match no layer of the chosen model, with the model's real linear layers

The memory planner (core/plan/model_shape.py) takes its parameter counts and LoRA sizes from the same
empty model, so the plan and the check agree on which layers exist.
"""
from __future__ import annotations

import json

import torch
from accelerate import init_empty_weights
from peft import LoraConfig
from peft.tuners.tuners_utils import _maybe_include_all_linear_layers
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, PretrainedConfig

from core.config import RunConfig
from core.messages import Msg, msg

ALL_LINEAR = ("all-linear", "all", "")
# peft can put LoRA on these besides linear layers (an embedding, a convolution): naming one is not a typo
OTHER_LORA_KINDS = (torch.nn.Embedding, torch.nn.Conv1d, torch.nn.Conv2d, torch.nn.Conv3d, torch.nn.MultiheadAttention)
_CACHE: dict[str, torch.nn.Module] = {}


def as_config(model_config) -> PretrainedConfig:
    """A transformers config from a config object or a plain dict with `model_type` (the embedded model's copy)."""
    if isinstance(model_config, PretrainedConfig):
        return model_config
    data = dict(model_config)
    return AutoConfig.for_model(data.pop("model_type"), **data)


def empty_model(model_config, trust_remote_code: bool = False) -> torch.nn.Module:
    """The model of this config with every parameter on the meta device (cached per config)."""
    config = as_config(model_config)
    key = json.dumps(config.to_dict(), sort_keys=True, default=str) + str(trust_remote_code)
    if key not in _CACHE:
        # encoder-decoder configs (T5, BART) have no causal-LM class: the seq2seq one builds them
        auto = AutoModelForSeq2SeqLM if getattr(config, "is_encoder_decoder", False) else AutoModelForCausalLM
        with init_empty_weights():
            model = auto.from_config(config, trust_remote_code=trust_remote_code)
        model.tie_weights()  # init_empty_weights re-registers each parameter, which unties a tied head
        _CACHE[key] = model
        if len(_CACHE) > 8:  # a long-running app sees many models; each empty one is small but not free
            _CACHE.pop(next(iter(_CACHE)))
    return _CACHE[key]


def _is_linear(module: torch.nn.Module) -> bool:
    return type(module).__name__ in ("Linear", "Conv1D") and getattr(module, "weight", None) is not None \
        and module.weight.dim() == 2


def linear_layers(model: torch.nn.Module) -> dict[str, tuple[int, int]]:
    """{full name: (in features, out features)} of every linear-like layer except the output head."""
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    found = {}
    for name, module in model.named_modules():
        if module is head or not _is_linear(module):
            continue
        rows, cols = module.weight.shape
        # nn.Linear stores (out, in); GPT-2's Conv1D stores (in, out)
        found[name] = (rows, cols) if type(module).__name__ == "Conv1D" else (cols, rows)
    return found


def short_names(names) -> list[str]:
    """The distinct last parts of module names (what a user writes in target_modules)."""
    return sorted({n.rsplit(".", 1)[-1] for n in names})


def requested(value: str) -> list[str]:
    return [t.strip() for t in (value or "").split(",") if t.strip()]


def _matches(name: str, wanted: str) -> bool:
    return name == wanted or name.endswith("." + wanted)  # peft's rule for a list of names


def targeted(model: torch.nn.Module, value: str) -> dict[str, tuple[int, int]]:
    """{full name: (in, out)} of the linear layers LoRA will wrap for this `target_modules` value."""
    linears = linear_layers(model)
    if value.strip().lower() in ALL_LINEAR:
        chosen = _maybe_include_all_linear_layers(LoraConfig(target_modules="all-linear"), model).target_modules
        return {n: linears[n] for n in sorted(chosen) if n in linears}
    wanted = requested(value)
    return {n: shape for n, shape in linears.items() if any(_matches(n, w) for w in wanted)}


def unmatched(model: torch.nn.Module, value: str) -> list[str]:
    """The names in a comma list that match no layer LoRA can wrap."""
    if value.strip().lower() in ALL_LINEAR:
        return []
    names = [n for n, m in model.named_modules() if n and (_is_linear(m) or isinstance(m, OTHER_LORA_KINDS))]
    return [w for w in requested(value) if not any(_matches(n, w) for n in names)]


def needs_layers(config: RunConfig) -> bool:
    """Whether the target check has anything to check (a LoRA run naming its layers)."""
    return config.uses_lora and config.target_modules.strip().lower() not in ALL_LINEAR


def target_problems(config: RunConfig, model_config) -> list[Msg]:
    """`target_modules` names that match nothing in the model of `model_config`, refused with its real
    linear layers. When the architecture can't be built here (a custom one, remote code) nothing is
    refused: loading the model will say what is wrong.
    """
    if not needs_layers(config):
        return []
    try:
        model = empty_model(model_config, config.trust_remote_code)
    except Exception:  # unknown here: the load reports it with the library's own words
        return []
    missing = unmatched(model, config.target_modules)
    if not missing:
        return []
    return [msg("plan.targets_unknown", names=", ".join(missing), model=config.model,
                found=", ".join(short_names(linear_layers(model))))]
