"""The Chat tab's votes: a blind A/B vote or a thumb on the last turn, the scores, and the votes.jsonl download.

Votes are written by core.infer.votes into the run's folder, so they survive a
restart and are the same for every browser. Each turn takes one vote in blind
mode (then its models are revealed) and one thumb per answer in the normal mode;
a turn where one side is a note (no base after full fine-tuning, no tuned model
yet) takes none. Only someone who may act on the run votes on it or downloads
its votes (core.access ownership, checked again here: a page can be scripted).
"""
from __future__ import annotations

import html

from core import runs
from core.access import User
from core.infer import votes
from core.train.manager import JobManager
from ui import identity
from ui.preference import votes_count_text
from ui.strings import t
from ui.transcript import LETTERS, model_label, render
from ui.widgets import error_box, error_md, friendly


def _last_turn(turns: list[dict], lang: str) -> tuple[dict | None, str]:
    """The turn a vote is for, or None with the reason as a red box."""
    if not turns:
        return None, error_md(t("votes.title", lang), t("votes.ask_first", lang))
    turn = turns[-1]
    if not turn.get("votable") or not turn.get("run"):
        return None, error_md(t("votes.title", lang), t("votes.not_votable", lang))
    return turn, ""


def vote(manager: JobManager, lang: str, winner: str, turns: list[dict], user: User | None) -> tuple:
    """A blind vote on the last turn: (transcript, turns, note with the reveal, score)."""
    turns = [dict(turn) for turn in (turns or [])]
    turn, problem = _last_turn(turns, lang)
    if turn is None:
        return render(turns, lang), turns, problem, _score_or_skip(manager, lang, turns, user)
    if not turn.get("blind"):
        return render(turns, lang), turns, error_md(t("votes.title", lang), t("votes.not_blind", lang)), \
            _score_or_skip(manager, lang, turns, user)
    if turn.get("vote"):
        return render(turns, lang), turns, error_md(t("votes.title", lang), t("votes.already", lang)), \
            _score_or_skip(manager, lang, turns, user)
    order = turn["order"]
    try:
        manager.summary(turn["run"], user)  # AccessDenied for someone else's run
        votes.record_vote(runs.run_dir(turn["run"], manager.root), turn["question"],
                          {letter: turn["answers"][model] for letter, model in zip(LETTERS, order)},
                          dict(zip(LETTERS, order)), winner, voter=user.name if user else "",
                          system=turn.get("system", ""), blind=True)
    except Exception as err:
        return render(turns, lang), turns, error_box(t("votes.title", lang), err, lang), \
            _score_or_skip(manager, lang, turns, user)
    turn["vote"] = winner
    reveal = t("votes.saved_reveal", lang, choice=t("votes.choice_" + winner, lang),
               a=model_label(order[0], lang), b=model_label(order[1], lang))
    note = f'<div class="tl-muted" id="vote-reveal" data-a="{html.escape(order[0])}" ' \
           f'data-b="{html.escape(order[1])}">{html.escape(reveal)}</div>'
    return render(turns, lang), turns, note, score_md(manager, lang, turn["run"], user)


def thumb(manager: JobManager, lang: str, side: int, up: bool, turns: list[dict], user: User | None) -> tuple:
    """A thumb for one answer of the last turn (normal mode): (transcript, turns, note, score)."""
    turns = [dict(turn) for turn in (turns or [])]
    turn, problem = _last_turn(turns, lang)
    if turn is None or turn.get("blind"):
        problem = problem or error_md(t("votes.title", lang), t("votes.blind_no_thumbs", lang))
        return render(turns, lang), turns, problem, _score_or_skip(manager, lang, turns, user)
    model = turn["order"][side]
    thumbs = dict(turn.get("thumbs") or {})
    if model in thumbs:
        return render(turns, lang), turns, error_md(t("votes.title", lang), t("votes.already", lang)), \
            _score_or_skip(manager, lang, turns, user)
    try:
        manager.summary(turn["run"], user)
        votes.record_thumb(runs.run_dir(turn["run"], manager.root), turn["question"], turn["answers"][model],
                           model, "up" if up else "down", voter=user.name if user else "",
                           system=turn.get("system", ""))
    except Exception as err:
        return render(turns, lang), turns, error_box(t("votes.title", lang), err, lang), \
            _score_or_skip(manager, lang, turns, user)
    thumbs[model] = "up" if up else "down"
    turn["thumbs"] = thumbs
    note = t("votes.thumb_saved", lang, model=model_label(model, lang))
    return render(turns, lang), turns, f'<div class="tl-muted">{html.escape(note)}</div>', \
        score_md(manager, lang, turn["run"], user)


def _score_or_skip(manager: JobManager, lang: str, turns: list[dict], user: User | None) -> str:
    run = turns[-1].get("run") if turns else ""
    return score_md(manager, lang, run, user) if run else ""


def score_md(manager: JobManager, lang: str, name: str, user: User | None) -> str:
    """The run's scores from its votes: each pairing's win rate with its interval, and the thumbs."""
    if not name:
        return t("votes.score_needs_run", lang)
    try:
        manager.summary(name, user)
        found = votes.load_votes(runs.run_dir(name, manager.root))
    except Exception as err:
        return friendly(err, lang)
    if not found:
        return t("votes.no_votes", lang)
    lines = [f"**{t('votes.scores', lang)}**", ""]
    for first, second in votes.pairings(found):
        rate, n, low, high = votes.win_rate(found, first, second)
        lines.append("- " + t("votes.score_line", lang, first=model_label(first, lang),
                                second=model_label(second, lang), rate=f"{rate:.0%}", n=n,
                                low=f"{low:.0%}", high=f"{high:.0%}"))
    counts: dict[str, list[int]] = {}
    for v in found:
        if v.get("kind") == "thumb":
            counts.setdefault(v.get("model", ""), [0, 0])[v.get("thumb") != "up"] += 1
    for model, (ups, downs) in counts.items():
        lines.append("- " + t("votes.thumb_line", lang, model=model_label(model, lang), up=ups, down=downs))
    lines += ["", t("votes.score_rule", lang), "", votes_count_text(runs.run_dir(name, manager.root), lang)]
    return "\n".join(lines)


def export(manager: JobManager, lang: str, name: str, user: User | None) -> tuple:
    """(a download link to a snapshot of the run's votes.jsonl, message)."""
    if not name:
        return None, error_md(t("votes.download", lang), t("votes.score_needs_run", lang))
    try:
        manager.summary(name, user)
        run_dir = runs.run_dir(name, manager.root)
        if not (run_dir / votes.VOTES_FILE).is_file():
            return None, error_md(t("votes.download", lang), t("votes.no_votes", lang))
        snapshot = votes.export_copy(run_dir)
        return identity.private_download(snapshot, manager.root or runs.runs_root()), ""
    except Exception as err:
        return None, error_box(t("votes.download", lang), err, lang)
