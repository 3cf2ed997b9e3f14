"""Mapping a dataset's rows to training examples, one converter per format.

`to_examples` reads every row with the converter of the layout core/data/formats.py detected: chat
`messages` / ShareGPT turns, an instruction or question/answer pair, a text with turn markers, plain
text, or a preference pair (prompt, chosen, rejected). Converters raise `RowProblem(reason)` for a row
they cannot use; the reason becomes a count in the report instead of a crash.
"""
from __future__ import annotations

import re
from collections import Counter

from core.config import RunConfig
from core.data.formats import FORMAT_NAMES, Layout, as_turns, detect_layout, is_texty
from core.errors import DataError, RowProblem
from core.messages import msg

ROLE_NAMES = {
    "user": "user", "human": "user", "usr": "user", "prompter": "user", "question": "user", "사용자": "user",
    "assistant": "assistant", "gpt": "assistant", "bot": "assistant", "model": "assistant", "chatgpt": "assistant",
    "ai": "assistant", "bard": "assistant", "answer": "assistant", "챗봇": "assistant",
    "system": "system", "sys": "system",
}
SYSTEM_MARKERS = ("<sys>", "### System:")
HUGE_ROW_CHARS = 1_000_000  # one conversation this long is a broken export, not a training example


def to_examples(rows: list[dict], fmt: str, config: RunConfig, layout: Layout | None = None) -> tuple[list[dict], dict]:
    """Map rows to `{"messages": [...]}` / `{"text": ...}` examples; report counts and drop reasons.

    Only the mapping happens here; cleaning, filters and duplicates are core/data/preprocess.py.
    """
    if layout is None or layout.format != fmt:
        layout = detect_layout(rows, config.replace(data_format=fmt))
    if (layout.format == "preference") != (config.objective == "dpo"):  # the other objective's data: say what to do
        raise DataError(msg("preference.needs_dpo" if layout.format == "preference" else "preference.needs_pairs"))
    convert = CONVERTERS[layout.format]
    dropped: Counter = Counter()
    examples = []
    for row in rows:
        try:
            if not isinstance(row, dict):
                raise RowProblem(msg("data.drop.not_records"))
            examples.append(convert(row, layout))
        except RowProblem as problem:
            dropped[problem.message] += 1  # the Msg itself, so a reader can show the reason in its language
    return examples, {"format": layout.format, "format_name": FORMAT_NAMES[layout.format], "rows": len(rows),
                      "columns": dict(layout.columns), "layout": layout.describe(), "notes": list(layout.notes),
                      "kept": len(examples), "dropped": dict(dropped)}


def _text(value, column: str, required: bool = True) -> str:
    if value is None or (isinstance(value, float) and value != value):  # None or NaN (empty CSV cell)
        if required:
            raise RowProblem(msg("data.drop.empty_column", column=column))
        return ""
    if isinstance(value, bool) or not is_texty(value):
        raise RowProblem(msg("data.drop.not_text", column=column, type=type(value).__name__))
    text = str(value)
    if len(text) > HUGE_ROW_CHARS:
        raise RowProblem(msg("data.drop.huge", limit=f"{HUGE_ROW_CHARS:,}"))
    return text


def _content(turn: dict) -> str:
    value = next((turn[k] for k in ("content", "value", "text") if k in turn), None)
    if isinstance(value, list):  # OpenAI content parts: [{"type": "text", "text": ...}, ...]
        value = "\n".join(str(p.get("text", "")) for p in value if isinstance(p, dict) and p.get("type", "text") == "text")
    return _text(value, "content", required=False)


def _from_conversation(row: dict, layout: Layout) -> dict:
    column = layout.columns["conversation"]
    turns = as_turns(row.get(column))
    if turns is None:
        raise RowProblem(msg("data.drop.not_turns", column=column))
    _check_turns(len(turns), layout)
    messages = []
    for turn in turns:
        if not isinstance(turn, dict):
            raise RowProblem(msg("data.drop.not_turn_items", column=column))
        name = str(turn.get("role", turn.get("from", ""))).strip().lower()
        if name not in ROLE_NAMES:
            raise RowProblem(msg("data.drop.unknown_speaker", name=name[:20]))
        messages.append({"role": ROLE_NAMES[name], "content": _content(turn)})
    return _checked({"messages": messages})


def _from_pair(row: dict, layout: Layout) -> dict:
    cols = layout.columns
    prompt = _text(row.get(cols["prompt"]), cols["prompt"])
    extra = _text(row.get(cols["input"]), cols["input"], required=False) if "input" in cols else ""
    if extra.strip():
        prompt = f"{prompt}\n\n{extra}"
    messages = [{"role": "user", "content": prompt},
                {"role": "assistant", "content": _text(row.get(cols["response"]), cols["response"])}]
    system = _text(row.get(cols["system"]), cols["system"], required=False) if "system" in cols else ""
    if system.strip():
        messages.insert(0, {"role": "system", "content": system})
    return _checked({"messages": messages})


def _from_markers(row: dict, layout: Layout) -> dict:
    column = layout.columns["text"]
    text = _text(row.get(column), column)
    user, bot = layout.markers
    names = {user: "user", bot: "assistant", **{m: "system" for m in SYSTEM_MARKERS}}
    pieces = re.split("(" + "|".join(re.escape(m) for m in names) + ")", text)
    _check_turns(len(pieces) // 2, layout)
    # Text before the first marker is a preamble ("Below is a conversation…"): keep it as the system message.
    messages = [{"role": "system", "content": pieces[0].strip()}] if pieces[0].strip() else []
    for marker, content in zip(pieces[1::2], pieces[2::2]):
        messages.append({"role": names[marker], "content": content.strip()})
    return _checked({"messages": messages})


def _from_text(row: dict, layout: Layout) -> dict:
    column = layout.columns["text"]
    return {"text": _text(row.get(column), column)}


def _from_preference(row: dict, layout: Layout) -> dict:
    """{"prompt", "chosen", "rejected"}, each a list of messages; an implicit prompt is the conversations' shared start."""
    cols = layout.columns
    chosen, rejected = (_preference_turns(row.get(cols[p]), cols[p], "assistant") for p in ("chosen", "rejected"))
    if "prompt" in cols:
        prompt = _preference_turns(row.get(cols["prompt"]), cols["prompt"], "user")
    else:
        shared = 0
        while shared < min(len(chosen), len(rejected)) - 1 and chosen[shared] == rejected[shared]:
            shared += 1
        prompt, chosen, rejected = chosen[:shared], chosen[shared:], rejected[shared:]
    if not prompt or prompt[-1]["role"] == "assistant":
        raise RowProblem(msg("preference.drop.no_prompt"))
    if not (chosen and rejected) or {m["role"] for m in chosen + rejected} != {"assistant"}:
        raise RowProblem(msg("preference.drop.not_answers"))
    _check_turns(len(prompt) + 1, layout)
    example = {"prompt": prompt, "chosen": chosen, "rejected": rejected}
    if sum(len(m["content"]) for part in example.values() for m in part) > HUGE_ROW_CHARS:
        raise RowProblem(msg("data.drop.huge", limit=f"{HUGE_ROW_CHARS:,}"))
    return example


def _preference_turns(value, column: str, role: str) -> list[dict]:
    """A preference cell as messages: a list of turns as it is, a plain string as one `role` turn."""
    turns = as_turns(value)
    if turns is None:
        return [{"role": role, "content": _text(value, column)}]
    return _from_conversation({"c": turns}, Layout("messages", {"conversation": "c"}))["messages"]


def _check_turns(n: int, layout: Layout) -> None:
    """Drop a conversation with more turns than the limit: tokenizing renders it once per reply."""
    limit = layout.max_turns
    if n > limit:
        raise RowProblem(msg("data.drop.too_many_turns", limit=f"{limit:,}"))


def _checked(example: dict) -> dict:
    if sum(len(m["content"]) for m in example["messages"]) > HUGE_ROW_CHARS:
        raise RowProblem(msg("data.drop.huge", limit=f"{HUGE_ROW_CHARS:,}"))
    return example


CONVERTERS = {"messages": _from_conversation, "sharegpt": _from_conversation, "alpaca": _from_pair,
               "qa": _from_pair, "markers": _from_markers, "text": _from_text, "preference": _from_preference}
