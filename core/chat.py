"""Loading a finished run for chat: its base model with the adapter attached.

Kept loaded between questions (one run at a time) so asking again is quick;
a lock keeps two generations from using the model at once.
"""
from __future__ import annotations

import threading
from pathlib import Path

from core import runs
from core.config import RunConfig
from core.models import load_base


class ChatError(RuntimeError):
    pass


class ChatModel:
    """The model for one run: base + adapter (LoRA runs) or the saved full model."""

    def __init__(self, run_dir: Path, progress=None):
        from peft import PeftModel
        from transformers import AutoModelForCausalLM, AutoTokenizer

        self.run_dir = run_dir
        self.config = RunConfig.load_yaml(run_dir / "config.yaml")
        self.lock = threading.Lock()
        if self.config.uses_lora:
            adapter = run_dir / "adapter"
            if not (adapter / "adapter_config.json").exists():
                raise ChatError(f"Run '{run_dir.name}' has no saved adapter yet: wait for it to finish, or stop it.")
            self.tokenizer = AutoTokenizer.from_pretrained(adapter)
            base = load_base(self.config, progress=progress)
            if len(self.tokenizer) > base.get_input_embeddings().num_embeddings:
                base.resize_token_embeddings(len(self.tokenizer))
            self.model = PeftModel.from_pretrained(base, adapter)
            self.has_base = True
        else:
            merged = run_dir / "merged"
            if not (merged / "config.json").exists():
                raise ChatError(f"Run '{run_dir.name}' has no saved model yet.")
            self.tokenizer = AutoTokenizer.from_pretrained(merged)
            self.model = AutoModelForCausalLM.from_pretrained(merged)
            self.has_base = False
        self.model.eval()


class BaseOnly:
    """The base model alone, for chatting before any run exists."""

    def __init__(self, config: RunConfig, progress=None):
        from core.models import load_tokenizer
        from core.tokenize import apply_template_choice

        self.config = config
        self.tokenizer = load_tokenizer(config, progress=progress)
        apply_template_choice(self.tokenizer, config.chat_template)
        self.model = load_base(config, progress=progress).eval()
        self.lock = threading.Lock()
        self.has_base = False


_cache: dict = {}
_cache_lock = threading.Lock()


def get_chat_model(run_name: str, progress=None) -> ChatModel:
    """The loaded model for a run, reusing the one already in memory."""
    path = runs.run_dir(run_name)
    with _cache_lock:
        key = (str(path), (path / "adapter").stat().st_mtime if (path / "adapter").exists() else 0)
        if _cache.get("key") != key:
            _cache.clear()
            _cache["model"] = ChatModel(path, progress)
            _cache["key"] = key
        return _cache["model"]


def release() -> None:
    """Drop the cached chat model (before training needs the memory)."""
    with _cache_lock:
        _cache.clear()
