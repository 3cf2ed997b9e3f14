"""Helpers shared by the tests of core/data: configs for sample files, JSONL writing, trained-label runs.

The `data_tokenizer` fixture is in this folder's conftest.py.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.config import RunConfig
from core.data.tokenize import IGNORE
from tests.paths import DATA

END = "<|im_end|>"  # the embedded model's end-of-turn token

def cfg(dataset, **changes) -> RunConfig:
    """A config for `dataset` (a path under tests/data, any path, or an id) with no validation split."""
    path = DATA / str(dataset)
    source = str(path) if path.exists() else str(dataset)
    return RunConfig(dataset=source, validation_share=0.0).replace(**changes)


def write_jsonl(path: Path, rows: list) -> Path:
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return path


def trained_runs(tokenizer, item: dict) -> list[str]:
    """Each contiguous run of trained label tokens, decoded; checks labels equal the input ids there."""
    runs, current = [], []
    for i, (tok, label) in enumerate(zip(item["input_ids"], item["labels"])):
        if label != IGNORE and i > 0:
            assert label == tok, "a trained label must be the token at that position"
            current.append(label)
        elif current:
            runs.append(current)
            current = []
    if current:
        runs.append(current)
    return [tokenizer.decode(r) for r in runs]


def answers(example: dict) -> list[str]:
    return [m["content"] for m in example["messages"] if m["role"] == "assistant"]
