"""Held-out evaluation: does the tuned model know the facts the base does not?

Each held-out question has one or more expected substrings (a name, a
number, a date), or (a person's own file, core.infer.questions) a reference
answer. Base and tuned answer greedily, several questions per batched
`generate` call (the adapter switched off for the base); an answer counts as
right when it contains an expected substring (case-insensitive), or enough of
the reference's key words (core.infer.questions.is_right). The report names
the questions each model missed.

The built-in set's report is saved as runs/<run>/eval.json (the model card's
figure); a person's own file as eval-questions.json beside it.

Progress is reported as numbers: `progress(done, total, line)` after each
answered question (and with done=0 while the models load), where `line` is a
core.messages Msg ("[3/38] base ✗  tuned ✓  question") that a reader shows
in its own language.
"""
from __future__ import annotations

import json
from collections.abc import Callable
from pathlib import Path

from core.infer.chat import BaseOnly, get_chat_model
from core.infer.generate import BASE, Sampling, answer_batch, build_messages
from core.infer.questions import is_right
from core.messages import msg

DEMO_EVAL = Path(__file__).parents[1] / "data" / "builtin" / "demo_eval.jsonl"
BUILTIN_REPORT, OWN_REPORT = "eval.json", "eval-questions.json"
Progress = Callable[[int, int, str], None]  # (questions answered, questions in all, a line for people)


def load_questions(path: Path = DEMO_EVAL) -> list[dict]:
    return [json.loads(line) for line in path.read_text(encoding="utf-8").splitlines() if line.strip()]


def is_correct(answer: str, expected: list[str]) -> bool:
    low = answer.lower()
    return any(e.lower() in low for e in expected)


def evaluate_run(run_name: str, questions: list[dict] | None = None, limit: int = 0,
                 progress: Progress | None = None, max_new_tokens: int = 60,
                 batch_size: int = 8, token: str | None = None, save_as: str = BUILTIN_REPORT) -> dict:
    """{'total', 'base_correct', 'tuned_correct', 'base_share', 'tuned_share', 'base_missed', 'tuned_missed',
    'rows'}, saved as runs/<run>/`save_as`; `token`: the asker's Hub token."""
    questions = questions or load_questions()
    if limit:
        questions = questions[:limit]
    count = len(questions)
    loading = (lambda line: progress(0, count, line)) if progress else None  # the models' loading lines
    chat = get_chat_model(run_name, progress=loading, token=token)
    sampling = Sampling(max_new_tokens=max_new_tokens, temperature=0.0, repetition_penalty=1.0)
    ask_base = _base_asker(chat, sampling, loading, token)
    rows = []
    with chat.lock:
        for first in range(0, len(questions), batch_size):
            chunk = questions[first:first + batch_size]
            conversations = [build_messages([], q["question"], chat.config.system_prompt) for q in chunk]
            tuned = answer_batch(chat.model, chat.tokenizer, conversations, ["default"] * len(chunk), sampling)
            base = ask_base(conversations)
            for q, b, t in zip(chunk, base, tuned):
                rows.append({"question": q["question"], "expected": q.get("expected") or [],
                             "reference": q.get("reference", ""), "base": b, "tuned": t,
                             "base_ok": is_right(b, q), "tuned_ok": is_right(t, q)})
                if progress:
                    progress(len(rows), count, _line(rows[-1], len(rows), count))
    total = len(rows)
    base_ok, tuned_ok = sum(r["base_ok"] for r in rows), sum(r["tuned_ok"] for r in rows)
    report = {"total": total, "base_correct": base_ok, "tuned_correct": tuned_ok,
              "base_share": base_ok / total if total else 0.0, "tuned_share": tuned_ok / total if total else 0.0,
              "base_missed": [r["question"] for r in rows if not r["base_ok"]],
              "tuned_missed": [r["question"] for r in rows if not r["tuned_ok"]], "rows": rows}
    (chat.run_dir / save_as).write_text(json.dumps(report, ensure_ascii=False, indent=1), encoding="utf-8")
    return report


def _line(row: dict, done: int, total: int) -> str:
    """One answered question as a line for people: its number, both outcomes, the question."""
    mark = lambda ok: "✓" if ok else "✗"
    return msg("infer.eval_line", done=done, total=total, base=mark(row["base_ok"]), tuned=mark(row["tuned_ok"]),
               question=row["question"])


def _base_asker(chat, sampling: Sampling, progress, token: str | None = None) -> Callable[[list], list[str]]:
    """How to get the base model's answers: the adapter switched off, or (full fine-tuning) the base loaded apart."""
    if chat.has_base:
        return lambda conversations: answer_batch(chat.model, chat.tokenizer, conversations,
                                                  [BASE] * len(conversations), sampling)
    base = BaseOnly(chat.config, progress=progress, token=token)
    return lambda conversations: answer_batch(base.model, base.tokenizer, conversations,
                                              ["default"] * len(conversations), sampling)
