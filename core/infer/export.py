"""Merging an adapter into its base model, saving it, and pushing it to the Hub.

The merge reloads the base in full precision (merging into 4-bit weights
would round the adapter away), applies the adapter with peft, and saves
safetensors + tokenizer + a model card. The result loads with plain
`AutoModelForCausalLM.from_pretrained`, no TuneLab needed.
"""
from __future__ import annotations

import os
import shutil
from collections.abc import Callable
from pathlib import Path

from huggingface_hub import HfApi
from peft import PeftModel
from transformers import AutoTokenizer

from core import hardware
from core.config import RunConfig
from core.errors import ExportError
from core.messages import msg
from core.models import load_base

Progress = Callable[[str], None]


def merge(run_dir: Path, target: Path | None = None, progress: Progress | None = None) -> Path:
    """Write run_dir/merged (or `target`): base + adapter as one plain model."""
    config = RunConfig.load_yaml(run_dir / "config.yaml")
    target = target or run_dir / "merged"
    if not config.uses_lora:
        if (run_dir / "merged" / "config.json").exists():
            return run_dir / "merged"  # full fine-tuning already saved a complete model
        raise ExportError(msg("export.no_model"))
    adapter = run_dir / "adapter"
    if not (adapter / "adapter_config.json").exists():
        raise ExportError(msg("export.no_adapter"))
    full = config.replace(quantization="none", method="lora",
                          precision="fp32" if hardware.device_type() == "cpu" else config.precision)
    base = load_base(full, progress=progress, quantize=False)
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))
    if progress:
        progress(msg("export.merging"))
    merged = PeftModel.from_pretrained(base, adapter).merge_and_unload()
    tmp = target.with_name(target.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    if progress:
        progress(msg("export.saving", path=target))
    merged.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    (tmp / "README.md").write_text(model_card(config, run_dir.name), encoding="utf-8")
    shutil.rmtree(target, ignore_errors=True)
    os.replace(tmp, target)
    return target


def model_card(config: RunConfig, run_name: str) -> str:
    """The README.md of the merged folder: a file for the Hub, in English like every model card there."""
    return (f"---\nlibrary_name: transformers\ntags: [tunelab, {config.method}]\n---\n"
            f"# {run_name}\n\nFine-tuned with TuneLab from `{config.model}` on `{config.dataset}`.\n\n"
            f"- method: {config.method} (r={config.lora_r}, alpha={config.lora_alpha})\n"
            f"- learning rate: {config.learning_rate}, epochs: {config.epochs}, max steps: {config.max_steps}\n"
            f"- batch: {config.batch_size} x {config.grad_accum}, max length: {config.max_length}\n\n"
            "```python\nfrom transformers import AutoModelForCausalLM, AutoTokenizer\n"
            "model = AutoModelForCausalLM.from_pretrained('<this folder or repo>')\n"
            "tokenizer = AutoTokenizer.from_pretrained('<this folder or repo>')\n```\n")


def zip_folder(folder: Path, target_zip: Path) -> Path:
    """A .zip of the folder for download."""
    target_zip.parent.mkdir(parents=True, exist_ok=True)
    archive = shutil.make_archive(str(target_zip.with_suffix("")), "zip", root_dir=folder)
    return Path(archive)


def push_to_hub(folder: Path, repo_id: str, token: str | None, private: bool = True) -> str:
    """Upload a merged model or adapter folder; returns the repo URL."""
    if not token:
        raise ExportError(msg("export.needs_token"))
    try:
        api = HfApi(token=token)
        api.create_repo(repo_id, private=private, exist_ok=True)
        api.upload_folder(folder_path=str(folder), repo_id=repo_id)
    except Exception as err:
        detail = str(err).splitlines()[0][:200] if str(err) else type(err).__name__
        raise ExportError(msg("export.push_failed", repo=repo_id, error=detail)) from None
    return f"https://huggingface.co/{repo_id}"
