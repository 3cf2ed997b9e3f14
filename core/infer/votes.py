"""Votes on answers: blind A/B comparisons and thumbs, kept in runs/<run>/votes.jsonl, and what they add up to.

One JSON line per vote, appended (a restart, a second browser or a crash mid-write
loses nothing already written; a half-written last line is skipped on reading):

- a comparison: {"kind": "compare", "prompt", "system", "answers": {"A", "B"},
  "models": {"A", "B"}, "winner": "A" | "B" | "tie" | "both_bad", "blind", "voter", "time", "id"}
- a thumb: {"kind": "thumb", "prompt", "system", "answer", "model", "thumb": "up" | "down", "voter", "time", "id"}

Model names: "base" is the run's base model, "tuned" the run's own tuned model,
"run:<name>" another run's tuned model (a comparison between two runs is kept in
the first run's folder). The voter is the logged-in user's name, or "local".

`win_rate` counts a tie and "both bad" as half a win: they say neither answer is
better, and dropping them would push the rate away from 50% for two models that
are often equally good (the figure would overstate a difference the voters did
not see). The interval is Wilson's score interval (95%), which stays inside
[0, 1] and is honest for the small vote counts a person gives, unlike the normal
approximation; with half wins the share is a fraction of n, which the formula takes as it is.

`preference_rows` turns votes into trl's preference format for DPO: every
comparison one answer won, plus thumbs up vs thumbs down answers to the same prompt.
"""
from __future__ import annotations

import json
import math
import os
import threading
import time
import uuid
from pathlib import Path

VOTES_FILE = "votes.jsonl"
EXPORT_DIR = "votes-export"  # the snapshot handed out keeps the name votes.jsonl
WINNERS = ("A", "B", "tie", "both_bad")
THUMBS = ("up", "down")
BASE, TUNED = "base", "tuned"
Z95 = 1.959963984540054  # the normal quantile for a two-sided 95% interval

_write_lock = threading.Lock()  # one appender at a time within this process; O_APPEND keeps processes apart


def voter_name(user_name: str) -> str:
    """Who voted, as written: the logged-in user's name, or "local" for the app on loopback and the CLI."""
    return user_name or "local"


def record_vote(run_dir: Path, prompt: str, answers: dict[str, str], models: dict[str, str], winner: str,
                voter: str = "", system: str = "", blind: bool = True) -> dict:
    """Append one A/B comparison to the run's votes.jsonl and return the record.

    `answers` and `models` map "A" and "B" to the answer texts and the models that gave them."""
    if winner not in WINNERS:
        raise ValueError(f"winner must be one of {WINNERS}, not {winner!r}")
    if set(answers) != {"A", "B"} or set(models) != {"A", "B"}:
        raise ValueError("answers and models need exactly the keys A and B")
    return _append(run_dir, {"kind": "compare", "prompt": prompt, "system": system,
                             "answers": {"A": answers["A"], "B": answers["B"]},
                             "models": {"A": models["A"], "B": models["B"]}, "winner": winner, "blind": blind,
                             "voter": voter_name(voter)})


def record_thumb(run_dir: Path, prompt: str, answer: str, model: str, thumb: str, voter: str = "",
                 system: str = "") -> dict:
    """Append a thumbs up or down for one answer (the normal, not blind, mode)."""
    if thumb not in THUMBS:
        raise ValueError(f"thumb must be one of {THUMBS}, not {thumb!r}")
    return _append(run_dir, {"kind": "thumb", "prompt": prompt, "system": system, "answer": answer,
                             "model": model, "thumb": thumb, "voter": voter_name(voter)})


def _append(run_dir: Path, record: dict) -> dict:
    record = {**record, "time": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()), "id": uuid.uuid4().hex}
    line = (json.dumps(record, ensure_ascii=False) + "\n").encode("utf-8")
    run_dir.mkdir(parents=True, exist_ok=True)
    with _write_lock:
        # one write() of a whole line on an O_APPEND descriptor: lines of two processes never interleave
        fd = os.open(run_dir / VOTES_FILE, os.O_WRONLY | os.O_CREAT | os.O_APPEND, 0o600)
        try:
            os.write(fd, line)
        finally:
            os.close(fd)
    return record


def load_votes(run_dir: Path) -> list[dict]:
    """Every vote of the run, oldest first; [] when there are none. Unreadable lines are skipped."""
    path = Path(run_dir) / VOTES_FILE
    if not path.is_file():
        return []
    votes = []
    for line in path.read_text(encoding="utf-8", errors="replace").splitlines():
        try:
            record = json.loads(line)
        except ValueError:  # a line cut short by a crash
            continue
        if isinstance(record, dict) and record.get("kind") in ("compare", "thumb"):
            votes.append(record)
    return votes


def wilson(wins: float, n: int, z: float = Z95) -> tuple[float, float]:
    """Wilson's score interval for a share of wins out of n; (0, 1) when there are no votes."""
    if n <= 0:
        return 0.0, 1.0
    p = wins / n
    denom = 1 + z * z / n
    center = (p + z * z / (2 * n)) / denom
    half = z * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n)) / denom
    return max(0.0, center - half), min(1.0, center + half)


def win_rate(votes: list[dict], model: str = TUNED, against: str = BASE) -> tuple[float, int, float, float]:
    """(share of `model`'s wins over `against`, number of comparisons, Wilson 95% low, high).

    Only comparisons between exactly these two models count; a tie or "both bad" is half a win.
    With no such votes: (0.0, 0, 0.0, 1.0)."""
    wins, n = 0.0, 0
    for vote in votes:
        models = vote.get("models") or {}
        if vote.get("kind") != "compare" or sorted(models.values()) != sorted((model, against)) or model == against:
            continue
        winner = vote.get("winner")
        if winner not in WINNERS:
            continue
        n += 1
        wins += 1.0 if winner in ("A", "B") and models[winner] == model else 0.5 if winner in ("tie", "both_bad") else 0.0
    low, high = wilson(wins, n)
    return (wins / n if n else 0.0), n, low, high


def pairings(votes: list[dict]) -> list[tuple[str, str]]:
    """Each pair of models compared in these votes, once, "tuned" first when it is one of them."""
    seen: dict[tuple[str, str], None] = {}
    for vote in votes:
        models = list((vote.get("models") or {}).values())
        if vote.get("kind") == "compare" and len(set(models)) == 2:
            a, b = sorted(models, key=lambda m: (m != TUNED, m == BASE, m))
            seen[(a, b)] = None
    return list(seen)


def preference_rows(run_dir: Path) -> list[dict]:
    """[{"prompt", "chosen", "rejected"}]: comparisons one answer won, then thumbs up vs down on the same prompt."""
    votes = load_votes(run_dir)
    rows: dict[tuple[str, str, str], None] = {}
    for vote in votes:
        winner = vote.get("winner")
        if vote.get("kind") == "compare" and winner in ("A", "B"):
            answers = vote.get("answers") or {}
            chosen, rejected = answers.get(winner, ""), answers.get("B" if winner == "A" else "A", "")
            _add_row(rows, vote.get("prompt", ""), chosen, rejected)
    ups: dict[str, list[str]] = {}
    downs: dict[str, list[str]] = {}
    for vote in votes:
        if vote.get("kind") == "thumb":
            (ups if vote.get("thumb") == "up" else downs).setdefault(vote.get("prompt", ""), []).append(
                vote.get("answer", ""))
    for prompt, liked in ups.items():
        for chosen in liked:
            for rejected in downs.get(prompt, []):
                _add_row(rows, prompt, chosen, rejected)
    return [{"prompt": p, "chosen": c, "rejected": r} for p, c, r in rows]


def _add_row(rows: dict, prompt: str, chosen: str, rejected: str) -> None:
    """Keep a pair once, and only when it teaches something: a prompt and two different, non-empty answers."""
    if prompt.strip() and chosen.strip() and rejected.strip() and chosen.strip() != rejected.strip():
        rows[(prompt, chosen, rejected)] = None


def export_copy(run_dir: Path) -> Path:
    """A snapshot of votes.jsonl to hand out (votes-export/votes.jsonl, replaced whole), so a download link
    made now does not grow with later votes; FileNotFoundError when the run has no votes."""
    data = (Path(run_dir) / VOTES_FILE).read_bytes()
    target = Path(run_dir) / EXPORT_DIR / VOTES_FILE
    target.parent.mkdir(exist_ok=True)
    temp = target.with_name(f".{VOTES_FILE}.{uuid.uuid4().hex}")
    temp.write_bytes(data)
    os.replace(temp, target)  # a new file: links to an older snapshot keep their content
    return target
