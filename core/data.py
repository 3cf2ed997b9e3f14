"""Training data: load from a source, map to chat messages, split, tokenize.

Sources: built-in sets (`builtin:demo`), a local/uploaded file (JSON, JSONL,
CSV, TSV, Parquet, TXT) or a Hugging Face Hub dataset id. Formats are
detected (see core/formats.py) and everything becomes `{"messages": [...]}`
(or `{"text": ...}` for continued pretraining), rendered later with the
model's own chat template.
"""
from __future__ import annotations

import random
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

from core.config import RunConfig
from core.formats import DataError, detect_format, to_examples
from core.sources import load_rows
from core.tokenize import chunk_text_examples, encode_example

Progress = Callable[[str], None]
__all__ = ["DataError", "PreparedData", "load_examples", "prepare", "BUILTIN_DIR"]

BUILTIN_DIR = Path(__file__).parent / "builtin"


@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    format: str
    stats: dict = field(default_factory=dict)


def load_examples(config: RunConfig, token: str | None = None, progress: Progress | None = None) -> tuple[list[dict], str, dict]:
    """(examples, detected format, report of rows kept/dropped and why)."""
    if progress:
        progress(f"Loading dataset {config.dataset}…")
    rows = load_rows(config, token)
    fmt = detect_format(rows, config) if config.data_format == "auto" else config.data_format
    examples, report = to_examples(rows, fmt, config)
    if not examples:
        reasons = ", ".join(f"{n} {why}" for why, n in report.get("dropped", {}).items()) or "no usable rows"
        raise DataError(f"No training examples are left from {config.dataset} ({reasons}). Check the format and column settings.")
    return examples, fmt, report


def split(examples: list, config: RunConfig) -> tuple[list, list]:
    """Subset, shuffle (seeded) and hold out the validation share."""
    examples = list(examples)
    if config.shuffle:
        random.Random(config.seed).shuffle(examples)
    if config.subset_share < 1:
        examples = examples[: max(1, int(len(examples) * config.subset_share))]
    n_val = int(len(examples) * config.validation_share)
    if config.validation_share > 0 and len(examples) >= 10:
        n_val = max(1, n_val)
    else:
        n_val = 0
    return examples[n_val:], examples[:n_val]


def tokenize_all(examples: list[dict], tokenizer, config: RunConfig) -> list[dict]:
    texts = [e["text"] for e in examples if "text" in e]
    if texts and len(texts) == len(examples):
        return chunk_text_examples(tokenizer, texts, config.max_length)
    return [encode_example(tokenizer, e, config.max_length, config.train_on) for e in examples]


def token_stats(encoded: list[dict]) -> dict:
    lengths = sorted(len(e["input_ids"]) for e in encoded)
    total = sum(lengths)
    trained = sum(sum(1 for l in e["labels"][1:] if l != -100) for e in encoded)
    pick = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else 0
    return {
        "examples": len(encoded), "tokens": total, "trained_tokens": trained,
        "trained_share": trained / total if total else 0.0,
        "truncated": sum(1 for e in encoded if e.get("truncated")),
        "length_min": lengths[0] if lengths else 0, "length_p50": pick(0.5),
        "length_p90": pick(0.9), "length_max": lengths[-1] if lengths else 0,
    }


def prepare(config: RunConfig, tokenizer, token: str | None = None, progress: Progress | None = None) -> PreparedData:
    examples, fmt, report = load_examples(config, token, progress)
    train_examples, val_examples = split(examples, config)
    if progress:
        progress(f"Tokenizing {len(examples)} examples…")
    train = tokenize_all(train_examples, tokenizer, config)
    validation = tokenize_all(val_examples, tokenizer, config)
    stats = {**report, **token_stats(train), "validation_examples": len(validation)}
    if stats["trained_share"] < 0.005:
        raise DataError(
            f"Only {stats['trained_share']:.1%} of the tokens would be trained on, so the model would learn nothing. "
            "Usually the answers are cut off by 'max_length' or the answer column is wrong: raise max_length, "
            "check the format/columns, or set 'train_on' to 'all'.")
    return PreparedData(train=train, validation=validation, format=fmt, stats=stats)
