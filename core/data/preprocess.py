"""Preprocessing of mapped examples: cleaning, turn tidying, filters, duplicates.

Every step is optional (RunConfig's data section) and every step that changes
or drops something is counted, so the preview and the pre-flight report can
say what happened ("dropped 12 duplicates", "removed 340 stopwords") before
anything trains. Subset, shuffle and the validation split are in core/data/pipeline.py
because they work on the whole list, not on one example.
"""
from __future__ import annotations

import functools
import json
import re
import unicodedata
from collections import Counter
from pathlib import Path

from core.config import RunConfig
from core.messages import Msg, msg

STOPWORDS_FILE = Path(__file__).parent / "builtin" / "korean_stopwords.txt"
# Control characters (but not tab/newline), zero-width spaces and stray byte-order marks.
_CONTROL = re.compile("[\x00-\x08\x0b\x0c\x0e-\x1f\x7f\u200b-\u200d\u2060\ufeff]")
_TRAILING_SPACE = re.compile(r"[ \t]+\n")
# Drop reasons counted together in the steps (compared by catalogue key: the text is for people).
_EMPTY_KEYS = ("data.drop.empty", "data.drop.one_sided")
_LENGTH_KEYS = ("data.drop.too_short", "data.drop.too_long")


def preprocess(examples: list[dict], config: RunConfig) -> tuple[list[dict], dict]:
    """(kept examples, {"dropped": {reason: n}, "steps": [plain-language lines]}); reasons and steps are Msgs."""
    counts: Counter = Counter()
    dropped: Counter = Counter()
    kept, seen = [], set()
    for example in examples:
        example = _tidy(example, config, counts)
        reason = reject_reason(example, config)
        if not reason and config.drop_duplicates:
            key = json.dumps(example, ensure_ascii=False, sort_keys=True)
            reason = msg("data.drop.duplicates") if key in seen else ""
            seen.add(key)
        if reason:
            dropped[reason] += 1
        else:
            kept.append(example)
    return kept, {"dropped": dict(dropped), "steps": _steps(config, counts, dropped)}


def clean_text(text: str) -> str:
    """NFC (Korean typed on macOS arrives decomposed), one newline style, no control characters, trimmed."""
    text = unicodedata.normalize("NFC", text).replace("\r\n", "\n").replace("\r", "\n")
    return _TRAILING_SPACE.sub("\n", _CONTROL.sub("", text)).strip()


@functools.lru_cache(maxsize=1)
def korean_stopwords() -> frozenset[str]:
    """The shipped list: one word a line, '#' starts a comment."""
    lines = STOPWORDS_FILE.read_text(encoding="utf-8").splitlines()
    return frozenset(w for w in (line.split("#", 1)[0].strip() for line in lines) if w)


@functools.lru_cache(maxsize=1)
def _stopword_pattern() -> re.Pattern:
    words = sorted(korean_stopwords(), key=len, reverse=True)
    # Whole words only: Korean particles are glued to their word, so '이' inside '이것' must stay.
    return re.compile(r"(?<!\S)(?:" + "|".join(map(re.escape, words)) + r")(?=[\s,.!?…]|$)[,]?[ \t]*")


def remove_stopwords(text: str) -> tuple[str, int]:
    """(text without the listed Korean stopwords, how many were removed)."""
    result, n = _stopword_pattern().subn("", text)
    return (result.strip() if n else text), n


def _tidy(example: dict, config: RunConfig, counts: Counter) -> dict:
    if "text" in example:
        return {"text": _fix(example["text"], config, counts)}
    messages = [{"role": m["role"], "content": _fix(m["content"], config, counts)} for m in example["messages"]]
    messages = [m for m in messages if m["content"].strip()]
    tidy = _normalise_turns(messages, Counter())
    if not any(m["role"] == "assistant" for m in tidy):
        return {"messages": messages}  # one-sided: leave it as it is, so the drop reason says so
    messages = _normalise_turns(messages, counts)
    if config.system_prompt and messages and messages[0]["role"] != "system":
        messages.insert(0, {"role": "system", "content": config.system_prompt})
        counts["system prompt"] += 1
    return {"messages": messages}


def _fix(text: str, config: RunConfig, counts: Counter) -> str:
    if config.clean_text:
        cleaned = clean_text(text)
        counts["cleaned"] += cleaned != text
        text = cleaned
    if config.korean_stopwords:
        text, n = remove_stopwords(text)
        counts["stopwords"] += n
    return text


def _normalise_turns(messages: list[dict], counts: Counter) -> list[dict]:
    """Merge repeated speakers, drop replies before the first question and questions after the last reply.

    Many chat templates (Llama 2, Mistral, Gemma) refuse conversations that do not
    alternate user/assistant; a trailing question has no answer to learn from.
    """
    merged: list[dict] = []
    for m in messages:
        if merged and merged[-1]["role"] == m["role"]:
            merged[-1] = {"role": m["role"], "content": merged[-1]["content"] + "\n\n" + m["content"]}
            counts["merged"] += 1
        else:
            merged.append(dict(m))
    system = [m for m in merged[:1] if m["role"] == "system"]
    body = merged[len(system):]
    while body and body[0]["role"] != "user":
        body.pop(0)
        counts["trimmed"] += 1
    while body and body[-1]["role"] != "assistant":
        body.pop()
        counts["trimmed"] += 1
    return system + body


def answer_chars(example: dict) -> int:
    if "text" in example:
        return len(example["text"])
    return sum(len(m["content"]) for m in example["messages"] if m["role"] == "assistant")


def total_chars(example: dict) -> int:
    if "text" in example:
        return len(example["text"])
    return sum(len(m["content"]) for m in example["messages"])


def reject_reason(example: dict, config: RunConfig) -> str:
    """Why this example is dropped ('' to keep it); the reason (a Msg) is a count key in the report."""
    if "text" in example:
        if not example["text"].strip():
            return msg("data.drop.empty")
    else:
        roles = {m["role"] for m in example["messages"]}
        if not roles - {"system"}:
            return msg("data.drop.empty")
        if "user" not in roles or "assistant" not in roles:
            return msg("data.drop.one_sided")
    if answer_chars(example) < config.min_chars:
        return msg("data.drop.too_short", n=config.min_chars)
    if config.max_chars and total_chars(example) > config.max_chars:
        return msg("data.drop.too_long", n=config.max_chars)
    return ""


def _count_of(dropped: Counter, keys: tuple) -> int:
    """How many were dropped for the reasons with these catalogue keys."""
    return sum(n for why, n in dropped.items() if getattr(why, "key", "") in keys)


def _steps(config: RunConfig, counts: Counter, dropped: Counter) -> list[Msg]:
    steps = []
    if config.clean_text:
        steps.append(msg("data.step.cleaned", n=counts["cleaned"]))
    if config.korean_stopwords:
        steps.append(msg("data.step.stopwords", n=counts["stopwords"]))
    if counts["merged"] or counts["trimmed"]:
        steps.append(msg("data.step.tidied", merged=counts["merged"], trimmed=counts["trimmed"]))
    if counts["system prompt"]:
        steps.append(msg("data.step.system_prompt", n=counts["system prompt"]))
    steps.append(msg("data.step.dropped_empty", n=_count_of(dropped, _EMPTY_KEYS)))
    if config.drop_duplicates:
        steps.append(msg("data.step.duplicates", n=_count_of(dropped, ("data.drop.duplicates",))))
    limits = [msg("data.limit.min", n=config.min_chars)] if config.min_chars > 1 else []
    limits += [msg("data.limit.max", n=config.max_chars)] if config.max_chars else []
    if limits:
        steps.append(msg("data.step.length_filter", limits=limits, n=_count_of(dropped, _LENGTH_KEYS)))
    return steps
