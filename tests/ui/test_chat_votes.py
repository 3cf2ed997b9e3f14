"""The Chat tab's votes without a browser: two runs compared blind, the vote saved with which run was which,
its pairing scored; another user's run refused as either side; votes refused where they would mean nothing."""
from __future__ import annotations

from core.access import User
from core.access.ownership import write_owner
from core.infer import votes
from core.infer.generate import Sampling
from core.train.job import TrainingJob
from core.train.manager import JobManager
from ui import chat_answers, chat_votes

ANN, BOB = User("ann"), User("bob")
SHORT = Sampling(max_new_tokens=4, temperature=0.0)


def test_two_runs_compared_blind_then_voted_and_scored(tiny_config, runs_root):
    manager = JobManager(runs_root)
    quick = tiny_config.replace(max_steps=2, eval_steps=100, save_steps=100)
    for name, seed in (("first", 1), ("second", 2)):
        job = TrainingJob(quick.replace(run_name=name, seed=seed)).start()
        assert job.join(120) == "finished", job.snapshot().message
        write_owner(job.dir, ANN)  # ann's runs, as if started from her browser
    updates = list(chat_answers.answer(manager, "en", "first", "", "Who?", [], SHORT, user=ANN, against="run:second",
                                       blind=True))
    html, turns, note = updates[-1]
    assert 'data-done="1"' in note, note
    turn = turns[-1]
    assert sorted(turn["order"]) == ["run:second", "tuned"] and set(turn["answers"]) == {"tuned", "run:second"}
    assert turn["votable"] and "data-model" not in html  # blind: no model named before the vote

    html, turns, note, score = chat_votes.vote(manager, "en", "B", turns, ANN)
    saved = votes.load_votes(runs_root / "first")
    assert len(saved) == 1 and saved[0]["models"] == dict(zip("AB", turn["order"])) and saved[0]["voter"] == "ann"
    assert f'data-b="{turn["order"][1]}"' in note and "data-model" in html
    assert "Run second" in score and "of 1 votes" in score
    rate, n, _, _ = votes.win_rate(saved, "tuned", "run:second")
    assert n == 1 and rate == (1.0 if turn["order"][1] == "tuned" else 0.0)
    # one vote per turn; bob may neither vote on ann's run nor compare with it
    assert "already has your vote" in chat_votes.vote(manager, "en", "A", turns, ANN)[2]
    fresh = [{**turn, "vote": None}]
    assert "not one of yours" in chat_votes.vote(manager, "en", "A", fresh, BOB)[2]
    assert len(votes.load_votes(runs_root / "first")) == 1
    refused = list(chat_answers.answer(manager, "en", "first", "", "Who?", [], SHORT, user=BOB, against="run:second"))
    assert "not one of yours" in refused[-1][2]
    same = list(chat_answers.answer(manager, "en", "first", "", "Who?", [], SHORT, user=ANN, against="run:first"))
    assert "different run" in same[-1][2]


def test_votes_need_a_run_and_two_real_answers(runs_root):
    manager = JobManager(runs_root)
    blind = list(chat_answers.answer(manager, "ko", "", "", "Who?", [], SHORT, user=ANN, blind=True))
    assert "블라인드" in blind[-1][2]
    assert "Ask a question first" in chat_votes.vote(manager, "en", "A", [], ANN)[2]
    noted = [{"question": "q", "run": "", "order": ["base", "tuned"], "answers": {"base": "x"},
              "notes": {"tuned": "no tuned model"}, "blind": False, "votable": False, "vote": None, "thumbs": {}}]
    assert "can't take a vote" in chat_votes.thumb(manager, "en", 0, True, noted, ANN)[2]
    assert not (runs_root / "votes.jsonl").exists()
