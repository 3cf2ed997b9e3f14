"""Presenter-mode screenshots at 1280x720, English and Korean: docs/presenter-en.png, docs/presenter-ko.png.

    .venv/bin/python docs/make_screenshots.py                     # trains the CPU demo preset first (minutes)
    .venv/bin/python docs/make_screenshots.py --runs /tmp/r       # reuse (or keep) the runs in /tmp/r
    .venv/bin/python docs/make_screenshots.py --steps 20          # a shorter run (a curve, answers less right)

It trains with the headless CLI (`app.py train --config presets/cpu-demo.yaml`) unless the
runs folder already holds a finished run, then starts the real server (`app.py --presenter`)
on a free loopback port and drives Debian's Chromium (/usr/bin/chromium) with Playwright:
per language it opens the page in that language, asks the demo question in presenter mode,
waits for both answers and saves the 1280x720 screen. The screen shows the real loss curve,
the run's real time next to its estimate, and the two models' real answers.
"""
from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from core.messages import text  # noqa: E402 - after the path: run as a script from anywhere

CHROMIUM = "/usr/bin/chromium"
ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
        "--disable-background-networking", "--disable-component-update", "--disable-sync"]
SIZE = {"width": 1280, "height": 720}
QUESTIONS = {lang: text("presenter.default_question", lang) for lang in ("en", "ko")}  # the panel's own example


def finished_run(runs: Path) -> str | None:
    """The newest run in `runs` that finished, or None."""
    from core import runs as run_files  # noqa: PLC0415 - the engine only once the arguments are parsed

    done = [s for s in run_files.list_runs(runs) if s.status == "finished" and s.has_adapter]
    return done[0].name if done else None


def train(runs: Path, steps: int) -> None:
    extra = ["--set", f"max_steps={steps}"] if steps else []
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs)}
    subprocess.run([sys.executable, "app.py", "train", "--config", "presets/cpu-demo.yaml", *extra], cwd=ROOT,
                   env=env, check=True)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@contextlib.contextmanager
def serve(runs: Path, log: Path):
    """`app.py --presenter` on a free port with `runs`; yields its address once it answers."""
    port = _free_port()
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs), "PYTHONUNBUFFERED": "1"}
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port), "--presenter"], cwd=ROOT, env=env,
                                stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}/"
    try:
        deadline = time.time() + 300
        while True:
            if proc.poll() is not None or time.time() > deadline:
                raise SystemExit(f"the app did not start:\n{log.read_text()[-3000:]}")
            try:
                with urllib.request.urlopen(url, timeout=5):
                    break
            except OSError:
                time.sleep(1)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def shoot(browser, url: str, lang: str, target: Path) -> None:
    """One language's screenshot: the page in `lang`, the demo question asked in presenter mode."""
    context = browser.new_context(viewport=SIZE, locale="ko-KR" if lang == "ko" else "en-US")
    context.add_init_script(f"localStorage.setItem('tunelab-lang', {json.dumps(lang)});")
    context.add_cookies([{"name": "tunelab_lang", "value": lang, "url": url}])
    page = context.new_page()
    page.set_default_timeout(120_000)
    page.goto(url)
    page.locator("#pm-question").wait_for(state="visible")
    page.locator("#pm-progress [data-status='finished']").wait_for(state="visible")  # the newest run: ours
    page.locator("#pm-loss canvas, #pm-loss svg").first.wait_for(state="visible")
    page.locator("#pm-question textarea, #pm-question input").first.fill(QUESTIONS[lang])
    page.locator("#pm-ask").click()
    page.locator("#pm-note [data-done]").wait_for(state="attached", timeout=600_000)
    page.wait_for_timeout(4000)  # the plot's last redraw (the language switch redraws it)
    page.screenshot(path=str(target))
    context.close()


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, help="runs folder to use (default: a new temporary one)")
    parser.add_argument("--steps", type=int, default=0, help="train only this many steps (default: the preset's)")
    parser.add_argument("--out", type=Path, default=ROOT / "docs", help="where the PNGs go")
    args = parser.parse_args(argv)
    runs = args.runs or Path(tempfile.mkdtemp(prefix="tunelab-shots-")) / "runs"
    if finished_run(runs) is None:
        train(runs, args.steps)
    run = finished_run(runs)
    if run is None:
        raise SystemExit(f"no finished run in {runs}")
    from playwright.sync_api import sync_playwright  # noqa: PLC0415 - only the screenshot step needs it

    args.out.mkdir(parents=True, exist_ok=True)
    with serve(runs, runs.parent / "screenshots-app.log") as url, sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        for lang in ("en", "ko"):
            target = args.out / f"presenter-{lang}.png"
            shoot(browser, url, lang, target)
            print(f"wrote {target}")
        browser.close()
    return 0


if __name__ == "__main__":
    sys.exit(main())
