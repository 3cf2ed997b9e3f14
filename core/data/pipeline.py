"""Training data: load from a source, map to chat messages, preprocess, split, tokenize.

The pipeline, each stage in its own module:
  core/data/sources.py     rows from builtin:demo, a file or folder, or the Hub
  core/data/formats.py     detect the layout
  core/data/converters.py  map rows to {"messages": [...]} / {"text": ...}
  core/data/preprocess.py  clean, tidy turns, filter, de-duplicate
  here                subset, shuffle, validation split, tokenization and token statistics
  core/data/tokenize.py    rendering with the model's chat template and answers-only labels
`prepare()` is what a training job calls; core/data/preflight.py reuses the same
steps to show the user what training will see before it starts.
"""
from __future__ import annotations

import random
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from core.config import RunConfig
from core.data.converters import to_examples
from core.data.formats import detect_format, detect_layout
from core.data.preprocess import preprocess
from core.data.sources import BUILTIN_DIR, load_rows
from core.data.tokenize import IGNORE, chunk_text_examples, encode_example, encode_seq2seq, seq2seq_pairs, seq2seq_source
from core.errors import DataError, RowProblem
from core.messages import Msg, join, msg
from core.models import config_is_seq2seq

Progress = Callable[[str], None]
__all__ = ["DataError", "PreparedData", "load_examples", "prepare", "split", "encode_examples", "token_stats",
           "trained_share_problem", "dropped_text", "detect_format", "to_examples", "load_rows", "BUILTIN_DIR"]

MIN_TRAINED_SHARE = 0.005  # below this the run would learn (almost) nothing: refused
# A drop reason (a Msg: equal to its English text, so it is also the key in stats["dropped"]).
ANSWER_CUT = msg("data.drop.answer_cut")
SEQ2SEQ_TEXT = msg("seq2seq.drop_text")  # plain text has no (question, answer) pair for an encoder-decoder
# End-of-turn tokens of common chat templates; whatever the template prints after one
# (usually a newline) is layout, not part of the answer.
END_OF_TURN = ("<|im_end|>", "<|eot_id|>", "<end_of_turn>", "<|end|>", "</s>", "<|endoftext|>", "<|end_of_text|>")


@dataclass
class PreparedData:
    train: list[dict]
    validation: list[dict]
    format: str
    stats: dict = field(default_factory=dict)


def load_examples(config: RunConfig, token: str | None = None, progress: Progress | None = None) -> tuple[list[dict], str, dict]:
    """(preprocessed examples in file order, format, report of rows kept/dropped, steps and column mapping)."""
    if progress:
        progress(msg("data.loading", dataset=config.dataset))
    rows = load_rows(config, token)
    layout = detect_layout(rows, config)
    mapped, report = to_examples(rows, layout.format, config, layout)
    examples, done = preprocess(mapped, config)
    report["dropped"] = dict(Counter(report["dropped"]) + Counter(done["dropped"]))
    report["kept"] = len(examples)
    report["steps"] = done["steps"]
    if not examples:
        raise DataError(_nothing_left(config, report))
    return examples, layout.format, report


def dropped_text(dropped: dict, sep: str = "; ") -> Msg:
    """The drop reasons and their counts as one message ('reason: n; ...'), each reason localizable."""
    return join([msg("data.dropped_count", reason=why, n=n) for why, n in dropped.items()], sep=sep)


def _nothing_left(config: RunConfig, report: dict) -> Msg:
    reasons = dropped_text(report["dropped"]) if report["dropped"] else msg("data.no_usable_rows")
    keys = {getattr(why, "key", "") for why in report["dropped"]}
    if "data.drop.huge" in keys:
        advice = msg("data.advice.split_rows")
    elif keys & {"data.drop.too_short", "data.drop.too_long"}:
        advice = msg("data.advice.length_filters")
    else:
        advice = msg("data.advice.check_format")
    read = msg("data.one_row_read") if report["rows"] == 1 else msg("data.rows_read", n=report["rows"])
    name = Path(config.dataset).name if Path(config.dataset).exists() else config.dataset  # not the upload's temp path
    return msg("data.nothing_left", name=name, read=read, reasons=reasons, advice=advice)


def split(examples: list, config: RunConfig) -> tuple[list, list]:
    """Shuffle (seeded), keep the subset share, hold out the validation share."""
    examples = list(examples)
    if config.shuffle:
        random.Random(config.seed).shuffle(examples)
    if config.subset_share < 1:
        examples = examples[: max(1, int(len(examples) * config.subset_share))]
    n_val = 0
    if config.validation_share > 0 and len(examples) >= 10:  # fewer: every example is needed for training
        n_val = max(1, int(len(examples) * config.validation_share))
    return examples[n_val:], examples[:n_val]


def split_steps(n_examples: int, n_train: int, n_val: int, config: RunConfig) -> list[Msg]:
    """Plain-language lines for the subset, shuffle and split, for the preview."""
    steps = []
    if config.shuffle:
        steps.append(msg("data.step.shuffled", seed=config.seed))
    if config.subset_share < 1:
        steps.append(msg("data.step.subset", share=f"{config.subset_share:.0%}", n=n_train + n_val, total=n_examples))
    if config.validation_share > 0 and not n_val:
        steps.append(msg("data.step.no_validation"))
    else:
        steps.append(msg("data.step.split", train=n_train, validation=n_val))
    return steps


# --- tokenization ---------------------------------------------------------------------
def encode_examples(examples: list[dict], tokenizer, config: RunConfig,
                    seq2seq: bool | None = None) -> tuple[list[dict], Counter]:
    """Token ids and labels for each example, and the examples dropped (with reasons).

    Each result has `input_ids`, `labels` (-100 = not trained), `truncated` and
    `length` (tokens before cutting at max_length). Plain text is joined and cut
    into max_length blocks instead. For an encoder-decoder model (`seq2seq`; read from
    the model's config when None) see encode_seq2seq_examples.
    """
    if config_is_seq2seq(config) if seq2seq is None else seq2seq:
        return encode_seq2seq_examples(examples, tokenizer, config)
    if examples and all("text" in e for e in examples):
        blocks = chunk_text_examples(tokenizer, [e["text"] for e in examples], config.max_length)
        return [{**b, "length": len(b["input_ids"])} for b in blocks], Counter()
    ends = end_of_turn_ids(tokenizer)
    encoded, dropped = [], Counter()
    for example in examples:
        try:
            item = _encode(tokenizer, example, config)
        except RowProblem as problem:
            dropped[problem.message] += 1  # the Msg itself, so a reader can show the reason in its language
            continue
        if config.train_on == "answers":
            _untrain_after_end(item["labels"], ends, tokenizer)
            if all(label == IGNORE for label in item["labels"][1:]):
                dropped[ANSWER_CUT] += 1  # costs compute, teaches nothing
                continue
        encoded.append(item)
    return encoded, dropped


def _encode(tokenizer, example: dict, config: RunConfig) -> dict:
    try:
        full = encode_example(tokenizer, example, 1 << 30, config.train_on)
    except Exception as err:  # a chat template may raise on any role order it dislikes
        messages = example.get("messages", [])
        if not (messages and messages[0]["role"] == "system" and len(messages) > 1):
            raise RowProblem(msg("data.drop.template_refused", error=_short(err))) from None
        # Some templates (Gemma, Mistral) have no system role: put it in front of the first question.
        folded = [{"role": messages[1]["role"], "content": messages[0]["content"] + "\n\n" + messages[1]["content"]}]
        return _encode(tokenizer, {"messages": folded + messages[2:]}, config)
    n, limit = len(full["input_ids"]), config.max_length
    return {"input_ids": full["input_ids"][:limit], "labels": full["labels"][:limit], "truncated": n > limit,
            "length": n}


def encode_seq2seq_examples(examples: list[dict], tokenizer, config: RunConfig) -> tuple[list[dict], Counter]:
    """One (source, target) item per assistant reply (core/data/tokenize.py: seq2seq_pairs says why):
    `input_ids` the rendered history, `labels` the reply's ids + EOS, all trained (train_on has no
    prompt part to leave out: the source is never predicted). Each side is cut at max_length: the
    source keeps its end (the question being answered), the target its start; `length` is the
    longer side before cutting."""
    encoded, dropped, limit = [], Counter(), config.max_length
    for example in examples:
        if "text" in example:
            dropped[SEQ2SEQ_TEXT] += 1
            continue
        for history, answer in seq2seq_pairs(example["messages"]):
            try:
                source = seq2seq_source(tokenizer, history)
            except Exception as err:  # a chat template may raise on any role order it dislikes
                dropped[msg("data.drop.template_refused", error=_short(err))] += 1
                continue
            item = encode_seq2seq(tokenizer, source, answer)
            n_source, n_target = len(item["input_ids"]), len(item["labels"])
            item.update(input_ids=item["input_ids"][-limit:], labels=item["labels"][:limit],
                        truncated=max(n_source, n_target) > limit, length=max(n_source, n_target))
            encoded.append(item)
    return encoded, dropped


def _short(err: Exception) -> str:
    return (str(err).strip().splitlines() or [type(err).__name__])[0][:120]


def end_of_turn_ids(tokenizer) -> set[int]:
    vocab = tokenizer.get_vocab()
    ids = {vocab[t] for t in END_OF_TURN if t in vocab}
    return ids | ({tokenizer.eos_token_id} if tokenizer.eos_token_id is not None else set())


def _untrain_after_end(labels: list[int], ends: set[int], tokenizer) -> None:
    """Stop training on the whitespace a template prints after an end-of-turn token.

    The rendered reply is 'answer<|im_end|>\\n'; the newline is the template's
    layout, so the learned reply ends exactly at the end-of-turn token.
    """
    after_end = False
    for i, label in enumerate(labels):
        if label == IGNORE:
            after_end = False
        elif after_end and not tokenizer.decode([label]).strip():
            labels[i] = IGNORE
        else:
            after_end = label in ends


def token_stats(encoded: list[dict]) -> dict:
    if encoded and encoded[0].get("seq2seq"):
        return _seq2seq_stats(encoded)
    lengths = sorted(len(e["input_ids"]) for e in encoded)
    total = sum(lengths)
    # the first label of each example is never trained (the trainer packs examples; no loss across borders)
    trained = sum(sum(1 for label in e["labels"][1:] if label != IGNORE) for e in encoded)
    return _stats(encoded, lengths, total, trained)


def _seq2seq_stats(encoded: list[dict]) -> dict:
    """Source and target both count as tokens (the encoder runs over one, the decoder over the other);
    every target token is trained; the planner reads each side's longest (core/plan/memory.py)."""
    lengths = sorted(max(len(e["input_ids"]), len(e["labels"])) for e in encoded)
    total = sum(len(e["input_ids"]) + len(e["labels"]) for e in encoded)
    trained = sum(sum(1 for label in e["labels"] if label != IGNORE) for e in encoded)
    return {**_stats(encoded, lengths, total, trained), "seq2seq": True,
            "source_length_max": max(len(e["input_ids"]) for e in encoded),
            "target_length_max": max(len(e["labels"]) for e in encoded)}


def _stats(encoded: list[dict], lengths: list[int], total: int, trained: int) -> dict:
    pick = lambda q: lengths[min(len(lengths) - 1, int(q * len(lengths)))] if lengths else 0
    return {
        "examples": len(encoded), "tokens": total, "trained_tokens": trained,
        "trained_share": trained / total if total else 0.0,
        "truncated": sum(1 for e in encoded if e.get("truncated")),
        "length_min": lengths[0] if lengths else 0, "length_p50": pick(0.5),
        "length_p90": pick(0.9), "length_max": lengths[-1] if lengths else 0,
    }


def trained_share_problem(stats: dict, config: RunConfig) -> str:
    """The reason (a Msg) a run would learn nothing ('' when it is fine); prepare() refuses, preflight reports it."""
    if stats["examples"] and stats["trained_share"] >= MIN_TRAINED_SHARE:
        return ""
    cut = stats.get("dropped", {}).get(ANSWER_CUT, 0)
    if not stats["examples"] and cut:
        return msg("data.all_answers_cut", max_length=config.max_length)
    if not stats["examples"]:
        return msg("data.nothing_tokenized")
    return msg("data.trained_share_tiny", share=f"{stats['trained_share']:.1%}", max_length=config.max_length)


def prepare(config: RunConfig, tokenizer, token: str | None = None, progress: Progress | None = None) -> PreparedData:
    """Tokenized train/validation data for a run; DataError when training could not learn from it."""
    examples, fmt, report = load_examples(config, token, progress)
    train_examples, val_examples = split(examples, config)
    if progress:
        progress(msg("data.tokenizing", n=len(examples)))
    seq2seq = config_is_seq2seq(config, token)
    train, dropped_train = encode_examples(train_examples, tokenizer, config, seq2seq)
    validation, dropped_val = encode_examples(val_examples, tokenizer, config, seq2seq)
    dropped = Counter(report["dropped"]) + dropped_train + dropped_val
    stats = {**report, "dropped": dict(dropped), **token_stats(train), "validation_examples": len(validation),
             "packing": config.packing and not seq2seq, "train_on": config.train_on}
    problem = trained_share_problem(stats, config)
    if problem:
        raise DataError(problem)
    return PreparedData(train=train, validation=validation, format=fmt, stats=stats)
