"""The Export tab in a real browser: sizes shown before export, GGUF f16 exported from a 2-step run of the
embedded model, and the parity result on the page (same answers as the merged model)."""
from __future__ import annotations

import pytest

from core.config import RunConfig
from core.train.job import TrainingJob
from tests.ui.test_browser import _open_tab, _serve, _shoot, page  # noqa: F401 - `page` is a fixture

pytestmark = [pytest.mark.browser, pytest.mark.slow]


def test_export_tab_shows_sizes_and_the_gguf_parity_result(page, tmp_path, runs_root):  # noqa: F811
    from playwright.sync_api import expect

    config = RunConfig(max_steps=2, batch_size=2, max_length=96, subset_share=0.1, validation_share=0.05,
                       eval_steps=0, save_steps=0, run_name="browser-export")
    job = TrainingJob(config).start()
    assert job.join(600) == "finished", job.snapshot().message
    with _serve(tmp_path) as (url, _):
        page.goto(url)
        _open_tab(page, "4 · Export")
        expect(page.locator("#export-run input")).to_have_value("browser-export  ·  Finished", timeout=60_000)
        expect(page.locator("#export-sizes")).to_contain_text("merged model (bf16) 269 MB", timeout=60_000)
        expect(page.locator("#export-sizes")).to_contain_text("GGUF q8_0")
        page.locator("#export-quants").get_by_label("q8_0").uncheck()
        page.locator("#export-gguf").click()
        result = page.locator("#gguf-result")
        # the file name shows in the progress line at once; the report's own lines only when it is done
        expect(result).to_contain_text("TEMPLATE renders conversations exactly like", timeout=600_000)
        expect(result.locator("tr", has_text="browser-export-f16.gguf")).to_contain_text("yes")
        expect(result).not_to_contain_text("answers differently")
        assert not (runs_root / "browser-export" / "gguf" / "browser-export-q8_0.gguf").exists()
        _shoot(page, tmp_path, "export-gguf")
