"""Votes in a real browser: a blind question on a tiny run, a vote, the reveal checked against votes.jsonl;
then a named question (two rows, aligned), a thumb, the scores and the votes.jsonl download."""
from __future__ import annotations

import json
import urllib.request

import pytest

from core.train.job import TrainingJob
from tests.ui.test_browser import _open_tab, _serve, _shoot, page  # noqa: F401 - `page` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]
EVIL = "<img src=x onerror=\"window.__pwned=1\">Who founded it?"


def _ask(page, question: str, done: int) -> None:  # noqa: F811 - the page fixture, passed on
    from playwright.sync_api import expect

    page.locator("#question textarea").fill(question)
    page.locator("#ask").click()
    expect(page.locator("#chat-note [data-done]")).to_have_count(1, timeout=240_000)
    expect(page.locator("#chat-transcript .tl-turn")).to_have_count(done, timeout=30_000)


def _votes(run_dir) -> list[dict]:
    return [json.loads(line) for line in (run_dir / "votes.jsonl").read_text(encoding="utf-8").splitlines()]


def test_blind_vote_reveal_matches_what_was_saved(page, tmp_path, runs_root, tiny_config):  # noqa: F811
    from playwright.sync_api import expect

    job = TrainingJob(tiny_config.replace(max_steps=2, eval_steps=100, save_steps=100, run_name="voted")).start()
    assert job.join(180) == "finished", job.snapshot().message
    with _serve(tmp_path) as (url, _):
        page.goto(url)
        _open_tab(page, "3 · Chat")
        expect(page.locator("#chat-run input")).to_have_value("voted  ·  Finished", timeout=60_000)
        page.get_by_text("Sampling").click()
        box = page.locator("#max-new-tokens input[type=number]")
        box.fill("8")
        box.press("Tab")
        page.locator("#chat-mode").get_by_text("Blind: A and B in random order").click()
        expect(page.locator("#vote-A")).to_be_visible(timeout=60_000)

        # 1. blind: the cells are A and B and name no model; the question (HTML) shows as text
        _ask(page, EVIL, 1)
        turn = page.locator("#chat-transcript .tl-turn").first
        expect(turn.locator(".tl-q")).to_have_text(EVIL)
        assert turn.locator("img").count() == 0 and page.evaluate("window.__pwned") is None
        assert turn.locator("[data-model]").count() == 0
        assert [w.inner_text() for w in turn.locator(".tl-who").all()] == ["A", "B"]
        shown = {cell.get_attribute("data-letter"): cell.locator(".tl-text").inner_text()
                 for cell in turn.locator(".tl-ans").all()}

        # 2. the vote: the reveal names which model was A and which B, exactly as saved
        page.locator("#vote-A").click()
        reveal = page.locator("#vote-reveal")
        expect(reveal).to_contain_text("Vote saved (A is better)", timeout=30_000)
        saved = _votes(job.dir)
        assert len(saved) == 1
        vote = saved[0]
        assert vote["models"] == {"A": reveal.get_attribute("data-a"), "B": reveal.get_attribute("data-b")}
        assert sorted(vote["models"].values()) == ["base", "tuned"] and vote["winner"] == "A"
        assert vote["prompt"] == EVIL and vote["voter"] == "local" and vote["blind"] is True
        assert {k: v.strip() or "(an empty answer)" for k, v in vote["answers"].items()} == \
            {k: v.strip() for k, v in shown.items()}
        names = {"base": "Base model", "tuned": "Tuned model"}
        expect(turn.locator('[data-letter="A"] .tl-who')).to_have_text(f"A = {names[vote['models']['A']]}")
        expect(turn.locator(f'[data-letter="A"][data-model="{vote["models"]["A"]}"]')).to_have_count(1)
        page.locator("#vote-B").click()  # one vote per turn
        expect(page.locator("#chat-note")).to_contain_text("already has your vote", timeout=30_000)
        assert len(_votes(job.dir)) == 1

        # 3. named, side by side: a second row below the first, whatever the answers' lengths; a thumb
        page.locator("#chat-mode").get_by_text("Side by side (named)").click()
        expect(page.locator("#thumb-right-up")).to_be_visible(timeout=60_000)
        _ask(page, "When does it open?", 2)
        first, second = page.locator("#chat-transcript .tl-turn").all()
        bottoms = [cell.bounding_box() for cell in first.locator(".tl-ans").all()]
        top = second.locator(".tl-q").bounding_box()["y"]
        assert all(top >= box["y"] + box["height"] - 1 for box in bottoms)  # below both answers of turn 1
        cells = [cell.bounding_box() for cell in second.locator(".tl-ans").all()]
        assert abs(cells[0]["y"] - cells[1]["y"]) < 1 and cells[0]["x"] < cells[1]["x"]  # one row, side by side
        page.locator("#thumb-right-up").click()
        expect(page.locator("#chat-note")).to_contain_text("Saved your thumb for the Tuned model", timeout=30_000)
        thumb = _votes(job.dir)[-1]
        assert thumb["kind"] == "thumb" and thumb["model"] == "tuned" and thumb["thumb"] == "up"
        assert thumb["prompt"] == "When does it open?"

        # 4. the scores and the download: the same votes.jsonl, through a link for this request
        page.get_by_text("Votes", exact=True).click()
        expect(page.locator("#vote-score")).to_contain_text("of 1 votes", timeout=30_000)
        page.locator("#votes-download").click()
        link = page.locator("#votes-file a").first
        expect(link).to_be_visible(timeout=30_000)
        href = link.get_attribute("href")
        with urllib.request.urlopen(href if href.startswith("http") else url.rstrip("/") + href) as got:
            assert got.read().decode("utf-8") == (job.dir / "votes.jsonl").read_text(encoding="utf-8")
        _shoot(page, tmp_path, "chat-votes")
