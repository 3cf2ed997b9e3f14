"""Preference pairs for DPO: from `prompt`/`chosen`/`rejected` rows to token ids, and their report.

core/data/formats.py detects trl's standard preference layout and core/data/converters.py maps each row to
`{"prompt": [messages], "chosen": [messages], "rejected": [messages]}`. Here those pairs
are tidied (clean text, a system prompt, no pair whose two answers are the same, no
duplicates), split like SFT examples, and tokenized: each side is the prompt rendered with
the model's chat template followed by its answer, and only the answer's tokens carry labels
(DPO compares the log-probability of the answers, never of the prompt). A tokenized pair
is one item `{"input_ids", "labels", "split"}`: the chosen sequence, then the rejected one
starting at `split`, so token counts and the data fingerprint of a run work as for SFT.

`pairs_report` is the Data tab's and the CLI's pre-flight for preference data, in the same
shape as core.data.preflight.run_preflight's report (plus `pairs`: the first few, for the
side-by-side preview). Callers may pass `rows` (e.g. a run's votes) instead of a dataset.
"""
from __future__ import annotations

import copy
import json
from collections import Counter
from collections.abc import Callable

from core.config import RunConfig
from core.data.converters import to_examples
from core.data.formats import detect_layout
from core.data.pipeline import ANSWER_CUT, PreparedData, end_of_turn_ids, split, split_steps, token_stats
from core.data.pipeline import _untrain_after_end as untrain_after_end
from core.data.preflight import histogram
from core.data.preprocess import clean_text
from core.data.sources import load_rows
from core.data.tokenize import IGNORE, encode_example, render
from core.errors import DataError
from core.messages import Msg, msg

Progress = Callable[[str], None]
SIDES = ("chosen", "rejected")


def is_preference_data(config: RunConfig, token: str | None = None, rows: list[dict] | None = None) -> bool:
    """Whether the configured data (or `rows`) is in the preference layout; False when it cannot be read."""
    try:
        rows = rows if rows is not None else load_rows(config, token)
        return detect_layout(rows, config).format == "preference"
    except DataError:
        return False


def load_pairs(config: RunConfig, token: str | None = None, rows: list[dict] | None = None) -> tuple[list[dict], dict]:
    """(tidied pairs in file order, report of rows kept/dropped and steps); DataError when none is left."""
    rows = rows if rows is not None else load_rows(config, token)
    layout = detect_layout(rows, config)
    pairs, report = to_examples(rows, layout.format, config, layout)  # refuses SFT data for a DPO run, by name
    kept, dropped, steps = _tidy(pairs, config)
    report["dropped"] = dict(Counter(report["dropped"]) + dropped)
    report["kept"], report["steps"] = len(kept), steps
    if not kept:
        raise DataError(msg("preference.no_pairs", rows=report["rows"]))
    return kept, report


def _tidy(pairs: list[dict], config: RunConfig) -> tuple[list[dict], Counter, list[Msg]]:
    """Clean the text, add the system prompt, drop pairs that cannot teach a preference."""
    kept, dropped, seen = [], Counter(), set()
    for pair in pairs:
        if config.clean_text:
            pair = {part: [{**m, "content": clean_text(m["content"])} for m in turns] for part, turns in pair.items()}
        if config.system_prompt.strip() and pair["prompt"][0]["role"] != "system":
            pair["prompt"] = [{"role": "system", "content": config.system_prompt.strip()}, *pair["prompt"]]
        key = json.dumps(pair, ensure_ascii=False, sort_keys=True)
        if pair["chosen"] == pair["rejected"]:
            dropped[msg("preference.drop.same")] += 1
        elif not all(m["content"].strip() for side in SIDES for m in pair[side]):
            dropped[msg("data.drop.empty")] += 1
        elif config.drop_duplicates and key in seen:
            dropped[msg("data.drop.duplicates")] += 1
        else:
            kept.append(pair)
        seen.add(key)
    steps = [msg("data.step.cleaned", n=len(pairs))] if config.clean_text else []
    return kept, dropped, steps + [msg("preference.step.dropped", n=sum(dropped.values()))]


# --- tokenization ------------------------------------------------------------------------
def encode_pairs(pairs: list[dict], tokenizer, config: RunConfig) -> tuple[list[dict], Counter]:
    """Tokenized pairs (see the module docstring) and the pairs dropped, with reasons."""
    ends = end_of_turn_ids(tokenizer)
    encoded, dropped = [], Counter()
    for pair in pairs:
        try:
            sides = [_encode_side(tokenizer, pair["prompt"], pair[side], config, ends) for side in SIDES]
        except Exception as err:  # a chat template may raise on any role order it dislikes
            dropped[msg("data.drop.template_refused", error=str(err).splitlines()[0][:120] if str(err) else "")] += 1
            continue
        if any(all(label == IGNORE for label in side["labels"][1:]) for side in sides):
            dropped[ANSWER_CUT] += 1  # an answer cut off entirely: nothing to compare
            continue
        chosen, rejected = sides
        encoded.append({"input_ids": chosen["input_ids"] + rejected["input_ids"],
                        "labels": chosen["labels"] + rejected["labels"], "split": len(chosen["input_ids"]),
                        "truncated": chosen["truncated"] or rejected["truncated"],
                        "length": max(chosen["length"], rejected["length"])})
    return encoded, dropped


def _encode_side(tokenizer, prompt: list[dict], answer: list[dict], config: RunConfig, ends: set[int]) -> dict:
    """The prompt and one answer; labels on the answer only (an earlier assistant turn is context)."""
    full = encode_example(tokenizer, {"messages": prompt + answer}, 1 << 30, "answers")
    ids, labels = full["input_ids"], full["labels"]
    head = tokenizer(render(tokenizer, prompt, add_generation_prompt=True), add_special_tokens=False)["input_ids"]
    if ids[: len(head)] == head:  # else the template rewrote the prompt: keep its answers-only labels
        labels = [IGNORE] * len(head) + labels[len(head):]
    untrain_after_end(labels, ends, tokenizer)
    limit = config.max_length  # trl's "keep_start": the prompt is kept, the answer's end is cut
    return {"input_ids": ids[:limit], "labels": labels[:limit], "truncated": len(ids) > limit, "length": len(ids)}


def prepare_pairs(config: RunConfig, tokenizer, token: str | None = None, progress: Progress | None = None,
                  rows: list[dict] | None = None) -> PreparedData:
    """Tokenized train/validation pairs for a DPO run; DataError when none is usable."""
    return _prepared(config, tokenizer, token, progress, rows)[0]


def _prepared(config: RunConfig, tokenizer, token: str | None, progress: Progress | None,
              rows: list[dict] | None) -> tuple[PreparedData, list[dict]]:
    if progress:
        progress(msg("data.loading", dataset=config.dataset))
    pairs, report = load_pairs(config, token, rows)
    train_pairs, val_pairs = split(pairs, config)
    if progress:
        progress(msg("data.tokenizing", n=len(pairs)))
    train, dropped_train = encode_pairs(train_pairs, tokenizer, config)
    validation, dropped_val = encode_pairs(val_pairs, tokenizer, config)
    if not train:
        raise DataError(msg("data.all_answers_cut", max_length=config.max_length))
    stats = {**report, "dropped": dict(Counter(report["dropped"]) + dropped_train + dropped_val),
             **token_stats(train), "examples": len(train), "validation_examples": len(validation),
             "packing": config.packing, "train_on": "answers"}
    return PreparedData(train=train, validation=validation, format="preference", stats=stats), pairs


def blank_report(config: RunConfig) -> dict:
    """A preference report with nothing read yet (run_preflight's keys, plus `pairs`)."""
    return {"format": "preference", "format_name": "", "rows": 0, "kept": 0, "dropped": {}, "examples": 0,
            "validation_examples": 0, "tokens": 0, "trained_tokens": 0, "trained_share": 0.0, "truncated": 0,
            "length_min": 0, "length_p50": 0, "length_p90": 0, "length_max": 0, "histogram": [], "ok": False,
            "problems": [], "highlighted": [], "steps": [], "notes": [], "layout": "", "columns": {}, "sampled": 0,
            "max_length": config.max_length, "packing": config.packing, "train_on": "answers", "pairs": []}


def pairs_report(config: RunConfig, tokenizer, token: str | None = None, rows: list[dict] | None = None,
                 n_preview: int = 5) -> dict:
    """The pre-flight report for preference data (run_preflight's keys, plus `pairs`); never raises for bad data.

    With objective `sft` the pairs are still shown, with the problem that says what to set.
    """
    report = blank_report(config)
    wrong = [] if config.objective == "dpo" else [msg("preference.needs_dpo")]
    try:
        data, pairs = _prepared(config.replace(objective="dpo"), tokenizer, token, None, rows)
    except DataError as err:
        return {**report, "problems": wrong + [err.message]}
    report.update(data.stats, format="preference", pairs=copy.deepcopy(pairs[:n_preview]),
                  steps=data.stats["steps"] + split_steps(len(pairs), len(data.train), len(data.validation), config),
                  histogram=histogram([e["length"] for e in data.train], config.max_length))
    report["problems"] = wrong
    report["ok"] = not wrong
    return report
