"""The CLI and the app on one runs folder: a run `app.py train` is training shows as running elsewhere in the
app, Resume (page and CLI) refuses it, Start is refused with who holds the device; `hash-password` makes a
TUNELAB_USERS line without the password in argv."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time

import pytest

from core import devicelock
from core.access import User, verify_password
from core.errors import Busy
from core.train.manager import JobManager
from tests.paths import ROOT
from ui import train_actions as act


def _app(*args: str, **kw) -> subprocess.Popen:
    return subprocess.Popen([sys.executable, "app.py", *args], cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kw)


def test_hash_password_reads_the_password_from_stdin_not_argv():
    proc = _app("hash-password", "--user", "ann", stdin=subprocess.PIPE)
    out, err = proc.communicate("pa ss:word\n", timeout=60)
    assert proc.returncode == 0, err
    user, _, stored = out.strip().partition(":")
    assert user == "ann" and verify_password("pa ss:word", stored) and "TUNELAB_USERS" in err
    bad = _app("hash-password", "--user", "a:b", stdin=subprocess.PIPE)
    assert bad.communicate("x\n", timeout=60) and bad.returncode == 2


@pytest.mark.slow
def test_a_cli_run_is_running_elsewhere_for_the_app(tiny_config, runs_root, tmp_path):
    config = tmp_path / "long.yaml"
    tiny_config.replace(max_steps=100000, eval_steps=100000, save_steps=100000, run_name="cli-run").save_yaml(config)
    cli = _app("train", "--config", str(config))
    try:
        deadline = time.monotonic() + 240
        while devicelock.holder_of_run("cli-run", runs_root) is None:
            assert cli.poll() is None and time.monotonic() < deadline, cli.stderr.read()[-3000:]
            time.sleep(0.5)
        app = JobManager(runs_root)  # the web app's manager, in this (another) process
        summary = app.summary("cli-run")
        assert summary.status == "elsewhere" and f"pid {cli.pid}" in summary.message and not summary.resumable
        action, _ = act.resume(app, "cli-run", "", User("root", admin=True), "en")
        assert "Running elsewhere" in action and str(cli.pid) in action
        with pytest.raises(Busy, match="another process"):
            app.resume("cli-run")
        with pytest.raises(Busy, match=f"training of run 'cli-run' by .* \\(pid {cli.pid}"):
            app.start(tiny_config.replace(max_steps=1))
        again = _app("resume", "--run", "cli-run")
        out, err = again.communicate(timeout=240)
        assert again.returncode == 2 and "being trained by another process" in err, err[-2000:]
    finally:
        cli.send_signal(signal.SIGINT)  # Ctrl-C: stops cleanly, saves what it learned
        try:
            cli.communicate(timeout=300)  # one CI run on a loaded machine went past 120 s
        except subprocess.TimeoutExpired:
            cli.kill()
            _, err = cli.communicate()
            pytest.fail(f"Ctrl-C did not stop the CLI run within 300 s:\n{err[-3000:]}")
    assert cli.returncode == 130
    assert JobManager(runs_root).summary("cli-run").status == "stopped"  # and now resumable from here
