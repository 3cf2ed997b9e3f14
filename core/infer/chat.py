"""The one cache of loaded chat models: a run's base model with its adapter, or a base model alone.

One model is kept loaded between questions (a run's, or the base alone before
any run exists) so asking again is quick; its lock keeps two generations from
using it at once. The job manager calls `release()` before a run trains (Start
and Resume alike), so training never shares the device with a chat model.
"""
from __future__ import annotations

import hashlib
import json
import threading
from pathlib import Path

import torch
from peft import PeftModel
from transformers import AutoConfig, AutoModelForCausalLM, AutoModelForSeq2SeqLM, AutoTokenizer

from core import hardware, runs
from core.config import RunConfig
from core.data.tokenize import apply_template_choice
from core.errors import ChatError
from core.messages import msg
from core.models import is_seq2seq, load_base, load_tokenizer


class ChatModel:
    """The model for one run: base + adapter (LoRA runs) or the saved full model."""

    def __init__(self, run_dir: Path, progress=None, token: str | None = None):
        self.run_dir = run_dir
        self.config = RunConfig.load_yaml(run_dir / "config.yaml")
        self.lock = threading.Lock()
        if self.config.uses_lora:
            adapter = run_dir / "adapter"
            if not (adapter / "adapter_config.json").exists():
                raise ChatError(msg("infer.no_adapter_yet", run=run_dir.name))
            self.tokenizer = AutoTokenizer.from_pretrained(adapter)
            base = load_base(self.config, token, progress=progress)  # the user's token: gated bases load too
            if len(self.tokenizer) > base.get_input_embeddings().num_embeddings:
                base.resize_token_embeddings(len(self.tokenizer))
            self.model = PeftModel.from_pretrained(base, adapter)
            self.has_base = True
        else:
            merged = run_dir / "merged"
            if not (merged / "config.json").exists():
                raise ChatError(msg("infer.no_model_yet", run=run_dir.name))
            self.tokenizer = AutoTokenizer.from_pretrained(merged)
            self.model = load_full_model(merged)
            self.has_base = False
        self.model.eval()


def load_full_model(folder: Path):
    """A fully fine-tuned model on the best device (the GPU when there is one, in its fast half precision)."""
    device = hardware.device_type()
    dtype = torch.float32 if device == "cpu" else hardware.torch_dtype("auto")
    model = model_class(folder).from_pretrained(folder, dtype=dtype)
    return model if device == "cpu" else model.to(device)


def run_is_seq2seq(run_dir: Path) -> bool:
    """Whether a run's model is an encoder-decoder, from its saved files alone (the adapter's task type, or the
    merged/full model's config.json): nothing downloaded, no weights read."""
    adapter = run_dir / "adapter" / "adapter_config.json"
    if adapter.exists():
        return json.loads(adapter.read_text(encoding="utf-8")).get("task_type") == "SEQ_2_SEQ_LM"
    merged = run_dir / "merged" / "config.json"
    return merged.exists() and bool(json.loads(merged.read_text(encoding="utf-8")).get("is_encoder_decoder"))


def model_class(folder: Path):
    """The plain transformers class a saved model folder loads with: seq2seq (T5, mt0, BART) or causal."""
    return AutoModelForSeq2SeqLM if is_seq2seq(AutoConfig.from_pretrained(folder)) else AutoModelForCausalLM


class BaseOnly:
    """The base model alone, for chatting before any run exists."""

    def __init__(self, config: RunConfig, progress=None, token: str | None = None):
        self.config = config
        self.tokenizer = load_tokenizer(config, token, progress=progress)
        apply_template_choice(self.tokenizer, config.chat_template)
        self.model = load_base(config, token, progress=progress).eval()
        self.lock = threading.Lock()
        self.has_base = False


_cache: dict = {}  # {"key": what is loaded, "model": it}; one model at a time, whichever kind
_cache_lock = threading.Lock()


def _cached(key: tuple, load):
    with _cache_lock:
        if _cache.get("key") != key:
            _cache.clear()  # drop the old model before loading the next: two may not fit
            _cache["model"] = load()
            _cache["key"] = key
        return _cache["model"]


def get_chat_model(run_name: str, progress=None, token: str | None = None) -> ChatModel:
    """The loaded model for a run, reusing the one already in memory (reloaded when its adapter changed).

    `token` is the Hub token of the person asking (their browser session's, or HF_TOKEN in the CLI)."""
    path = runs.run_dir(run_name)
    saved = path / "adapter" if (path / "adapter").exists() else path / "merged"
    key = ("run", str(path), saved.stat().st_mtime if saved.exists() else 0)
    return _cached(key, lambda: ChatModel(path, progress, token))


def get_base_model(model: str = "", progress=None, token: str | None = None) -> BaseOnly:
    """A base model alone (the default one when `model` is empty), for chatting before any run exists.

    Cached per token too: a gated model one user's token opened is not handed to a user without one."""
    config = RunConfig(model=model.strip()) if (model or "").strip() else RunConfig()
    who = hashlib.sha256(token.encode()).hexdigest()[:12] if token else ""
    return _cached(("base", config.model, who), lambda: BaseOnly(config, progress, token))


def loaded() -> tuple | None:
    """What the cache holds now: ("run", folder, mtime) or ("base", model), or None."""
    with _cache_lock:
        return _cache.get("key")


def release() -> None:
    """Drop the cached chat model (before training needs the memory)."""
    with _cache_lock:
        _cache.clear()
