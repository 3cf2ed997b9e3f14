"""The Chat tab's transcript: one row per turn (the question once, both answers side by side beneath it),
blind cells that name no model until the vote, and model output escaped (it is untrusted)."""
from __future__ import annotations

import re

from ui.transcript import render

EVIL = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def _turn(question, left, right, **extra):
    return {"question": question, "order": ["base", "tuned"], "answers": {"base": left, "tuned": right},
            "notes": {}, "blind": False, "vote": None, "thumbs": {}, **extra}


def test_two_turns_render_as_two_rows_each_with_its_question_and_two_answers():
    page = render([_turn("Who founded it?", "A long answer. " * 40, "Fenwright."),
                   _turn("When does it open?", "At six.", "At 5:45.")], "en")
    rows = re.findall(r'<div class="tl-turn" data-turn="(\d)"><div class="tl-q">([^<]*)</div>(.*?)</div></div>'
                      r'(?=<div class="tl-turn"|</div>$)', page)
    assert [(i, q) for i, q, _ in rows] == [("0", "Who founded it?"), ("1", "When does it open?")]
    for _, _, cells in rows:  # both answers inside the same row, base left, tuned right
        assert re.findall(r'data-side="(\w+)" data-letter="\w" data-model="(\w+)"', cells) == [
            ("left", "base"), ("right", "tuned")]
    assert page.count('class="tl-q"') == 2 and "Fenwright." in rows[0][2] and "At 5:45." in rows[1][2]


def test_model_output_and_questions_are_escaped():
    page = render([_turn(EVIL, EVIL, "ok")], "en")
    assert "<img" not in page and "<script" not in page
    assert "&lt;img src=x onerror=&quot;alert(1)&quot;&gt;&lt;script&gt;" in page


def test_blind_cells_are_a_and_b_until_the_vote_then_named():
    turn = _turn("q", "base says", "tuned says", blind=True)
    turn["order"] = ["tuned", "base"]
    hidden = render([turn], "en")
    assert "data-model" not in hidden and ">A<" in hidden and ">B<" in hidden
    assert "Base model" not in hidden and "Tuned model" not in hidden
    shown = render([{**turn, "vote": "A"}], "ko")
    assert 'data-letter="A" data-model="tuned"' in shown and "A = 튜닝된 모델" in shown and "B = 기본 모델" in shown


def test_a_note_instead_of_an_answer_and_the_empty_transcript():
    page = render([_turn("q", "", "x", notes={"tuned": "no tuned model <yet>"})], "en")
    assert "tl-note-text" in page and "no tuned model &lt;yet&gt;" in page
    assert "Ask a question" in render([], "en") and re.search("[가-힣]", render([], "ko"))


def test_an_empty_answer_is_dots_while_written_and_says_so_when_done():
    writing = render([_turn("q", "", "  \n")], "en")
    assert writing.count(">…<") == 2
    done = render([_turn("q", "", "\n\n", done=True)], "en")
    assert done.count("(an empty answer)") == 2 and "…" not in done
