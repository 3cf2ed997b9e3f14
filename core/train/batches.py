"""The training loop's batches: what one step trains on, and the loss over it.

- `micro_batches`: an epoch's micro-batches, in a seeded order that resume can reproduce,
- `steps_per_epoch` / `total_steps`: optimizer steps for a number of examples (also the planner's and the
  Train tab's figures, core.plan.cost and ui.presenter),
- `shard`: one rank's share of a step's micro-batches (several processes, core/train/worker.py),
- `collate`: a micro-batch as tensors, packed into one padding-free row (example borders in
  `cu_seq_lens_q/k`, so attention runs per example) or padded; encoder-decoder items go to core/train/seq2seq.py,
- `trained_count` / `loss_sum`: the tokens that carry loss, and their summed loss with the output head
  run only where a label is trained on (`logits_to_keep`).
"""
from __future__ import annotations

import math
import random

import torch
import torch.nn.functional as F

from core.config import RunConfig
from core.data.tokenize import IGNORE
from core.train.seq2seq import seq2seq_collate


def micro_batches(examples: list[dict], config: RunConfig, epoch: int) -> list[list[dict]]:
    """The epoch's micro-batches, in a seeded order that resume can reproduce."""
    order = list(range(len(examples)))
    random.Random(config.seed * 1000 + epoch).shuffle(order)
    size = config.batch_size
    return [[examples[i] for i in order[j: j + size]] for j in range(0, len(order), size)]


def steps_per_epoch(n_examples: int, config: RunConfig, processes: int = 1) -> int:
    """Optimizer steps per epoch: a step takes `grad_accum` micro-batches on each of `processes` ranks."""
    return max(1, math.ceil(math.ceil(n_examples / config.batch_size) / (config.grad_accum * processes)))


def total_steps(n_examples: int, config: RunConfig, processes: int = 1) -> int:
    if config.max_steps > 0:
        return config.max_steps
    return max(1, math.ceil(steps_per_epoch(n_examples, config, processes) * config.epochs))


def shard(group: list, rank: int, world: int) -> list[tuple]:
    """This rank's share of one step's micro-batches, as (micro-batch, weight) pairs.

    Rank r takes group[r::world], so over an epoch every example is trained once, by one
    rank, in the same order as with one process. A rank left with fewer pads with the
    group's first micro-batch at weight 0: every rank runs the same number of passes, so
    the collectives of DDP/FSDP pair up, and the padding adds nothing to the gradient.
    """
    if world == 1:
        return [(b, 1.0) for b in group]
    mine = [(b, 1.0) for b in group[rank::world]]
    return mine + [(group[0], 0.0)] * (math.ceil(len(group) / world) - len(mine))


def collate(batch: list[dict], config: RunConfig, device: str) -> dict:
    """Packed (one padding-free row) or padded tensors for one micro-batch.

    Packed rows carry `cu_seq_lens_q/k` (example borders, flash-attention's
    varlen convention) so attention runs per example rather than over the row.
    Encoder-decoder items (source ids, target labels) are always padded: see seq2seq_collate.
    """
    if batch and batch[0].get("seq2seq"):
        return seq2seq_collate(batch, device)
    if config.packing:
        ids, labels, positions, borders = [], [], [], [0]
        for e in batch:
            n = len(e["input_ids"])
            ids += e["input_ids"]
            labels += [IGNORE] + e["labels"][1:]  # no loss across example borders
            positions += range(n)
            borders.append(borders[-1] + n)
        cu = torch.tensor(borders, dtype=torch.int32, device=device)
        cu.example_sizes = [b - a for a, b in zip(borders, borders[1:])]
        longest = max(b - a for a, b in zip(borders, borders[1:]))
        return {"input_ids": torch.tensor([ids], device=device),
                "position_ids": torch.tensor([positions], device=device),
                "labels": torch.tensor([labels], device=device),
                "cu_seq_lens_q": cu, "cu_seq_lens_k": cu, "max_length_q": longest, "max_length_k": longest}
    width = max(len(e["input_ids"]) for e in batch)
    pad = lambda seq, v: seq + [v] * (width - len(seq))
    return {"input_ids": torch.tensor([pad(e["input_ids"], 0) for e in batch], device=device),
            "attention_mask": torch.tensor([pad([1] * len(e["input_ids"]), 0) for e in batch], device=device),
            "labels": torch.tensor([pad(e["labels"], IGNORE) for e in batch], device=device)}


def trained_count(example: dict) -> int:
    """Tokens of one example that carry loss: a decoder's first label is never predicted (position t
    predicts t+1); every target token of an encoder-decoder is (the decoder starts from its start token)."""
    labels = example["labels"] if example.get("seq2seq") else example["labels"][1:]
    return sum(1 for label in labels if label != IGNORE)


def loss_sum(model, inputs: dict) -> tuple[torch.Tensor, int]:
    """Sum of token losses and the number of trained tokens, with the head run only where needed."""
    labels = inputs.pop("labels")
    targets = labels[:, 1:]
    keep = targets != IGNORE
    n = int(keep.sum())
    if n == 0:
        return torch.zeros((), device=labels.device, requires_grad=True), 0
    if labels.shape[0] == 1:
        positions = keep[0].nonzero().squeeze(1)  # position t predicts token t+1
        logits = model(**inputs, logits_to_keep=positions, use_cache=False).logits
        # a view, not `[0]`: select's backward would zero-fill and copy a (kept x vocab) tensor
        logits = logits.view(-1, logits.shape[-1])
        loss = F.cross_entropy(logits.float(), targets[0, positions], reduction="sum")
    else:
        logits = model(**inputs, use_cache=False).logits[:, :-1]
        loss = F.cross_entropy(logits[keep].float(), targets[keep], reduction="sum")
    return loss, n
