"""Recognising a dataset's layout: its format, and which columns (or turn markers) hold which part.

Formats: chat `messages` (OpenAI style role/content), ShareGPT
`conversations` (from/value, human/gpt), Alpaca / KoAlpaca / Dolly
(instruction, optional input, output), question/answer pairs in any two
columns (Korean names such as 질문/답변 included), one text column with turn
markers such as open-korean-instructions' `<usr> … <bot> …`, and plain text
for continued pretraining. Preference pairs in trl's standard layout (`prompt`/`chosen`/
`rejected`, plain strings or lists of messages; the prompt may be left implicit in the
conversations) are the `preference` format, which DPO trains on (core/data/preference.py).

`detect_layout` decides the format *and* which columns (or markers) hold
what, so the preview can say exactly how the data was read; core/data/converters.py then maps
each row to a chat example (or a preference pair) with the layout's converter.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

from core.config import RunConfig
from core.data.limits import limits
from core.errors import DataError
from core.messages import Msg, msg

FORMATS = ("messages", "sharegpt", "alpaca", "qa", "markers", "text", "preference")
# The human names of the formats (Msgs: a reader shows them with localize(name, lang)).
FORMAT_NAMES = {"messages": msg("data.format.messages"), "sharegpt": msg("data.format.sharegpt"),
                "alpaca": msg("data.format.alpaca"), "qa": msg("data.format.qa"),
                "markers": msg("data.format.markers"), "text": msg("data.format.text"),
                "preference": msg("preference.format")}
# The parts of a row a column can hold, as the preview names them.
PART_NAMES = {"conversation": msg("data.part.conversation"), "prompt": msg("data.part.prompt"),
              "input": msg("data.part.input"), "response": msg("data.part.response"),
              "system": msg("data.part.system"), "text": msg("data.part.text"),
              "chosen": msg("preference.part.chosen"), "rejected": msg("preference.part.rejected")}

CONVERSATION_COLUMNS = ("messages", "conversations", "conversation", "dialog", "dialogue", "chat", "turns", "대화")
INSTRUCTION_COLUMNS = ("instruction", "instructions", "지시", "지시문")
INPUT_COLUMNS = ("input", "context", "입력")
QUESTION_COLUMNS = ("question", "prompt", "query", "instruction", "input", "질문", "질의", "문제", "요청", "입력",
                    "q", "user", "human", "instruction_ko")
ANSWER_COLUMNS = ("answer", "response", "output", "completion", "reply", "답변", "대답", "응답", "답", "출력",
                  "a", "assistant", "bot", "gpt", "chosen")
SYSTEM_COLUMNS = ("system", "system_prompt", "system_message", "시스템")
TEXT_COLUMNS = ("text", "content", "document", "body", "passage", "article", "sentence", "본문", "텍스트", "내용")
# Marker pairs tried when the configured ones are not in the data.
KNOWN_MARKERS = (("<usr>", "<bot>"), ("### Human:", "### Assistant:"), ("### User:", "### Assistant:"),
                 ("### Instruction:", "### Response:"), ("### 질문:", "### 답변:"), ("Human:", "Assistant:"),
                 ("USER:", "ASSISTANT:"), ("질문:", "답변:"))
SYSTEM_MARKERS = ("<sys>", "### System:")
_SAMPLE = 200  # rows looked at when detecting


@dataclass
class Layout:
    """How the rows are read: the format, the column for each part, the markers, and notes for the user."""
    format: str
    columns: dict = field(default_factory=dict)  # part (conversation|prompt|input|response|system|text) -> column
    markers: tuple = ("<usr>", "<bot>")
    notes: list = field(default_factory=list)
    max_turns: int = field(default_factory=lambda: limits().max_turns)  # read once per file, not per row

    def describe(self) -> Msg:
        parts = [msg("data.layout_part", part=_part_name(part), column=col) for part, col in self.columns.items()]
        if self.format == "markers":
            return msg("data.layout_markers", format=FORMAT_NAMES[self.format], parts=parts,
                       user=self.markers[0], bot=self.markers[1])
        return msg("data.layout", format=FORMAT_NAMES[self.format], parts=parts)


def _part_name(part: str) -> str:
    return PART_NAMES.get(part, part)


# --- detection -----------------------------------------------------------------
def detect_format(rows: list[dict], config: RunConfig) -> str:
    """The format name ('messages', 'sharegpt', ...) the rows are in."""
    return detect_layout(rows, config).format


def detect_layout(rows: list[dict], config: RunConfig) -> Layout:
    """Format and column mapping, detected or taken from the config; DataError when it cannot be read."""
    if not rows:
        raise DataError(msg("data.dataset_no_rows"))
    sample = [r for r in rows[:_SAMPLE] if isinstance(r, dict)]
    if not sample:
        raise DataError(msg("data.not_records"))
    columns = list(dict.fromkeys(c for r in sample for c in r))
    fmt = config.data_format if config.data_format != "auto" else _guess_format(sample, columns, config)
    if fmt not in FORMATS:
        raise DataError(msg("data.unknown_format", format=fmt, formats=", ".join(FORMATS)))
    return _map_columns(fmt, sample, columns, config)


def _guess_format(sample: list[dict], columns: list[str], config: RunConfig) -> str:
    if _find(columns, ("chosen",)) and _find(columns, ("rejected",)):
        return "preference"  # before qa: `prompt` + `chosen` would read as a question/answer pair
    conversation = _conversation_column(sample, columns, config)
    if conversation:
        return "sharegpt" if _turn_shape(sample, conversation) == "sharegpt" else "messages"
    if _find(columns, INSTRUCTION_COLUMNS) and _find(columns, ANSWER_COLUMNS, exclude=INSTRUCTION_COLUMNS):
        return "alpaca"
    if (config.prompt_column and config.response_column) or _qa_pair(columns):
        return "qa"
    texty = _text_columns(sample, columns)
    named_text = _find(texty, TEXT_COLUMNS)
    if not named_text and not config.prompt_column and len(texty) == 2:
        return "qa"  # two text columns with unknown names: most likely question, answer
    text = _text_column(sample, columns, config)
    if text:
        return "markers" if _markers_in(sample, text, config) else "text"
    named = _find(columns, CONVERSATION_COLUMNS)
    if named:
        raise DataError(msg("data.not_conversations", column=named))
    raise DataError(msg("data.format_unclear", columns=str(columns)))


def _norm(name: str) -> str:
    return str(name).strip().lower().replace(" ", "_").replace("-", "_")


def _find(columns: list[str], names: tuple, exclude: tuple = (), skip: tuple = ()) -> str | None:
    """The column matching one of `names`: exact names first (in order), then names contained in it."""
    usable = [c for c in columns if c not in skip and _norm(c) not in exclude]
    for name in names:
        for col in usable:
            if _norm(col) == name:
                return col
    for name in names:
        if len(name) < (3 if name.isascii() else 2):  # 'q', 'a', '답' would match too much as substrings
            continue
        for col in usable:
            if name in _norm(col):
                return col
    return None


def _qa_pair(columns: list[str]) -> tuple[str, str] | None:
    answer = _find(columns, ANSWER_COLUMNS)
    question = _find(columns, QUESTION_COLUMNS, skip=(answer,))
    return (question, answer) if question and answer else None


def is_texty(value) -> bool:
    """A cell that reads as text: a string or a number (a bool is not)."""
    return isinstance(value, str) or (isinstance(value, (int, float)) and not isinstance(value, bool))


def _text_columns(sample: list[dict], columns: list[str]) -> list[str]:
    return [c for c in columns if any(isinstance(r.get(c), str) and r.get(c).strip() for r in sample)
            and all(r.get(c) is None or is_texty(r.get(c)) for r in sample)]


def _text_column(sample: list[dict], columns: list[str], config: RunConfig) -> str | None:
    if config.prompt_column:
        return config.prompt_column
    texty = _text_columns(sample, columns)
    return _find(texty, TEXT_COLUMNS) or (texty[0] if len(texty) == 1 else None)


def _conversation_column(sample: list[dict], columns: list[str], config: RunConfig) -> str | None:
    if config.prompt_column and _turn_shape(sample, config.prompt_column):
        return config.prompt_column
    named = _find(columns, CONVERSATION_COLUMNS)
    if named and _turn_shape(sample, named):
        return named
    return next((c for c in columns if _turn_shape(sample, c)), None)


def _turn_shape(sample: list[dict], column: str) -> str:
    """'messages' (role/content), 'sharegpt' (from/value) or '' for a column of turn lists."""
    for row in sample:
        turns = as_turns(row.get(column))
        first = turns[0] if turns else None
        if isinstance(first, dict):
            if "from" in first and "value" in first:
                return "sharegpt"
            if "role" in first and ("content" in first or "text" in first):
                return "messages"
            return ""
    return ""


def _markers_in(sample: list[dict], column: str, config: RunConfig) -> tuple[str, str] | None:
    """The marker pair found in most rows: the configured one first, then well-known ones."""
    texts = [str(r.get(column) or "") for r in sample]
    for user, bot in ((config.user_marker, config.bot_marker), *KNOWN_MARKERS):
        if user and bot and sum(1 for t in texts if user in t and bot in t) >= max(1, len(texts) // 2):
            return user, bot
    return None


def _map_columns(fmt: str, sample: list[dict], columns: list[str], config: RunConfig) -> Layout:
    layout = Layout(fmt)
    if fmt == "preference":
        layout.columns = _preference_columns(columns, config)
    elif fmt in ("messages", "sharegpt"):
        col = _conversation_column(sample, columns, config) or _find(columns, CONVERSATION_COLUMNS)
        layout.columns = {"conversation": _require(col, fmt, msg("data.need.conversation"), columns)}
    elif fmt in ("alpaca", "qa"):
        _map_pair(layout, sample, columns, config)
    else:
        col = _text_column(sample, columns, config) or _find(columns, TEXT_COLUMNS)
        layout.columns = {"text": _require(col, fmt, msg("data.need.text"), columns)}
    for part, col in layout.columns.items():
        if col not in columns:
            raise DataError(msg("data.column_missing", column=col, part=_part_name(part),
                                columns=", ".join(map(str, columns))))
    if fmt == "markers":
        _set_markers(layout, sample, config)
    return layout


def _preference_columns(columns: list[str], config: RunConfig) -> dict:
    """prompt (optional: without it the conversations hold it), chosen and rejected columns."""
    chosen = _find(columns, ("chosen",))
    found = {"prompt": config.prompt_column or _find(columns, QUESTION_COLUMNS, skip=(chosen,)),
             "chosen": _require(chosen, "preference", msg("preference.part.chosen"), columns),
             "rejected": _require(_find(columns, ("rejected",)), "preference", msg("preference.part.rejected"), columns)}
    return {part: col for part, col in found.items() if col}


def _set_markers(layout: Layout, sample: list[dict], config: RunConfig) -> None:
    found = _markers_in(sample, layout.columns["text"], config)
    if not found:
        raise DataError(msg("data.markers_missing", user=config.user_marker, bot=config.bot_marker))
    layout.markers = found
    if found != (config.user_marker, config.bot_marker):
        layout.notes.append(msg("data.note.markers_found", user=found[0], bot=found[1]))


def _map_pair(layout: Layout, sample: list[dict], columns: list[str], config: RunConfig) -> None:
    fmt = layout.format
    if fmt == "alpaca":
        prompt = config.prompt_column or _find(columns, INSTRUCTION_COLUMNS)
        response = config.response_column or _find(columns, ANSWER_COLUMNS, exclude=INSTRUCTION_COLUMNS)
        extra = _find(columns, INPUT_COLUMNS, skip=(prompt, response))
    else:
        pair = _qa_pair(columns)
        guessed = not pair and len(_text_columns(sample, columns)) == 2
        if guessed:
            pair = tuple(_text_columns(sample, columns))
        prompt = config.prompt_column or (pair[0] if pair else None)
        response = config.response_column or (pair[1] if pair else None)
        if guessed and not (config.prompt_column and config.response_column):
            layout.notes.append(msg("data.note.guessed_columns", prompt=prompt, response=response))
        extra = None
    layout.columns = {"prompt": _require(prompt, fmt, msg("data.need.prompt"), columns),
                      "response": _require(response, fmt, msg("data.need.response"), columns)}
    if extra:
        layout.columns["input"] = extra
    system = _find(columns, SYSTEM_COLUMNS, skip=(prompt, response))
    if system:
        layout.columns["system"] = system


def _require(col: str | None, fmt: str, what: Msg, columns: list[str]) -> str:
    if not col:
        raise DataError(msg("data.format_needs", format=fmt, what=what, columns=", ".join(map(str, columns))))
    return col


def as_turns(value) -> list | None:
    """A cell's list of turns (JSON text parsed first), or None when it holds none."""
    if isinstance(value, str) and value.lstrip().startswith("["):
        try:  # conversations stored as JSON text, e.g. in a CSV export
            value = json.loads(value)
        except (ValueError, RecursionError):  # not JSON, or nested past Python's limit
            return None
    return value if isinstance(value, list) else None

