"""Two processes of the embedded model through the real `accelerate launch` path (gloo on a CPU):
from the CLI with the CPU demo preset, and from the Train tab in a real browser."""
from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from core.events import read_events
from core.runs import summarize
from core.train.distributed import worker_pids

ROOT = Path(__file__).resolve().parents[1]


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except (ProcessLookupError, OSError):
        return False


def _check_two_process_run(run_dir: Path, steps: int) -> None:
    events = read_events(run_dir / "events.jsonl")
    started = [e for e in events if e["type"] == "started"]
    assert len(started) == 1 and started[0]["processes"] == 2 and started[0]["distributed"] == "ddp"
    assert [e["type"] for e in events if e["type"] in ("finished", "stopped", "failed")] == ["finished"]
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert len(losses) == steps and all(loss == loss and loss > 0 for loss in losses)  # one curve, no NaN
    assert summarize(run_dir).status == "finished"
    pids = worker_pids(run_dir)
    assert len(pids) == 2 and not [pid for pid in pids if _alive(pid)]  # both ranks ran, none left behind


@pytest.mark.slow
def test_cli_trains_the_demo_preset_with_two_processes(tmp_path):
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(tmp_path / "runs")}
    done = subprocess.run([sys.executable, "app.py", "train", "--config", "presets/cpu-demo.yaml",
                           "--set", "num_processes=2", "max_steps=3", "eval_steps=3"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stdout[-2000:] + done.stderr[-3000:]
    assert "Starting 2 training processes with accelerate launch (ddp)" in done.stdout
    (run_dir,) = [p for p in (tmp_path / "runs").iterdir() if p.is_dir()]
    _check_two_process_run(run_dir, steps=3)

    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.config import DEFAULT_MODEL
    from core.models import resolve
    base = AutoModelForCausalLM.from_pretrained(resolve(DEFAULT_MODEL))
    tuned = PeftModel.from_pretrained(base, run_dir / "adapter")  # plain peft, no TuneLab
    assert any("lora_B" in name and p.abs().sum() > 0 for name, p in tuned.named_parameters())


@pytest.mark.slow
@pytest.mark.browser
def test_train_tab_runs_two_processes(tmp_path):
    from playwright.sync_api import expect

    from tests.ui.test_browser import CHROMIUM, _open_tab, _serve, _set_number
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing")
    sync_api = pytest.importorskip("playwright.sync_api")
    from tests.ui.test_browser import ARGS

    with _serve(tmp_path) as (url, _), sync_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        page = browser.new_page(viewport={"width": 1400, "height": 1000})
        page.set_default_timeout(30_000)
        page.goto(url)
        _open_tab(page, "2 · Train")
        expect(page.locator("#settings-check")).to_contain_text("Settings look good", timeout=120_000)
        _set_number(page, "max_steps", 2)
        page.get_by_text("More settings: training").click()  # the two settings live in the training section
        _set_number(page, "num_processes", 2)
        _set_number(page, "eval_steps", 2)  # one evaluation and one round of sample answers, at the end
        page.locator("#start").click()
        expect(page.locator("#train-action")).to_contain_text("Started run", timeout=60_000)
        run_name = page.locator("#run-shown input").input_value().strip()
        expect(page.locator("#train-status")).to_contain_text("Finished", timeout=400_000)
        browser.close()
    _check_two_process_run(tmp_path / "runs" / run_name, steps=2)
