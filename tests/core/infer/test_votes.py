"""Votes: votes.jsonl written and read back (also after a restart and a torn line), the win rate with its
Wilson interval against hand-computed figures, and the preference rows DPO trains on."""
from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from core.infer import votes

ROOT = Path(__file__).resolve().parents[3]


def _compare(run, winner, a="tuned", b="base", prompt="Who founded it?"):
    return votes.record_vote(run, prompt, {"A": f"answer of {a}", "B": f"answer of {b}"}, {"A": a, "B": b}, winner,
                             voter="ann")


def test_votes_are_appended_and_read_back_in_another_process(tmp_path):
    run = tmp_path / "run"
    saved = votes.record_vote(run, "Who founded it?", {"A": "Fenwright.", "B": "Nobody <b>knows</b>."},
                              {"A": "base", "B": "tuned"}, "B", voter="", system="Be brief.")
    votes.record_thumb(run, "When does it open?", "At 5:45.", "tuned", "up", voter="ann")
    assert saved["voter"] == "local" and saved["time"].endswith("Z") and len(saved["id"]) == 32
    # a restart: a fresh interpreter reads the same votes
    # (votes.py alone, by its path: the core.infer package would import torch first, for nothing here)
    code = ("import importlib.util, json; spec = importlib.util.spec_from_file_location('v', 'core/infer/votes.py');"
            " votes = importlib.util.module_from_spec(spec); spec.loader.exec_module(votes);"
            f" print(json.dumps(votes.load_votes({str(run)!r})))")
    out = subprocess.run([sys.executable, "-c", code], cwd=ROOT, capture_output=True, text=True, timeout=120)
    loaded = json.loads(out.stdout)
    assert loaded == votes.load_votes(run) and len(loaded) == 2
    first, second = loaded
    assert first["prompt"] == "Who founded it?" and first["answers"] == {"A": "Fenwright.", "B": "Nobody <b>knows</b>."}
    assert first["models"] == {"A": "base", "B": "tuned"} and first["winner"] == "B" and first["system"] == "Be brief."
    assert second["kind"] == "thumb" and second["thumb"] == "up" and second["voter"] == "ann"
    # a line cut short by a crash is skipped; the next vote still lands on a line of its own
    with (run / votes.VOTES_FILE).open("a", encoding="utf-8") as f:
        f.write('{"kind": "compare", "prom')
    assert len(votes.load_votes(run)) == 2
    (run / votes.VOTES_FILE).open("a").write("\n")
    _compare(run, "A")
    assert len(votes.load_votes(run)) == 3


def test_bad_winner_or_thumb_is_refused(tmp_path):
    with pytest.raises(ValueError):
        _compare(tmp_path, "C")
    with pytest.raises(ValueError):
        votes.record_thumb(tmp_path, "q", "a", "tuned", "sideways")
    assert votes.load_votes(tmp_path) == []


def test_win_rate_and_wilson_interval_match_hand_computed_figures(tmp_path):
    # tuned vs base: 6 tuned wins (4 as A, 2 as B), 2 base wins, 1 tie, 1 both bad -> 6 + 0.5 + 0.5 = 7 of 10
    for winner, a, b in [("A", "tuned", "base")] * 4 + [("B", "base", "tuned")] * 2 + [("A", "base", "tuned")] * 2 \
            + [("tie", "tuned", "base"), ("both_bad", "base", "tuned")]:
        _compare(tmp_path, winner, a, b)
    _compare(tmp_path, "A", "tuned", "run:other")  # another pairing: not in tuned vs base
    votes.record_thumb(tmp_path, "q", "a", "tuned", "down")  # a thumb is not a comparison
    found = votes.load_votes(tmp_path)
    rate, n, low, high = votes.win_rate(found)
    # Wilson, z = 1.96, p = 0.7, n = 10: (p + z²/2n) / (1 + z²/n) ∓ z·sqrt(p(1-p)/n + z²/4n²) / (1 + z²/n)
    assert (rate, n) == (0.7, 10)
    assert low == pytest.approx(0.3968, abs=1e-4) and high == pytest.approx(0.8922, abs=1e-4)
    assert votes.win_rate(found, "base", "tuned")[:2] == (pytest.approx(0.3), 10)  # the other side's view
    assert votes.win_rate(found, "tuned", "run:other")[:2] == (1.0, 1)
    assert votes.pairings(found) == [("tuned", "base"), ("tuned", "run:other")]
    assert votes.win_rate([]) == (0.0, 0, 0.0, 1.0)
    # 8 of 10, the textbook example: (0.490, 0.943)
    assert votes.wilson(8, 10) == (pytest.approx(0.4902, abs=1e-4), pytest.approx(0.9433, abs=1e-4))


def test_preference_rows_from_wins_and_thumbs(tmp_path):
    _compare(tmp_path, "A", prompt="p1")            # chosen: tuned's answer
    _compare(tmp_path, "B", prompt="p2")            # chosen: base's answer
    _compare(tmp_path, "tie", prompt="p3")          # no preference
    _compare(tmp_path, "both_bad", prompt="p4")     # no preference
    votes.record_thumb(tmp_path, "p5", "good answer", "tuned", "up")
    votes.record_thumb(tmp_path, "p5", "bad answer", "base", "down")
    votes.record_thumb(tmp_path, "p6", "lonely", "tuned", "up")  # no thumbs-down to pair with
    _compare(tmp_path, "A", prompt="p1")            # the same pair again: kept once
    assert votes.preference_rows(tmp_path) == [
        {"prompt": "p1", "chosen": "answer of tuned", "rejected": "answer of base"},
        {"prompt": "p2", "chosen": "answer of base", "rejected": "answer of tuned"},
        {"prompt": "p5", "chosen": "good answer", "rejected": "bad answer"}]


def test_export_is_a_snapshot(tmp_path):
    _compare(tmp_path, "A")
    snapshot = votes.export_copy(tmp_path)
    before = snapshot.read_text(encoding="utf-8")
    _compare(tmp_path, "B")
    assert snapshot.read_text(encoding="utf-8") == before and len(before.splitlines()) == 1
    assert len(votes.export_copy(tmp_path).read_text(encoding="utf-8").splitlines()) == 2


def test_model_card_shows_the_win_rates_when_there_are_votes(tmp_path):
    from core.config import RunConfig
    from core.infer.modelcard import build

    assert "## Votes" not in str(build(RunConfig(), tmp_path, "adapter"))
    for winner in ("A", "A", "B", "tie"):  # tuned as A: 2 + 0.5 of 4
        _compare(tmp_path, winner)
    card = str(build(RunConfig(), tmp_path, "adapter"))
    assert "## Votes" in card and "| this model vs base | 4 | 62% | 22%–91% |" in card
    assert "ann" not in card  # who voted stays in the run folder
