"""The error doctor in the page: a failed run and a refused data check show what happened, what to do, and
the technical text folded under "Show details", in the page's language (core/doctor.py, ui/widgets.py)."""
from __future__ import annotations

import html
import json
import re
import shutil
from pathlib import Path

import pytest

from core.config import RunConfig
from core.train.job import TrainingJob

ARCH = "does not recognize this architecture"


def _unknown_model(folder: Path, embedded_dir: Path) -> Path:
    """A model folder transformers can't load: a made-up model type (the real tokenizer files)."""
    folder.mkdir()
    for name in ("tokenizer.json", "tokenizer_config.json"):
        shutil.copy(embedded_dir / name, folder / name)
    (folder / "config.json").write_text(json.dumps({"model_type": "xyz"}))
    return folder


def _failed_run(tmp_path: Path, embedded_dir: Path, root: Path):
    config = RunConfig(model=str(_unknown_model(tmp_path / "xyz", embedded_dir)), max_steps=2)
    job = TrainingJob(config, root=root).start()
    assert job.join(300) == "failed"
    return job.snapshot()


def test_a_failed_run_shows_what_todo_and_details_in_both_languages(tmp_path, embedded_dir, runs_root):
    from ui import live
    summary = _failed_run(tmp_path, embedded_dir, runs_root)
    assert ARCH not in summary.message and ARCH in summary.detail  # the library's text only in the details
    english, korean = (html.unescape(live.status_html(summary, lang)) for lang in ("en", "ko"))
    assert "can't be loaded here" in english and "SmolLM2" in english and "'xyz'" in english
    assert "<details" in english and "<summary>Show details</summary>" in english and ARCH in english
    assert "<summary>자세히 보기</summary>" in korean and "텍스트 생성(채팅) 모델" in korean
    assert "can't be loaded" not in korean and ARCH in korean  # the details stay the library's own words


def test_a_data_check_that_cannot_read_the_data_folds_the_details(monkeypatch):
    import datasets

    from ui.data_tab import check_data
    from ui.form import values_from_config

    def offline(*args, **kwargs):  # what datasets raises when huggingface.co can't be reached
        raise ConnectionError("Couldn't reach 'nobody/nothing-here' on the Hub (LocalEntryNotFoundError)")
    monkeypatch.setattr(datasets, "load_dataset", offline)
    values = values_from_config(RunConfig(dataset="nobody/nothing-here"))
    for lang, todo, fold in (("en", "Connect this machine to the internet", "Show details"),
                             ("ko", "인터넷에 연결한 뒤", "자세히 보기")):
        summary = check_data(values, "", lang)[0]
        shown, folded = summary.split("<details", 1)
        assert "nobody/nothing-here" in shown and todo in shown  # what happened and what to do
        assert "Traceback" not in shown and "LocalEntryNotFoundError" not in shown
        assert f"<summary>{fold}</summary>" in folded and "LocalEntryNotFoundError" in folded
        assert "Traceback" not in summary and "could not reach huggingface.co" not in folded


@pytest.mark.browser
@pytest.mark.slow
def test_the_page_folds_the_details_of_a_failed_run(tmp_path, embedded_dir):
    from playwright.sync_api import expect

    from tests.ui.test_browser import CHROMIUM, _serve
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    _failed_run(tmp_path, embedded_dir, tmp_path / "runs")  # the folder the served app reads
    with _serve(tmp_path) as (url, _), _browser(tmp_path) as page:
        page.goto(url)
        page.get_by_role("tab", name=re.compile("Train")).click()
        status = page.locator("#train-status")
        expect(status).to_contain_text("can't be loaded here", timeout=120_000)
        expect(status).to_contain_text("SmolLM2")  # what to do, in plain words
        details = status.locator("details")
        expect(details.locator("summary")).to_have_text("Show details")
        assert not details.locator("pre").is_visible()  # folded until asked
        details.locator("summary").click()
        expect(details.locator("pre")).to_be_visible()
        assert re.search(ARCH, details.locator("pre").inner_text())


def _browser(tmp_path: Path):
    import contextlib

    from playwright.sync_api import sync_playwright

    from tests.ui.test_browser import ARGS, CHROMIUM

    @contextlib.contextmanager
    def opened():
        with sync_playwright() as p:
            context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                           args=ARGS, headless=True)
            context.set_default_timeout(30_000)
            try:
                yield context.new_page()
            finally:
                context.close()
    return opened()
