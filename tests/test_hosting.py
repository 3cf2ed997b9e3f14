"""`python app.py` started the way a Hugging Face Space starts it: the platform's variables, no flags.

It must listen on every interface at the port the platform chose, serve the
page, keep its runs under TUNELAB_HOME, say where to open it (the Space's own
https address, never http://0.0.0.0) and warn that this Space's disk is wiped
on restart. Requests go to 127.0.0.1 only.
"""
from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from core import home
from tests.paths import ROOT

SPACE_HOST = "owner-tunelab.hf.space"
# Variables of this machine that would change what is tested (a pod, a laptop's own choices, sign-in).
NOT_PASSED = ("TUNELAB_RUNS_DIR", "TUNELAB_HOST", "TUNELAB_PORT", "TUNELAB_AUTH", "TUNELAB_USERS", "TUNELAB_LANG", "HF_HOME",
              "RUNPOD_POD_ID", "SYSTEM", "GRADIO_SHARE", "OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET",
              "OPENID_PROVIDER_URL", "OAUTH_SCOPES")
NO_PROXY = urllib.request.build_opener(urllib.request.ProxyHandler({}))  # 127.0.0.1 directly, whatever the machine says


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


def _get(url: str) -> tuple[int, str]:
    try:
        with NO_PROXY.open(url, timeout=5) as reply:
            return reply.status, reply.read().decode("utf-8", "replace")
    except urllib.error.HTTPError as err:
        return err.code, ""


def _serving(port: int, process: subprocess.Popen, seconds: float = 120) -> bool:
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline and process.poll() is None:
        try:
            if _get(f"http://127.0.0.1:{port}/")[0] == 200:
                return True
        except OSError:
            pass
        time.sleep(1)
    return False


def _printed(path: Path, last_line: str, seconds: float = 20) -> str:
    """What the app has printed once `last_line` is there: the page answers a moment before the
    "Open TuneLab at" lines, which follow gradio's own."""
    deadline = time.monotonic() + seconds
    while last_line not in path.read_text() and time.monotonic() < deadline:
        time.sleep(0.2)
    return path.read_text()


def _listening(port: int) -> set[str]:
    """The IPv4 addresses with a socket listening on `port` (from /proc/net/tcp, state 0A = LISTEN)."""
    found = set()
    for line in Path("/proc/net/tcp").read_text().splitlines()[1:]:
        local, state = line.split()[1], line.split()[3]
        address, hex_port = local.split(":")
        if state == "0A" and int(hex_port, 16) == port:
            found.add(socket.inet_ntoa(bytes.fromhex(address)[::-1]))
    return found


def _stop(process: subprocess.Popen) -> None:
    """SIGTERM (what a Space sends when it restarts: TuneLab stops as on Ctrl-C), then kill."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(30)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


@pytest.mark.slow
def test_python_app_py_on_a_space(tmp_path, monkeypatch):
    monkeypatch.delenv("TUNELAB_HOME", raising=False)
    monkeypatch.delenv("TUNELAB_RUNS_DIR", raising=False)
    cache = os.environ.get("TUNELAB_CACHE") or str(home.cache_root())  # the converted model, as this machine has it
    port = _free_port()
    tunelab_home = tmp_path / "home"
    env = {name: value for name, value in os.environ.items() if name not in NOT_PASSED}
    # a public demo Space: open without a login by the owner's choice (otherwise the app refuses to start)
    env.update({"TUNELAB_PUBLIC_DEMO": "1", "SPACE_ID": "owner/tunelab", "SPACE_HOST": SPACE_HOST,
                "GRADIO_SERVER_NAME": "0.0.0.0", "GRADIO_SERVER_PORT": str(port), "TUNELAB_HOME": str(tunelab_home),
                "TUNELAB_CACHE": cache,
                "GRADIO_ANALYTICS_ENABLED": "False", "PYTHONUNBUFFERED": "1"})
    out, err = tmp_path / "stdout.txt", tmp_path / "stderr.txt"
    with out.open("w") as stdout, err.open("w") as stderr:
        process = subprocess.Popen([sys.executable, "app.py"], cwd=ROOT, env=env, stdout=stdout, stderr=stderr)
    try:
        up = _serving(port, process)
        printed, warned = _printed(out, f"Open TuneLab at https://{SPACE_HOST}"), err.read_text()
        assert up, f"not serving on :{port}\n--- stdout\n{printed[-3000:]}\n--- stderr\n{warned[-3000:]}"
        assert _listening(port) == {"0.0.0.0"}
        status, page = _get(f"http://127.0.0.1:{port}/")
        assert status == 200 and "<html" in page.lower()
        status, config = _get(f"http://127.0.0.1:{port}/config")
        assert status == 200 and "persistent storage" in config and "Demo mode" in config  # the two notes
        assert (tunelab_home / "runs").is_dir()
        assert f"Open TuneLab at https://{SPACE_HOST}" in printed and f"Open TuneLab at http://127.0.0.1:{port}" in printed
        assert "Open TuneLab at http://0.0.0.0" not in printed
        assert "persistent storage" in warned and "Traceback" not in warned
    finally:
        _stop(process)
    assert process.returncode == 0, err.read_text()[-3000:]  # stopped cleanly, not killed
