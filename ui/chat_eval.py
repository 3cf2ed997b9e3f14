"""The Chat tab's held-out evaluation: the built-in questions or a person's own file, base vs tuned.

The result names the questions each model missed; a person's file is read by
core.infer.questions (after ui.data_tab.save_upload kept it under this user's
uploads, with the upload limits), and a bad file is one plain sentence.
"""
from __future__ import annotations

import re
from pathlib import Path

import pandas as pd

from core import access, devicelock, runs
from core.access import User
from core.config import RunConfig
from core.errors import AccessDenied
from core.infer.evaluate import BUILTIN_REPORT, OWN_REPORT, evaluate_run
from core.infer.questions import load_user_questions
from core.messages import join
from core.train.manager import JobManager
from ui.strings import localize, t
from ui.widgets import busy_message, error_box, error_md


def run_eval(manager: JobManager, lang: str, name: str, limit, progress, token: str = "",
             user: User | None = None, questions: str | None = None) -> tuple:
    """Held-out questions, base vs tuned: a result with the questions each model missed, and a table; progress
    as a bar with the last line. `questions` is a person's own file (kept by the upload rules), else the
    built-in set. Holds the device lock while it asks; someone else's run (for a non-admin user) is refused."""
    if not name:
        return error_md(t("evaluate", lang), t("eval_needs_run", lang)), None
    busy = busy_message(manager, lang)
    if busy:
        return error_md(t("evaluate", lang), busy), None

    def report(done: int, total: int, line: str) -> None:
        progress(done / total if total else None, desc=localize(line, lang))

    try:
        if user is not None:
            manager.summary(name, user)
            problems = access.check_config(RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml"))
            if problems:
                raise AccessDenied(join(problems))
        own = load_user_questions(Path(questions)) if questions else None  # a bad file: a plain DataError
        with devicelock.hold("evaluate", run=name, user=user.name if user else "", root=manager.root):
            result = evaluate_run(name, questions=own, limit=int(limit or 0), progress=report, token=token or None,
                                  save_as=OWN_REPORT if own else BUILTIN_REPORT)
    except Exception as err:
        return error_box(t("evaluate", lang), err, lang), None
    mark = lambda ok: "✓" if ok else "✗"
    rows = [[r["question"], ", ".join(r["expected"]) or r.get("reference", ""), f'{mark(r["base_ok"])} {r["base"]}',
             f'{mark(r["tuned_ok"])} {r["tuned"]}'] for r in result["rows"]]
    cols = [t(k, lang) for k in ("col_question", "col_expected", "col_base", "col_tuned")]
    summary = t("eval_result", lang, base_ok=result["base_correct"], tuned_ok=result["tuned_correct"],
                total=result["total"], base_share=f'{result["base_share"]:.0%}', tuned_share=f'{result["tuned_share"]:.0%}')
    missed = [t(f"votes.missed_{side}", lang, count=len(result[f"{side}_missed"]))
              + "".join(f"\n  - {_md_escape(q)}" for q in result[f"{side}_missed"]) for side in ("base", "tuned")]
    return "\n\n".join([summary, *missed]), pd.DataFrame(rows, columns=cols)


def _md_escape(text: str) -> str:
    """A question as literal text inside Markdown (a person's file may hold markup or HTML)."""
    return re.sub(r"([\\`*_{}\[\]()#+!|<>&~-])", r"\\\1", " ".join(text.split()))
