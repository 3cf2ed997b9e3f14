"""Pre-flight: show what training will see, and refuse data it could not learn from.

`preview_examples` is the Data tab's first look (examples as chat messages,
the detected format, what preprocessing did). `run_preflight` tokenizes like
a real run (same code as core/data.prepare) and reports token counts, the
share of tokens trained on, lengths, truncation and one example with its
trained-on part marked; `ok` is False exactly when prepare() would refuse the
run, with the same reason. `format_report` is the same report for a terminal,
in any catalogue language; the report's texts are Msgs (see core/data/__init__.py).
"""
from __future__ import annotations

import copy
import math
from collections import Counter

from core.config import RunConfig
from core.data.pipeline import (
    ANSWER_CUT,
    dropped_text,
    encode_examples,
    load_examples,
    split,
    split_steps,
    token_stats,
    trained_share_problem,
)
from core.data.tokenize import IGNORE, apply_template_choice
from core.doctor import diagnose
from core.errors import DataError
from core.messages import Msg, localize, msg

SAMPLE_LIMIT = 2000  # examples tokenized for the report; bigger sets are estimated from an even sample
LOW_SHARE = 0.05
FEW_EXAMPLES = 20


def preview_examples(config: RunConfig, n: int = 5, token: str | None = None) -> tuple[list[dict], str, dict]:
    """(first n examples as {"messages": [...]} or {"text": ...}, detected format, report).

    Raises DataError (its message is meant for the user) when the data cannot be used.
    """
    examples, fmt, report = load_examples(config, token)
    train, validation = split(examples, config)
    report = {**report, "examples": len(train), "validation_examples": len(validation),
              "steps": report["steps"] + split_steps(len(examples), len(train), len(validation), config)}
    return copy.deepcopy(examples[:n]), fmt, report


def run_preflight(config: RunConfig, tokenizer, token: str | None = None) -> dict:
    """The token-level report described in the module docstring; never raises for bad data."""
    report = _blank(config)
    try:
        examples, fmt, loaded = load_examples(config, token)
    except DataError as err:
        found = diagnose(err)  # what + what to do as a Msg (each reader shows it in its language); the detail apart
        return {**report, "problems": [found.message], "problem_detail": found.detail}
    tokenizer = _with_template(tokenizer, config)
    train, validation = split(examples, config)
    sample, scale = _sample(train)
    encoded, dropped = encode_examples(sample, tokenizer, config)
    val_encoded, val_dropped = encode_examples(_sample(validation, SAMPLE_LIMIT // 4)[0], tokenizer, config)
    val_scale = len(validation) / max(1, min(len(validation), SAMPLE_LIMIT // 4))
    stats = token_stats(encoded)
    for key in ("examples", "tokens", "trained_tokens", "truncated"):
        stats[key] = round(stats[key] * scale)
    dropped = Counter(loaded["dropped"]) + _scaled(dropped, scale) + _scaled(val_dropped, val_scale)
    report.update(loaded)
    report.update(stats, format=fmt, dropped=dict(dropped), validation_examples=round(len(val_encoded) * val_scale),
                  steps=loaded["steps"] + split_steps(len(examples), len(train), len(validation), config),
                  sampled=len(sample) if scale > 1 else 0,
                  histogram=histogram([e["length"] for e in encoded], config.max_length),
                  highlighted=highlight(examples[0], tokenizer, config))
    report["packing"] = config.packing and not stats.get("seq2seq")  # encoder-decoder batches are padded
    blocking = trained_share_problem(report, config)
    report["ok"] = not blocking
    report["problems"] = ([blocking] if blocking else []) + _warnings(report, encoded, config, fmt)
    return report


def _blank(config: RunConfig) -> dict:
    return {"format": "", "format_name": "", "rows": 0, "kept": 0, "dropped": {}, "examples": 0,
            "validation_examples": 0, "tokens": 0, "trained_tokens": 0, "trained_share": 0.0, "truncated": 0,
            "length_min": 0, "length_p50": 0, "length_p90": 0, "length_max": 0, "histogram": [], "ok": False,
            "problems": [], "highlighted": [], "steps": [], "notes": [], "layout": "", "columns": {}, "sampled": 0,
            "max_length": config.max_length, "packing": config.packing, "train_on": config.train_on}


def _with_template(tokenizer, config: RunConfig):
    """The tokenizer as a run will use it; a copy when the template choice would change it."""
    if config.chat_template == "auto" and tokenizer.chat_template:
        return tokenizer
    tokenizer = copy.deepcopy(tokenizer)
    apply_template_choice(tokenizer, config.chat_template)
    return tokenizer


def _sample(examples: list, limit: int | None = None) -> tuple[list, float]:
    """At most `limit` examples spread evenly over the list, and the factor that scales counts back up."""
    limit = limit or SAMPLE_LIMIT
    if len(examples) <= limit:
        return examples, 1.0
    step = len(examples) / limit
    return [examples[int(i * step)] for i in range(limit)], step


def _scaled(counts: Counter, scale: float) -> Counter:
    return Counter({why: round(n * scale) for why, n in counts.items()})


def histogram(lengths: list[int], max_length: int, buckets: int = 8) -> list[tuple[str, int]]:
    """Token lengths (before cutting) in round-width buckets, plus one for examples that will be cut."""
    if not lengths:
        return []
    top = max(1, min(max_length, max(lengths)))
    low = min(min(lengths), top)
    width = _round_up(math.ceil((top - low + 1) / buckets))
    start = (low - 1) // width * width
    edges = list(range(start, top, width))
    counts = Counter(min(len(edges) - 1, (n - 1 - start) // width) for n in lengths if n <= max_length)
    label = lambda lo: f"{lo + 1}" if width == 1 else f"{lo + 1}-{min(lo + width, max_length)}"
    rows = [(label(lo), counts.get(i, 0)) for i, lo in enumerate(edges)]
    over = sum(1 for n in lengths if n > max_length)
    return rows + ([(msg("data.hist_cut", max_length=max_length), over)] if over else [])


def _round_up(n: int) -> int:
    """The next 'round' width: 1, 2, 5, 10, 20, 50, …"""
    scale = 1
    while True:
        for step in (1, 2, 5):
            if step * scale >= n:
                return step * scale
        scale *= 10


def highlight(example: dict, tokenizer, config: RunConfig) -> list[tuple[str, bool]]:
    """One example as the model sees it: (text piece, trained on?) runs, cut at max_length."""
    encoded, _ = encode_examples([example], tokenizer, config)
    if not encoded:
        # Its answer did not survive max_length: show it untrained, which is what happens.
        encoded, _ = encode_examples([example], tokenizer, config.replace(train_on="all"))
        encoded = [{**encoded[0], "labels": [IGNORE] * len(encoded[0]["labels"])}] if encoded else []
    if not encoded:
        return []
    item = encoded[0]
    if item.get("seq2seq"):  # encoder-decoder: the source is read, never predicted; every target token is trained
        return [(tokenizer.decode(item["input_ids"]), False), (tokenizer.decode(item["labels"]), True)]
    pieces: list[tuple[list[int], bool]] = []
    for i, (tok, label) in enumerate(zip(item["input_ids"], item["labels"])):
        trained = i > 0 and label != IGNORE  # the first token is never predicted
        if pieces and pieces[-1][1] == trained:
            pieces[-1][0].append(tok)
        else:
            pieces.append(([tok], trained))
    return [(tokenizer.decode(ids), trained) for ids, trained in pieces]


def _warnings(report: dict, encoded: list[dict], config: RunConfig, fmt: str) -> list[Msg]:
    out = []
    n, cut = report["examples"], report["truncated"]
    if cut and n:
        answers_lost = config.train_on == "answers" and fmt != "text"
        out.append(msg("data.warn.truncated_answers" if answers_lost else "data.warn.truncated", cut=cut, n=n,
                       share=f"{cut / n:.0%}", max_length=config.max_length,
                       longest=max(e["length"] for e in encoded)))
    if report["dropped"].get(ANSWER_CUT) and n:
        out.append(msg("data.warn.answers_cut", n=report["dropped"][ANSWER_CUT]))
    for why, k in report["dropped"].items():
        if getattr(why, "key", "") == "data.drop.template_refused":
            out.append(msg("data.warn.template_refused", n=k, error=why.params.get("error", "")))
    if report["ok"] and report["trained_share"] < LOW_SHARE and config.train_on == "answers":
        out.append(msg("data.warn.low_share", share=f"{report['trained_share']:.1%}"))
    if 0 < n < FEW_EXAMPLES:
        out.append(msg("data.warn.one_example") if n == 1 else msg("data.warn.few_examples", n=n))
    lost = sum(k for why, k in report["dropped"].items() if why != ANSWER_CUT)  # that one has its own line
    if report["rows"] and lost > report["rows"] / 2:
        out.append(msg("data.warn.most_dropped", lost=lost, rows=report["rows"]))
    return out


# --- terminal output -----------------------------------------------------------------------
def format_report(report: dict, lang: str = "en") -> str:
    """The pre-flight report as plain text for the CLI (`python app.py train`), in `lang`."""
    say = lambda key, **params: localize(msg(key, **params), lang)
    if not report["rows"] and report["problems"]:  # nothing could be read: the reason alone, in one line
        first, *others = report["problems"]
        return "\n".join([say("data.report.not_ready", problem=first), *(f"! {localize(p, lang)}" for p in others)])
    layout = report.get("layout") or report["format_name"] or "?"
    lines = [say("data.report.data", rows=report["rows"], kept=report["kept"], layout=layout)]
    if report["dropped"]:
        lines.append(say("data.report.dropped", what=dropped_text(report["dropped"])))
    lines += [f"  - {localize(step, lang)}" for step in report.get("steps", [])]
    lines += [f"  * {localize(note, lang)}" for note in report.get("notes", [])]
    if report["examples"]:
        lines += _token_lines(report, say)
        lines += _bars([(localize(label, lang), count) for label, count in report["histogram"]])
    if report["highlighted"]:
        text = "".join(f"[[{piece}]]" if trained else piece for piece, trained in report["highlighted"])
        lines.append(say("data.report.example") + "\n    " + _clip(text, 600).replace("\n", "\n    "))
    lines += [f"! {localize(p, lang)}" for p in report["problems"]]
    if report["ok"]:
        lines.append(say("data.report.ready", share=f"{report['trained_share']:.1%}"))
    else:
        problem = report["problems"][0] if report["problems"] else msg("data.report.no_usable_data")
        lines.append(say("data.report.not_ready", problem=problem))
    return "\n".join(lines)


def _token_lines(report: dict, say) -> list[str]:
    """Examples, tokens and lengths: three lines of the terminal report."""
    if report["format"] == "text":
        what = msg("data.report.every_token")
    else:
        what = msg("data.report.answers_only") if report["train_on"] == "answers" else msg("data.report.everything")
    estimated = msg("data.report.estimated", n=report["sampled"]) if report.get("sampled") else ""
    packing = msg("data.report.on") if report["packing"] else msg("data.report.off")
    return [
        say("data.report.examples", train=report["examples"], validation=report["validation_examples"],
            packing=packing, what=what),
        say("data.report.tokens", tokens=f"{report['tokens']:,}", trained=f"{report['trained_tokens']:,}",
            share=f"{report['trained_share']:.1%}", max_length=report["max_length"], truncated=report["truncated"],
            estimated=estimated),
        say("data.report.lengths", min=report["length_min"], p50=report["length_p50"], p90=report["length_p90"],
            max=report["length_max"]),
    ]


def _bars(histogram: list, width: int = 30) -> list[str]:
    top = max((count for _, count in histogram), default=0) or 1
    pad = max((len(label) for label, _ in histogram), default=0)
    return [f"  {label:>{pad}} {'#' * math.ceil(width * count / top) if count else ''} {count}" for label, count in histogram]


def _clip(text: str, limit: int) -> str:
    return text if len(text) <= limit else text[:limit] + " …"
