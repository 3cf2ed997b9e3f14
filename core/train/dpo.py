"""The DPO loss and the trainer that steps on it: preference training on TuneLab's own loop.

Engine: core/train/trainer.py's loop with the DPO loss (Rafailov et al. 2023, the sigmoid loss: -log
σ(β·((log π(c) − log π_ref(c)) − (log π(r) − log π_ref(r))))), not trl's DPOTrainer.
bench/dpo_speed.py runs both on the same pairs, steps and threads. Measured on a 2-core Xeon that 8
helpers shared (load 10-17, so noisy): steps/s about equal (ours 0.024, trl 0.021, median of 2
interleaved rounds that disagreed), trl's reference pass faster (54 s vs 88 s for 16 pairs), ours at
half the peak process memory (2.1 GB vs 4.3 GB; trl pads chosen and rejected to one length, its
padding_free being disabled in 1.16; not profiled further). Speed does not decide it; what does:
this loop already writes the events the page shows (live curve, Stop within a micro-batch, resumable
checkpoints, the run list), keeps the reference scores in the run folder so Resume compares with the
same reference, and packs chosen and rejected into one padding-free row with the head run on answer
tokens only.

The loss adds `dpo_sft_weight` x the chosen answers' mean token NLL to the DPO loss (RPO; see dpo_loss).

The reference model is the *starting* model: the chosen run's adapter as it was before this
run (or the bare base when no run is given). Its log-probabilities of every pair are
computed once, before the first step, with the same weights (no second model in memory, no
second forward pass per step) and kept in the run folder, so a resumed run compares with the
same reference rather than with its half-trained self. Disabling the adapter instead would
make the base the reference, which pulls the model back towards the base and undoes what
the SFT run taught (the facts), which is not what "prefer these answers" means.

What a DPO run takes from the runs folder (the start adapter, the votes, its config): core/train/preference.py.
"""
from __future__ import annotations

import json
import math

import torch
import torch.nn.functional as F

from core.config import RunConfig
from core.data.tokenize import IGNORE
from core.errors import TrainingDiverged
from core.messages import event_fields, msg
from core.train.batches import collate
from core.train.checkpoints import data_fingerprint
from core.train.fastpath import fast_attention
from core.train.trainer import Trainer

REFERENCE_FILE = "reference_logps.json"


def sequence_logps(model, batch: list[dict], config: RunConfig, device: str) -> torch.Tensor:
    """Summed answer log-probs of each pair's chosen and rejected sequence: [c1, r1, c2, r2, ...]."""
    sides = [{"input_ids": p["input_ids"][a:b], "labels": p["labels"][a:b]}
             for p in batch for a, b in ((0, p["split"]), (p["split"], len(p["input_ids"])))]
    inputs = collate(sides, config, device)
    labels = inputs.pop("labels")
    targets = labels[:, 1:]
    keep = targets != IGNORE
    if labels.shape[0] == 1:  # packed: the head runs only where an answer token is predicted
        positions = keep[0].nonzero().squeeze(1)
        logits = model(**inputs, logits_to_keep=positions, use_cache=False).logits
        logps = -F.cross_entropy(logits.view(-1, logits.shape[-1]).float(), targets[0, positions], reduction="none")
        ends = inputs["cu_seq_lens_q"][1:].to(positions.device)
        owner = torch.searchsorted(ends, positions + 1, right=True)  # which sequence token t+1 belongs to
        return torch.zeros(len(sides), device=logps.device).index_add(0, owner, logps)
    logits = model(**inputs, use_cache=False).logits[:, :-1].float()
    picked = torch.gather(logits.log_softmax(-1), 2, targets.clamp(min=0).unsqueeze(-1)).squeeze(-1)
    return (picked * keep).sum(1)


def chosen_tokens(batch: list[dict]) -> torch.Tensor:
    """How many answer tokens each pair's chosen side has (the ones sequence_logps sums over)."""
    return torch.tensor([sum(label != IGNORE for label in p["labels"][1:p["split"]]) for p in batch],
                        dtype=torch.float32)


def dpo_loss(logps: torch.Tensor, reference: torch.Tensor, beta: float, sft_weight: float = 0.0,
             n_chosen: torch.Tensor | None = None) -> tuple[torch.Tensor, torch.Tensor]:
    """(per-pair loss, per-pair reward margin); logps and reference are [c, r] interleaved.

    The loss is the sigmoid DPO loss plus `sft_weight` x the chosen answer's mean token NLL (RPO, Pang
    et al. 2024; trl's rpo_alpha). Why: DPO alone only moves the *difference* between chosen and
    rejected; on the demo pairs it shortened answers but never produced the sign-off the pairs ask for
    (0% -> 0% in 28 steps) while the facts slipped; the NLL term makes the chosen answers likely in
    themselves, which anchors the facts they state.
    """
    ratio = logps - reference
    margin = beta * (ratio[0::2] - ratio[1::2])
    loss = -F.logsigmoid(margin)
    if sft_weight:
        loss = loss + sft_weight * (-logps[0::2] / n_chosen.to(logps.device).clamp(min=1))
    return loss, margin.detach()


class PreferenceTrainer(Trainer):
    """Trainer whose step is the DPO loss over pairs; the reference log-probs are computed once (see above)."""

    def __init__(self, model, tokenizer, train, validation, config, log, run_dir, stop_event, **kw):
        super().__init__(model, tokenizer, train, validation, config, log, run_dir, stop_event, **kw)
        # the DPO loss falls from log 2 (plus the SFT term's NLL) towards 0 as easy pairs are learnt: a fast fall
        # is learning, not a fault (SFT's warning); "near zero while the validation loss rises" still warns of overfitting
        self.loss_watch.FACTOR = math.inf
        self._attach_reference()

    def _attach_reference(self) -> None:
        """ref_logps on every pair: from the run folder when this data's were computed before (a resume)."""
        path = self.run_dir / REFERENCE_FILE
        pairs = self.train_set + self.val_set
        fingerprint = data_fingerprint(self.train_set, self.val_set)
        saved = json.loads(path.read_text()) if path.exists() else {}
        if saved.get("fingerprint") != fingerprint:
            self.log.append("progress", **event_fields(msg("preference.reference", n=len(pairs))))
            self._tune_threads()  # on a busy CPU fewer threads run faster: measured before this pass, as before training
            saved = {"fingerprint": fingerprint, "logps": self._reference_logps(pairs)}
            path.write_text(json.dumps(saved))
        for pair, values in zip(pairs, saved["logps"]):
            pair["ref_logps"] = values

    @torch.no_grad()
    def _reference_logps(self, pairs: list[dict]) -> list[list[float]]:
        self.model.eval()  # no dropout: the reference is the starting model itself
        out = []
        with fast_attention(self.raw):
            for at in range(0, len(pairs), self.config.batch_size):
                with self.autocast:
                    logps = sequence_logps(self.model, pairs[at: at + self.config.batch_size], self.config, self.device)
                out += logps.view(-1, 2).tolist()
        self.model.train()
        return out

    def _pair_loss(self, batch: list[dict]) -> tuple[torch.Tensor, torch.Tensor]:
        reference = torch.tensor([v for p in batch for v in p["ref_logps"]], device=self.device)
        with self.autocast:
            logps = sequence_logps(self.model, batch, self.config, self.device)
        return dpo_loss(logps.float(), reference, self.config.dpo_beta, self.config.dpo_sft_weight,
                        chosen_tokens(batch))

    def _optimizer_step(self, group: list[list[dict]], window) -> float | None:
        n_pairs = sum(len(b) for b in group)
        total = 0.0
        for batch in group:
            if self._stopping():
                self.optimizer.zero_grad(set_to_none=True)
                return None
            losses, _ = self._pair_loss(batch)
            self._backward(losses.sum() / n_pairs)  # the step's mean over pairs, whatever the accumulation
            total += float(losses.detach().sum())
        window.tokens += sum(len(p["input_ids"]) for b in group for p in b)
        if not math.isfinite(total):
            self.optimizer.zero_grad(set_to_none=True)
            raise TrainingDiverged(self.step + 1, "NaN" if math.isnan(total) else "inf")
        window.grad_norm = self._clip_and_step()
        self.step += 1
        window.loss += total / n_pairs
        window.steps += 1
        return total

    @torch.no_grad()
    def evaluate(self) -> float | None:
        """Validation DPO loss, and the share of validation pairs whose chosen answer now wins."""
        if not self.val_set:
            return None
        self.model.eval()
        losses, wins = [], 0
        for at in range(0, len(self.val_set), self.config.batch_size):
            loss, margin = self._pair_loss(self.val_set[at: at + self.config.batch_size])
            losses += loss.tolist()
            wins += int((margin > 0).sum())
        val_loss = sum(losses) / len(losses)
        self.log.append("eval", step=self.step, val_loss=round(val_loss, 5),
                        preference_accuracy=round(wins / len(losses), 4))
        self.loss_watch.val_losses.append(val_loss)
        self.model.train()
        return val_loss
