"""The page's preference parts: pairs shown side by side in the Data tab, and "Train on my votes".

`pairs_html` renders prompt / chosen / rejected rows (core.data.preference's pairs) as the
question's bubbles above the two answers in two columns. `train_on_votes` is what the Chat
tab's button does: a DPO run (core.train.preference) from the picked run's adapter on the
votes saved in that run's folder, started through the JobManager like any run, so the Train
tab shows it live. No training logic here.
"""
from __future__ import annotations

import html
from pathlib import Path

from core import runs
from core.access import User
from core.config import RunConfig
from core.data.preference import SIDES
from core.infer import votes
from core.train import preference
from core.train.manager import JobManager
from ui.strings import t
from ui.widgets import error_md, friendly

_SIDE_STYLE = {"chosen": "border-left:4px solid #16a34a", "rejected": "border-left:4px solid #dc2626"}


def pairs_html(pairs: list[dict], lang: str) -> str:
    """Preference pairs as cards: the prompt's turns, then chosen | rejected side by side ('' for none)."""
    if not pairs:
        return ""
    cards = []
    for i, pair in enumerate(pairs, 1):
        prompt = "".join(_bubble(m, lang) for m in pair["prompt"])
        sides = "".join(
            f'<div class="tl-side tl-{side}" style="{_SIDE_STYLE[side]};padding-left:6px">'
            f'<div class="tl-role">{t("preference.side_" + side, lang)}</div>'
            f'{"".join(_bubble(m, lang) for m in pair[side])}</div>' for side in SIDES)
        cards.append(f'<div class="tl-example tl-pair"><div class="tl-exn">{t("example_n", lang, n=i)}</div>{prompt}'
                     f'<div style="display:grid;grid-template-columns:1fr 1fr;gap:8px">{sides}</div></div>')
    return f'<div class="tl-examples">{"".join(cards)}</div>'


def _bubble(message: dict, lang: str) -> str:
    role = message["role"]
    return (f'<div class="tl-bubble tl-{role}"><div class="tl-role">{t("role_" + role, lang)}</div>'
            f'{html.escape(str(message["content"])[:1500])}</div>')


def votes_count_text(run_dir: Path, lang: str) -> str:
    """'N voted pairs ready to train on' for a run's folder (one line for the Chat tab)."""
    return t("preference.votes_ready", lang, n=len(votes.preference_rows(run_dir)))


def train_on_votes(manager: JobManager, run_name: str, token: str, who: User | str, lang: str) -> str:
    """Start a DPO run from `run_name`'s adapter on its votes; an HTML line saying what happened (never raises)."""
    title = t("preference.train_on_votes", lang)
    try:
        if not run_name:
            return error_md(title, t("preference.pick_run", lang))
        manager.summary(run_name, who)  # AccessDenied for someone else's run
        folder = runs.run_dir(run_name, manager.root)
        pairs = len(votes.preference_rows(folder))
        if not pairs:
            return error_md(title, t("preference.no_votes", lang, run=run_name))
        config = preference.dpo_config(RunConfig.load_yaml(folder / "config.yaml"), run_name)
        job = manager.start(config, token=token or None, who=who)
    except Exception as err:  # busy device, someone else's run, a run without adapter: one sentence
        return error_md(title, friendly(err, lang))
    return f'<div class="tl-ok">{t("preference.started", lang, run=job.name, start=run_name, n=pairs)}</div>'
