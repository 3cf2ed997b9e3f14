"""The Chat tab's transcript: one row per turn, the question across, the two answers side by side beneath it.

Two gr.Chatbot columns scroll on their own, so after a long answer one column
shows the next question while the other still shows the last answer. Here each
turn is one CSS grid row: the question spans both columns and the two answer
cells share the row's height, so the next question always starts below both
answers, whatever their length. The whole transcript scrolls as one.

A turn is a plain dict kept in the browser session's gr.State (server side):
{"question", "system", "run", "order": [left model, right model], "answers": {model: text},
 "notes": {model: text shown instead of an answer}, "blind", "votable", "vote", "thumbs": {model: up|down},
 "done": the answers are finished}.
Model names are core.infer.votes's ("base", "tuned", "run:<name>"). In blind mode the cells are
labelled A and B until the turn has its vote; then each label says which model it was.

Everything a model wrote, and the question, is escaped: model output is untrusted text.
"""
from __future__ import annotations

import html

from ui.strings import t

CSS = """
.tl-turns { display: flex; flex-direction: column; gap: 14px; }
.tl-turn { display: grid; grid-template-columns: 1fr 1fr; gap: 8px; }
.tl-q { grid-column: 1 / span 2; font-weight: 600; padding: 8px 12px; border-radius: 8px;
        background: var(--background-fill-secondary); white-space: pre-wrap; overflow-wrap: anywhere; }
.tl-ans { border: 1px solid var(--border-color-primary); border-radius: 8px; padding: 8px 12px; min-width: 0; }
.tl-who { font-size: 0.85em; opacity: 0.75; margin-bottom: 4px; }
.tl-text { white-space: pre-wrap; overflow-wrap: anywhere; background: none; }
.tl-note-text { font-style: italic; opacity: 0.75; }
.tl-thumb { margin-left: 6px; }
.tl-empty { opacity: 0.6; font-style: italic; }
"""
LETTERS = ("A", "B")


def model_label(model: str, lang: str) -> str:
    """A model name for people: the base model, the tuned model, or another run by its name."""
    if model.startswith("run:"):
        return t("votes.model_run", lang, run=model[4:])
    return t("votes.model_" + model, lang) if model in ("base", "tuned") else model


def render(turns: list[dict], lang: str) -> str:
    """The transcript as HTML; a placeholder line when there is no turn yet."""
    if not turns:
        return f'<div class="tl-turns"><div class="tl-empty">{html.escape(t("votes.no_turns", lang))}</div></div>'
    return '<div class="tl-turns">' + "".join(_turn(turn, i, lang) for i, turn in enumerate(turns)) + "</div>"


def _turn(turn: dict, index: int, lang: str) -> str:
    question = html.escape(turn.get("question", ""))
    cells = "".join(_cell(turn, side, model, lang) for side, model in enumerate(turn.get("order", [])))
    return (f'<div class="tl-turn" data-turn="{index}"><div class="tl-q">{question}</div>{cells}</div>')


def _cell(turn: dict, side: int, model: str, lang: str) -> str:
    """One answer cell; in blind mode its model is only named (data-model too) once the turn has its vote."""
    hidden = turn.get("blind") and not turn.get("vote")
    letter = LETTERS[side]
    if turn.get("blind"):
        who = letter if hidden else t("votes.revealed", lang, letter=letter, model=model_label(model, lang))
    else:
        who = model_label(model, lang)
    thumb = (turn.get("thumbs") or {}).get(model)
    mark = f'<span class="tl-thumb" data-thumb="{thumb}">{"👍" if thumb == "up" else "👎"}</span>' if thumb else ""
    note = (turn.get("notes") or {}).get(model)
    text = ((turn.get("answers") or {}).get(model) or "").strip()
    if not text:  # "…" while it is being written; a finished answer that is empty says so
        note = t("votes.empty_answer", lang) if turn.get("done") and note is None else note
        text = "…"
    body = (f'<div class="tl-text tl-note-text">{html.escape(note)}</div>' if note is not None else
            f'<div class="tl-text">{html.escape(text)}</div>')
    attrs = f'data-side="{"left" if side == 0 else "right"}" data-letter="{letter}"'
    if not hidden:
        attrs += f' data-model="{html.escape(model, quote=True)}"'
    return f'<div class="tl-ans" {attrs}><div class="tl-who">{html.escape(who)}{mark}</div>{body}</div>'
