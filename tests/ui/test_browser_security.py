"""Safety in a real browser, one server for every check (a busy CPU): two users and an admin log in.

Before the server starts: a run of ann's on disk (with a checkpoint pickle), a secret file outside the
allowed folders and a symlink to it inside one. While it serves, another process holds the device for an
ownerless run, as `app.py train` would. Checked: the login delay (HTTP to 127.0.0.1), bob not seeing ann's
run anywhere nor fetching its files, the path refusal (a path and a symlink), no remote-code box, and the
admin seeing ann's run with its owner and the other process's run as "Running elsewhere".
"""
from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from pathlib import Path

import pytest

from core.access import hash_password
from tests.core.test_devicelock import hold_in_another_process
from tests.ui.test_browser import ARGS, CHROMIUM, ROOT, _free_port, _wait_for_http

pytestmark = [pytest.mark.browser, pytest.mark.slow]
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))


def _fake_run(root: Path, name: str, owner: str) -> Path:
    """A finished run on disk: config, events, an adapter marker, a checkpoint pickle, its owner."""
    run = root / name
    (run / "adapter").mkdir(parents=True)
    (run / "checkpoints" / "step-000002").mkdir(parents=True)
    (run / "checkpoints" / "step-000002" / "training_state.pt").write_bytes(b"pickle")
    (run / "adapter" / "adapter_config.json").write_text("{}")
    (run / "config.yaml").write_text(f"run_name: {name}\nmax_steps: 2\n")
    events = [{"type": "started", "time": time.time(), "model": "m", "method": "lora", "total_steps": 2},
              {"type": "log", "time": time.time(), "step": 2, "loss": 1.5},
              {"type": "finished", "time": time.time(), "step": 2, "message": "done"}]
    (run / "events.jsonl").write_text("".join(json.dumps(e) + "\n" for e in events))
    if owner:
        (run / "owner.json").write_text(json.dumps({"user": owner}))
    return run


def _login_seconds(base: str, user: str, password: str) -> tuple[int, float]:
    data = urllib.parse.urlencode({"username": user, "password": password}).encode()
    began = time.monotonic()
    try:
        with NO_PROXY.open(urllib.request.Request(base + "login", data=data), timeout=60) as reply:
            return reply.status, time.monotonic() - began
    except urllib.error.HTTPError as err:
        return err.code, time.monotonic() - began


def _log_in(browser, url: str, user: str, password: str):
    from playwright.sync_api import expect

    context = browser.new_context(viewport={"width": 1400, "height": 1000})
    context.set_default_timeout(60_000)
    page = context.new_page()
    page.goto(url)
    page.get_by_role("textbox", name="username").fill(user)
    page.get_by_role("textbox", name="password").fill(password)
    page.get_by_role("button", name="Login").click()
    expect(page.locator("#check-data")).to_be_visible(timeout=120_000)
    return page


def _listed(page, tab: str, picker: str) -> int:
    """How many choices of a tab's run picker name ann's run (the list is filled for this user on load)."""
    page.get_by_role("tab", name=tab).click()
    page.wait_for_timeout(1500)  # the tab's refresh on select
    page.locator(f"{picker} input").click()
    page.wait_for_timeout(1000)
    count = page.get_by_role("option", name=re.compile("ann-run")).count()
    page.keyboard.press("Escape")
    return count


def _past_runs(page) -> str:
    from playwright.sync_api import expect

    page.get_by_role("tab", name="2 · Train").click()
    page.get_by_text("Past runs").click()
    expect(page.locator("#runs-table")).to_contain_text("Owner", timeout=60_000)  # filled for this user on load
    return page.locator("#runs-table").inner_text()


@pytest.fixture
def server(tmp_path):
    if not Path(CHROMIUM).exists():
        pytest.skip(f"{CHROMIUM} is missing (apt-get install -y chromium)")
    runs, allowed, outside = tmp_path / "runs", tmp_path / "allowed", tmp_path / "outside"
    for folder in (runs, allowed, outside):
        folder.mkdir()
    (outside / "secret.json").write_text('[{"question": "user alice", "answer": "key S3CRET"}]')
    (allowed / "link.json").symlink_to(outside / "secret.json")
    _fake_run(runs, "ann-run", "ann")
    _fake_run(runs, "cli-run", "")
    users = tmp_path / "users"
    users.write_text(f"ann:{hash_password('ann-pw')}\nbob:{hash_password('bob-pw')}\n"
                     f"root:{hash_password('root-pw')}:admin\n")
    port, log = _free_port(), tmp_path / "app.log"
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs), "TUNELAB_USERS": str(users), "TUNELAB_DATA_DIRS": str(allowed),
           "PYTHONUNBUFFERED": "1"}
    env.pop("TUNELAB_AUTH", None)
    with open(log, "w") as out:
        proc = subprocess.Popen([sys.executable, "app.py", "--port", str(port)], cwd=ROOT, env=env, stdout=out,
                                stderr=subprocess.STDOUT)
    os.environ["TUNELAB_RUNS_DIR"] = str(runs)  # the helper process below holds this runs folder's lock
    holder = hold_in_another_process("train", "cli-run")
    try:
        _wait_for_http(f"http://127.0.0.1:{port}/", proc, log)
        yield f"http://127.0.0.1:{port}/", runs, outside, allowed
    finally:
        holder.kill()
        proc.terminate()
        try:
            proc.wait(60)
        except subprocess.TimeoutExpired:
            proc.kill()


def test_two_users_paths_and_the_device_in_a_browser(server):
    from playwright.sync_api import expect, sync_playwright

    url, runs, outside, allowed = server
    # the login delay: each failure from this address for this name doubles the wait
    timings = [_login_seconds(url, "mallory", "guess") for _ in range(2)]
    assert [code for code, _ in timings] == [400, 400]
    assert timings[0][1] >= 0.9 and timings[1][1] >= 1.8, timings

    with sync_playwright() as p:
        browser = p.chromium.launch(executable_path=CHROMIUM, args=ARGS, headless=True)
        bob = _log_in(browser, url, "bob", "bob-pw")
        # the data path: outside the allowed folders, directly or through a symlink, is refused; nothing is shown
        for typed in (str(outside / "secret.json"), str(allowed / "link.json")):
            bob.get_by_role("tab", name="1 · Data").click()
            bob.locator("#f-dataset textarea, #f-dataset input").first.fill(typed)
            bob.locator("#check-data").click()
            expect(bob.locator("#data-summary")).to_contain_text("TUNELAB_DATA_DIRS", timeout=60_000)
            assert "S3CRET" not in bob.content()
        expect(bob.locator("#f-trust_remote_code")).to_have_count(0)  # not offered without --allow-remote-code
        # ann's run: not in bob's runs table, Chat or Export lists; its files are not served to anyone
        table = _past_runs(bob)
        assert "ann-run" not in table and "cli-run" not in table
        assert _listed(bob, "3 · Chat", "#chat-run") == 0 and _listed(bob, "4 · Export", "#export-run") == 0
        for part in ("config.yaml", "checkpoints/step-000002/training_state.pt", "owner.json"):
            assert bob.request.get(f"{url}gradio_api/file={runs / 'ann-run' / part}").status in (403, 404)

        admin = _log_in(browser, url, "root", "root-pw")
        table = _past_runs(admin)
        assert "ann-run" in table and "ann" in table.replace("ann-run", "")  # the owner column
        assert _listed(admin, "4 · Export", "#export-run") == 1  # the same check sees it for an admin
        admin.get_by_role("tab", name="2 · Train").click()
        admin.locator("#run-shown input").click()
        admin.get_by_role("option", name="cli-run").click()
        expect(admin.locator("#train-status")).to_contain_text("Running elsewhere", timeout=60_000)
        admin.locator("#resume").click()
        expect(admin.locator("#train-action")).to_contain_text("Running elsewhere")
        browser.close()
