"""Encoder-decoder models (T5, mT5, mt0, flan-t5, BART) in the training loop: their batches and loss.

core/data/pipeline.py makes one (source ids, target labels) item per reply; the trainer
(core/train/trainer.py) sends such items here instead of through its decoder paths
(packed rows, head only on trained positions), which assume one token stream per example.
"""
from __future__ import annotations

import torch

from core.data.tokenize import IGNORE


def seq2seq_collate(batch: list[dict], device: str) -> dict:
    """Padded sources with their attention mask and padded target labels (-100 never trained).

    No packing: the encoder attends both ways over a row and the decoder attends to the whole
    encoder output, so examples sharing a row would see each other (no per-example borders exist
    for cross-attention in the library's T5/BART kernels). Source padding is masked, so its id is arbitrary.
    """
    width = max(len(e["input_ids"]) for e in batch)
    target = max(len(e["labels"]) for e in batch)
    return {"input_ids": torch.tensor([e["input_ids"] + [0] * (width - len(e["input_ids"])) for e in batch],
                                      device=device),
            "attention_mask": torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"]))
                                            for e in batch], device=device),
            "labels": torch.tensor([e["labels"] + [IGNORE] * (target - len(e["labels"])) for e in batch],
                                   device=device)}


def seq2seq_loss_sum(model, inputs: dict) -> tuple[torch.Tensor, int]:
    """Sum of target-token losses and their number. The model shifts the labels into its decoder inputs
    (its own decoder start token) and returns the mean over trained tokens: x n is the sum."""
    n = int((inputs["labels"] != IGNORE).sum())
    return model(**inputs, use_cache=False).loss * n, n
