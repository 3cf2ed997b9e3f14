"""Shared fixtures: the embedded model's tokenizer, a tiny random model, a temp runs folder."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest
import torch

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")


@pytest.fixture(scope="session")
def embedded_dir() -> Path:
    """The embedded SmolLM2 model as a plain checkpoint (converted once, then cached)."""
    from core.config import DEFAULT_MODEL
    from core.models import resolve
    return Path(resolve(DEFAULT_MODEL))


@pytest.fixture(scope="session")
def tokenizer(embedded_dir):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(embedded_dir)


@pytest.fixture(scope="session")
def tiny_model_dir(tmp_path_factory, tokenizer) -> Path:
    """A randomly initialised 2-layer Llama with the real tokenizer, saved as a model folder."""
    from transformers import LlamaConfig, LlamaForCausalLM
    torch.manual_seed(0)
    config = LlamaConfig(vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
                         tie_word_embeddings=True, bos_token_id=tokenizer.bos_token_id,
                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id)
    folder = tmp_path_factory.mktemp("tiny-llama")
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return folder


@pytest.fixture(autouse=True)
def runs_root(tmp_path, monkeypatch) -> Path:
    """Every test writes its runs into its own temporary folder."""
    root = tmp_path / "runs"
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(root))
    return root


@pytest.fixture
def tiny_config(tiny_model_dir):
    from core.config import RunConfig
    return RunConfig(model=str(tiny_model_dir), max_steps=4, batch_size=4, learning_rate=1e-3,
                     max_length=128, validation_share=0.1, eval_steps=2, save_steps=2)
