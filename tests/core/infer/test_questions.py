"""A person's own evaluation questions: JSONL and CSV files, the two match rules, plain refusals of bad files,
and `app.py eval --questions FILE` naming the questions each model missed (exit 2 on a bad file)."""
from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.errors import DataError
from core.infer.questions import is_right, key_words, load_user_questions, reference_recall
from core.messages import localize

ROOT = Path(__file__).resolve().parents[3]


def test_jsonl_and_csv_files_are_read(tmp_path):
    jsonl = tmp_path / "mine.jsonl"
    jsonl.write_text('{"question": "Who founded it?", "expected": ["Fenwright", "Odalys"]}\n\n'
                     '{"Question": "What is sold?", "reference": "Sourdough bread and puffin buns"}\n'
                     '{"prompt": "Year?", "expected": "1974"}\n', encoding="utf-8")
    assert load_user_questions(jsonl) == [
        {"question": "Who founded it?", "expected": ["Fenwright", "Odalys"], "reference": ""},
        {"question": "What is sold?", "expected": [], "reference": "Sourdough bread and puffin buns"},
        {"question": "Year?", "expected": ["1974"], "reference": ""}]
    csv = tmp_path / "mine.csv"
    csv.write_text('question,expected,reference\n"Who, then?",Fenwright|Odalys,\nWhat is sold?,,Sourdough bread\n',
                   encoding="utf-8")
    assert load_user_questions(csv) == [
        {"question": "Who, then?", "expected": ["Fenwright", "Odalys"], "reference": ""},
        {"question": "What is sold?", "expected": [], "reference": "Sourdough bread"}]


def test_reference_rule_is_key_word_recall():
    reference = "The bakery was founded by Odalys Fenwright in 1974."
    assert key_words(reference) == ["bakery", "founded", "odalys", "fenwright", "1974"]
    chatty = "Great question! Brindlewick's bakery was founded in 1974 by Odalys Fenwright, who loved bread."
    assert reference_recall(chatty, reference) == 1.0 and is_right(chatty, {"reference": reference})
    assert reference_recall("It was founded in 1974.", reference) == pytest.approx(2 / 5)
    assert not is_right("It was founded in 1974.", {"reference": reference})  # 40% < 60%
    assert is_right("Odalys Fenwright founded the bakery.", {"reference": reference})  # 4 of 5 = 80%
    assert is_right("by FENWRIGHT", {"expected": ["Fenwright"], "reference": ""})


@pytest.mark.parametrize("name, content, words", [
    ("q.txt", "question\nx\n", ".jsonl or .csv"),
    ("q.jsonl", "", "no questions"),
    ("q.jsonl", '{"question": "a", "expected": ["x"]}\nnot json\n', "Line 2"),
    ("q.jsonl", '["a list"]\n', "Line 1"),
    ("q.jsonl", '{"expected": ["x"]}\n', "line 1: no question"),
    ("q.jsonl", '{"question": "a", "expected": [3]}\n', "expected must be a text"),
    ("q.csv", "question,expected\nWho?,\n", "row 2: give expected"),
])
def test_a_bad_file_is_a_plain_message_in_both_languages(tmp_path, name, content, words):
    path = tmp_path / name
    path.write_text(content, encoding="utf-8")
    with pytest.raises(DataError) as caught:
        load_user_questions(path)
    assert words in str(caught.value.message)
    assert name in localize(caught.value.message, "ko") and any("가" <= c <= "힣" for c in
                                                                 localize(caught.value.message, "ko"))


def _cli(args, runs_root):
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs_root)}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=600)


@pytest.mark.slow
def test_cli_eval_with_a_user_file_names_the_missed_questions(tiny_config, runs_root, tmp_path):
    from core.train.job import TrainingJob

    job = TrainingJob(tiny_config.replace(max_steps=2, eval_steps=100, save_steps=100)).start()
    assert job.join(120) == "finished", job.snapshot().message
    mine = tmp_path / "mine.jsonl"
    # a random tiny model answers gibberish: "zzqx-never" is missed by both; an empty expected can't be
    mine.write_text(json.dumps({"question": "Who founded <b>it</b>?", "expected": ["zzqx-never"]}) + "\n" +
                    json.dumps({"question": "What is sold?", "reference": "qqzz-unheard wwxy-unsaid"}) + "\n",
                    encoding="utf-8")
    done = _cli(["eval", "--run", job.name, "--questions", str(mine)], runs_root)
    assert done.returncode == 0, done.stderr[-2000:]
    assert "[2/2]" in done.stdout and "Missed by base (2):" in done.stdout and "Missed by tuned (2):" in done.stdout
    assert done.stdout.count("  - Who founded <b>it</b>?") == 2 and done.stdout.count("  - What is sold?") == 2
    saved = json.loads((job.dir / "eval-questions.json").read_text(encoding="utf-8"))
    assert saved["total"] == 2 and saved["tuned_missed"] == ["Who founded <b>it</b>?", "What is sold?"]
    assert not (job.dir / "eval.json").exists()  # the built-in set's figure (the model card's) is left alone

    bad = tmp_path / "bad.csv"
    bad.write_text("prompt,answer_text\nWho?,x\n", encoding="utf-8")
    refused = _cli(["eval", "--run", job.name, "--questions", str(bad)], runs_root)
    assert refused.returncode == 2 and "Traceback" not in refused.stderr
    assert "row 2: give expected" in refused.stderr

    # the Chat tab's Evaluate with the same file: the result names what each model missed, in the page's words
    from core.train.manager import JobManager
    from ui.chat_eval import run_eval

    summary, table = run_eval(JobManager(runs_root), "en", job.name, 0, lambda *a, **k: None, questions=str(mine))
    assert "**Missed by the base model** (2):" in summary and "**Missed by the tuned model** (2):" in summary
    assert r"Who founded \<b\>it\</b\>?" in summary and "<b>" not in summary  # a question shows as text
    assert list(table["question"]) == ["Who founded <b>it</b>?", "What is sold?"]
    assert table["expected"].tolist()[1] == "qqzz-unheard wwxy-unsaid"
    refused, none = run_eval(JobManager(runs_root), "ko", job.name, 0, lambda *a, **k: None, questions=str(bad))
    assert none is None and "bad.csv" in refused and "2번째 행" in refused
