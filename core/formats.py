"""Recognising a dataset's layout and mapping rows to chat messages.

Formats: chat `messages` (OpenAI style), ShareGPT `conversations`, Alpaca /
KoAlpaca (instruction, input, output), question/answer pairs in any two
columns (Korean names included), one text column with turn markers such as
`<usr> … <bot> …`, and plain text for continued pretraining.
"""
from __future__ import annotations

import re
import unicodedata
from collections import Counter

from core.config import RunConfig


class DataError(ValueError):
    """Data that cannot be used; the message names the problem and the fix."""


ROLE_NAMES = {"human": "user", "user": "user", "gpt": "assistant", "assistant": "assistant", "bot": "assistant",
              "model": "assistant", "system": "system", "chatgpt": "assistant"}
QUESTION_COLUMNS = ("question", "prompt", "query", "input", "instruction", "질문", "instruction_ko", "q", "user")
ANSWER_COLUMNS = ("answer", "response", "completion", "output", "reply", "답변", "대답", "응답", "a", "assistant")
TEXT_COLUMNS = ("text", "content", "document", "본문")
FORMAT_NAMES = {"messages": "chat messages", "sharegpt": "ShareGPT", "alpaca": "Alpaca / KoAlpaca",
                "qa": "question / answer columns", "markers": "text with turn markers", "text": "plain text"}
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def detect_format(rows: list[dict], config: RunConfig) -> str:
    if not rows:
        raise DataError("The dataset has no rows.")
    columns = set().union(*(r.keys() for r in rows[:50] if isinstance(r, dict)))
    lower = {c.lower(): c for c in columns}
    if "messages" in lower:
        return "messages"
    if "conversations" in lower:
        return "sharegpt"
    if "instruction" in lower and ("output" in lower or "response" in lower):
        return "alpaca"
    if config.prompt_column and config.response_column:
        return "qa"
    if _find_column(lower, QUESTION_COLUMNS) and _find_column(lower, ANSWER_COLUMNS):
        return "qa"
    text_col = _find_column(lower, TEXT_COLUMNS) or (next(iter(columns)) if len(columns) == 1 else None)
    if text_col:
        sample = " ".join(str(r.get(text_col, "")) for r in rows[:50])
        return "markers" if config.user_marker in sample and config.bot_marker in sample else "text"
    raise DataError(
        f"Could not tell the format from the columns {sorted(columns)}. Expected 'messages', 'conversations', "
        "'instruction'/'output', a question and an answer column, or a 'text' column. "
        "Pick the format by hand and set the question/answer columns.")


def _find_column(lower: dict, names: tuple) -> str | None:
    return next((lower[n] for n in names if n in lower), None)


def clean(text: str, config: RunConfig) -> str:
    if not config.clean_text:
        return text
    return _CONTROL.sub("", unicodedata.normalize("NFC", text)).strip()


def to_examples(rows: list[dict], fmt: str, config: RunConfig) -> tuple[list[dict], dict]:
    """Map rows to examples; returns (examples, report with counts and drop reasons)."""
    convert = {"messages": _from_messages, "sharegpt": _from_sharegpt, "alpaca": _from_alpaca,
               "qa": _from_qa, "markers": _from_markers, "text": _from_text}.get(fmt)
    if convert is None:
        raise DataError(f"Unknown data format '{fmt}'.")
    dropped: Counter = Counter()
    examples, seen = [], set()
    columns = {c.lower(): c for c in set().union(*(r.keys() for r in rows[:50] if isinstance(r, dict)))}
    for row in rows:
        try:
            example = convert(row, config, columns) if isinstance(row, dict) else None
        except (KeyError, TypeError, AttributeError, ValueError):
            example = None
        why = _reject_reason(example, config)
        if why:
            dropped[why] += 1
            continue
        key = repr(example)
        if config.drop_duplicates and key in seen:
            dropped["duplicates"] += 1
            continue
        seen.add(key)
        examples.append(example)
    return examples, {"format": fmt, "format_name": FORMAT_NAMES[fmt], "rows": len(rows),
                      "kept": len(examples), "dropped": dict(dropped)}


def _reject_reason(example: dict | None, config: RunConfig) -> str:
    if example is None:
        return "malformed rows"
    if "text" in example:
        return "" if example["text"] else "empty rows"
    msgs = example["messages"]
    answers = [m["content"] for m in msgs if m["role"] == "assistant"]
    if not answers or not any(m["role"] == "user" for m in msgs):
        return "rows without a question and an answer"
    if max(len(a) for a in answers) < max(1, config.min_chars):
        return "answers too short"
    if config.max_chars and sum(len(m["content"]) for m in msgs) > config.max_chars:
        return "rows too long"
    return ""


def _finish(messages: list[dict], config: RunConfig) -> dict:
    messages = [{"role": m["role"], "content": clean(str(m["content"]), config)} for m in messages]
    messages = [m for m in messages if m["content"]]
    if config.system_prompt and (not messages or messages[0]["role"] != "system"):
        messages.insert(0, {"role": "system", "content": config.system_prompt})
    return {"messages": messages}


def _from_messages(row, config, columns):
    msgs = row[columns["messages"]]
    return _finish([{"role": ROLE_NAMES[m["role"].lower()], "content": m["content"]} for m in msgs], config)


def _from_sharegpt(row, config, columns):
    turns = row[columns["conversations"]]
    return _finish([{"role": ROLE_NAMES[t["from"].lower()], "content": t["value"]} for t in turns], config)


def _from_alpaca(row, config, columns):
    instruction = str(row[columns["instruction"]] or "")
    extra = str(row.get(columns.get("input", "input")) or "")
    answer = row[columns.get("output") or columns["response"]]
    prompt = f"{instruction}\n\n{extra}" if extra.strip() else instruction
    return _finish([{"role": "user", "content": prompt}, {"role": "assistant", "content": answer}], config)


def _from_qa(row, config, columns):
    q = config.prompt_column or _find_column(columns, QUESTION_COLUMNS)
    a = config.response_column or _find_column(columns, ANSWER_COLUMNS)
    if q not in row or a not in row:
        raise DataError(f"Column '{q if q not in row else a}' is not in the data. Columns are: {', '.join(row)}.")
    return _finish([{"role": "user", "content": row[q]}, {"role": "assistant", "content": row[a]}], config)


def _from_markers(row, config, columns):
    text_col = _find_column(columns, TEXT_COLUMNS) or next(iter(row))
    text = str(row[text_col])
    pattern = f"({re.escape(config.user_marker)}|{re.escape(config.bot_marker)})"
    parts = re.split(pattern, text)
    messages, role = [], None
    for part in parts:
        if part == config.user_marker:
            role = "user"
        elif part == config.bot_marker:
            role = "assistant"
        elif role and part.strip():
            messages.append({"role": role, "content": part})
    return _finish(messages, config)


def _from_text(row, config, columns):
    text_col = _find_column(columns, TEXT_COLUMNS) or next(iter(row))
    return {"text": clean(str(row[text_col] or ""), config)}
