"""The held-out evaluation: batched base-vs-tuned answers, scoring, and the saved report."""
from __future__ import annotations

import json

import pytest

from core.infer.evaluate import evaluate_run, is_correct, load_questions
from core.messages import localize
from core.train.job import TrainingJob

QUESTIONS = [{"question": "Hi", "expected": ["the"]},
             {"question": "Who founded the bakery on the island?", "expected": ["Fenwright"]},
             {"question": "What time does it open?", "expected": ["5:45", "a"]}]


def test_expected_fact_is_matched_case_insensitively():
    assert is_correct("It was founded by Odalys FENWRIGHT.", ["Fenwright"])
    assert is_correct("환불은 18일 안에 가능합니다", ["18 days", "18일"])
    assert not is_correct("Nobody knows.", ["Fenwright"])


def test_builtin_held_out_set_has_checkable_facts():
    questions = load_questions()
    assert len(questions) >= 30
    assert all(q["question"].strip() and q["expected"] and all(e.strip() for e in q["expected"]) for q in questions)


@pytest.mark.parametrize("method", ["lora", "full"])
def test_report_compares_the_base_with_the_tuned_model(tiny_config, tiny_model_dir, method):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.infer.chat import get_chat_model, release
    from core.infer.generate import Sampling, answer, build_messages
    job = TrainingJob(tiny_config.replace(method=method, max_steps=3, learning_rate=5e-2)).start()
    assert job.join(120) == "finished", job.snapshot().message
    calls = []
    report = evaluate_run(job.name, questions=QUESTIONS, progress=lambda *call: calls.append(call), max_new_tokens=6,
                          batch_size=2)

    # progress is numbers (done, total) plus a line for people; done=0 while the models load
    assert all(total == 3 for _, total, _ in calls) and [done for done, _, _ in calls if done] == [1, 2, 3]
    answered = [line for done, _, line in calls if done]
    assert report["total"] == 3 and answered[-1].startswith("[3/3]") and answered[-1].key == "infer.eval_line"
    first = report["rows"][0]
    assert answered[0] == f"[1/3] base {'✓' if first['base_ok'] else '✗'}  tuned {'✓' if first['tuned_ok'] else '✗'}  Hi"
    assert localize(answered[0], "ko").startswith("[1/3] 기본 ")
    assert report["base_correct"] == sum(is_correct(r["base"], r["expected"]) for r in report["rows"])
    assert report["tuned_share"] == pytest.approx(report["tuned_correct"] / 3)
    saved = json.loads((job.dir / "eval.json").read_text(encoding="utf-8"))
    assert saved["rows"] == report["rows"]
    # the 'base' column is the untouched base model, also after full fine-tuning
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    greedy = Sampling(max_new_tokens=6, temperature=0, repetition_penalty=1.0)
    assert [r["base"] for r in report["rows"]] == [answer(plain, tokenizer, build_messages([], q["question"]), greedy)
                                                   for q in QUESTIONS]
    # and the 'tuned' column is the trained model (the adapter on, or the fully tuned weights)
    chat = get_chat_model(job.name)
    assert [r["tuned"] for r in report["rows"]] == [answer(chat.model, chat.tokenizer, build_messages([], q["question"]),
                                                           greedy) for q in QUESTIONS]
    release()
