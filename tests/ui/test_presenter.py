"""Presenter mode and the time & cost line: the --presenter flag, and what the panel draws from a run's events.

The drawing functions are pure (a core.runs summary in, HTML out); the page itself is
driven in a real browser by tests/ui/test_presenter_browser.py.
"""
from __future__ import annotations

import re

import pytest

import app
from core.events import EventLog
from core.runs import summarize
from ui import live, presenter

HANGUL = re.compile("[\uac00-\ud7a3]")


def _run(tmp_path, finished: bool = True):
    path = tmp_path / "demo-run"
    log = EventLog(path / "events.jsonl")
    log.append("started", model="m", method="lora", total_steps=4)
    log.append("estimate", seconds=90.0)
    for step, loss in [(1, 2.0), (2, 1.5)]:
        log.append("log", step=step, total_steps=4, loss=loss, elapsed=step * 10.0, eta=(4 - step) * 10.0)
    if finished:
        log.append("finished", step=4, message="Finished 4 steps.")
    return path


@pytest.mark.parametrize("argv", [["--presenter"], ["ui", "--presenter"], ["--presenter", "ui"]])
def test_the_presenter_flag_reaches_the_page(monkeypatch, argv):
    seen = {}
    monkeypatch.setattr(app, "launch", lambda **kw: seen.update(kw) or 0)
    assert app.main(argv) == 0
    assert seen["presenter"] is True


def test_presenter_is_off_unless_asked(monkeypatch):
    seen = {}
    monkeypatch.setattr(app, "launch", lambda **kw: seen.update(kw) or 0)
    monkeypatch.delenv("TUNELAB_PRESENTER", raising=False)
    app.main([])
    assert seen["presenter"] is False
    monkeypatch.setenv("TUNELAB_PRESENTER", "1")  # a Space or a pod sets it as a variable
    app.main(["ui"])
    assert seen["presenter"] is True


def test_progress_shows_step_time_left_and_the_estimate(tmp_path):
    running = summarize(_run(tmp_path, finished=False), active=True)
    page = presenter.progress_html(running, 3.6, "en", now=running.segment_start + 30)
    assert 'data-status="running"' in page and "Step 2 / 4" in page and 'aria-valuenow="50"' in page
    assert 'id="pm-left">0:20<' in page and 'id="pm-elapsed">0:30<' in page
    assert "1:30 · $0.09" in page  # the estimate made at Start, priced at $3.60/h
    ko = presenter.progress_html(running, None, "ko")
    assert HANGUL.search(ko) and "남은 시간" in ko and "$" not in ko  # no price: no cost


def test_the_finished_run_shows_real_time_and_cost_next_to_the_estimate(tmp_path):
    done = summarize(_run(tmp_path))
    page = presenter.progress_html(done, 3.6, "en")
    assert 'data-status="finished"' in page and "Trained for" in page and "(estimated 1:30 · $0.09" in page
    line = presenter.run_line(done, 3.6, "en")
    assert line.startswith("**demo-run**") and "estimated 1:30" in line
    assert "예상" in presenter.run_line(done, None, "ko")
    assert presenter.run_line(None, 1.0, "en") == ""
    # the Train tab's metric card and runs table carry the same comparison
    assert "(1:30)" in live.metrics_html(done) and live.runs_frame([done]).iloc[0].tolist()[-1].endswith("(1:30)")


def test_the_estimate_before_start_needs_the_data_checked():
    values = {"model": "embedded:smollm2-135m-instruct", "max_steps": 10}
    assert "Data tab" in presenter.estimate_line(values, None, 1.0, "en")
    stats = {"examples": 40, "tokens": 4000, "trained_share": 0.5, "length_p50": 100}
    line = presenter.estimate_line(values, stats, 2.0, "en")
    assert line.startswith("⏱ Training takes about") and "at $2.00/h" in line
    assert HANGUL.search(presenter.estimate_line(values, stats, None, "ko"))


def test_answers_are_escaped_under_the_models_name():
    page = presenter.answer_html("tuned", "<b>Odalys</b>", "en", "Who?")
    assert "Tuned model" in page and "&lt;b&gt;Odalys" in page and "Who?" in page
