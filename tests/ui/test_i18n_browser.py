"""The language switch in a real browser: a Korean browser opens in Korean, flipping the switch relabels
the page and the server's answers without a reload, and the choice survives a reload.

Starts `python app.py` (no --lang: each browser's own language) and drives Debian's Chromium with a
Korean locale through Playwright, as tests/ui/test_browser.py does.
"""
from __future__ import annotations

from pathlib import Path

import pytest

from core.messages import text
from tests.ui.test_browser import ARGS, CHROMIUM, _serve

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def korean_page(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    sync_api = pytest.importorskip("playwright.sync_api")
    with sync_api.sync_playwright() as p:
        context = p.chromium.launch_persistent_context(str(tmp_path / "profile"), executable_path=CHROMIUM,
                                                       args=ARGS, headless=True, locale="ko-KR",
                                                       viewport={"width": 1400, "height": 1000})
        context.set_default_timeout(60_000)
        yield context.new_page()
        context.close()


def _shows(page, lang: str, answers: bool = True) -> None:
    """Static labels (tabs, buttons) and, with `answers`, lines the server renders are in `lang`."""
    from playwright.sync_api import expect

    expect.set_options(timeout=60_000)  # a busy 2-core machine
    for key in ("tab_data", "tab_train", "tab_chat", "tab_export"):
        expect(page.get_by_role("tab", name=text(key, lang))).to_be_visible()
    expect(page.locator("#check-data")).to_have_text(text("check_data", lang))
    page.get_by_role("tab", name=text("tab_train", lang)).click()
    expect(page.locator("#start")).to_have_text(text("start", lang))
    if answers:  # the server's answers (the settings check, the Data tab's check) run again in the new language
        expect(page.locator("#settings-check")).to_contain_text(text("check_title", lang))
        page.get_by_role("tab", name=text("tab_data", lang)).click()
        expect(page.locator("#data-summary")).to_contain_text(text("data_ok", lang), timeout=120_000)
    else:
        page.get_by_role("tab", name=text("tab_data", lang)).click()


def test_the_switch_follows_the_browser_then_the_choice(tmp_path, korean_page):
    page = korean_page
    with _serve(tmp_path) as (url, _):
        page.goto(url)
        _shows(page, "ko")  # a Korean browser, no choice made: Korean
        assert page.locator("#lang-switch input[value=ko]").is_checked()

        page.locator("#lang-switch").get_by_text("English").click()
        _shows(page, "en")  # relabelled in place, no reload
        assert page.evaluate("localStorage.getItem('tunelab-lang')") == "en"

        page.reload()
        _shows(page, "en", answers=False)  # the choice outlives the page
        assert page.locator("#lang-switch input[value=en]").is_checked()
        assert not page.get_by_role("tab", name=text("tab_data", "ko")).count()
        # gradio's own words follow the choice too: it reads navigator.language, which the page's head sets
        assert page.evaluate("navigator.language") == "en"
