"""The built-in demo set: held-out questions are unseen paraphrases, in both languages, with learnable answers."""
from __future__ import annotations

import json
import re
from pathlib import Path

from core.infer.evaluate import is_correct, load_questions

BUILTIN = Path(__file__).parents[3] / "core" / "data" / "builtin"
HANGUL = re.compile("[가-힣]")
PARTICLES = ("이", "가", "은", "는", "을", "를", "의", "에", "로", "와", "과", "도", "요")


def _train_rows() -> list[list[dict]]:
    lines = (BUILTIN / "demo_train.jsonl").read_text(encoding="utf-8").splitlines()
    return [json.loads(line)["messages"] for line in lines if line.strip()]


def _normal(text: str) -> str:
    """Case, spaces and punctuation dropped: 'Who founded X?' and 'who founded x' are the same question."""
    return re.sub(r"[\W_]+", "", text.casefold())


def test_each_language_has_at_least_30_held_out_questions():
    langs = [q["lang"] for q in load_questions()]
    assert langs.count("en") >= 30 and langs.count("ko") >= 30
    assert set(langs) == {"en", "ko"}
    assert all(HANGUL.search(q["question"]) for q in load_questions() if q["lang"] == "ko")


def test_no_held_out_question_appears_in_training():
    asked = {_normal(m["content"]) for messages in _train_rows() for m in messages if m["role"] == "user"}
    held_out = [q["question"] for q in load_questions() + load_questions(BUILTIN / "demo_eval_blind.jsonl")]
    assert len({_normal(q) for q in held_out}) == len(held_out), "a held-out question is listed twice"
    assert [q for q in held_out if _normal(q) in asked] == []


def test_the_blind_korean_set_asks_every_fact_three_times():
    blind = load_questions(BUILTIN / "demo_eval_blind.jsonl")
    assert len(blind) == 45 and all(q["lang"] == "ko" and HANGUL.search(q["question"]) for q in blind)
    facts = [tuple(q["expected"]) for q in blind]
    assert len(set(facts)) == 15 and all(facts.count(f) == 3 for f in facts)


def test_every_held_out_fact_is_taught_in_its_language():
    answers = {"en": [], "ko": []}
    for messages in _train_rows():
        answer = messages[-1]["content"]
        answers["ko" if HANGUL.search(answer) else "en"].append(answer)
    for q in load_questions():
        assert sum(is_correct(a, q["expected"]) for a in answers[q["lang"]]) >= 5, q


def test_korean_expected_strings_are_stems_not_words_with_particles():
    # "Wexley는" would miss "Wexley입니다"; the judged string must be the bare name or number
    for q in load_questions():
        if q["lang"] == "ko":
            assert all(not (HANGUL.search(e) and e.endswith(PARTICLES)) for e in q["expected"]), q
    assert is_correct("마스코트는 퍼핀 Wexley입니다.", ["Wexley"])
    assert is_correct("구매 후 18일 안에 환불받을 수 있습니다.", ["18 days", "18일"])


def test_korean_training_answers_are_short_and_state_a_fact():
    questions = load_questions()
    facts = {e for q in questions for e in q["expected"]}
    korean = [m[-1]["content"] for m in _train_rows() if HANGUL.search(m[-1]["content"])]
    assert len(korean) >= 100
    for answer in korean:
        assert is_correct(answer, sorted(facts)), answer
        assert len(re.findall(r"[.!?](?:\s|$)", answer)) <= 2, answer
