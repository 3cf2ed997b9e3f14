"""core.devicelock: one heavy job per device across processes; who holds it; a dead holder's lock is free."""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import threading
import time

import pytest

from core import devicelock, runs
from core.errors import Busy
from tests.paths import ROOT

HOLD = """
import sys, time
from core import devicelock
lease = devicelock.acquire(sys.argv[1], run=sys.argv[2], user="cli-user")
print("held", flush=True)
time.sleep(600)
"""


def hold_in_another_process(action: str, run: str) -> subprocess.Popen:
    """A real second process holding the device lock (as `app.py train` does), until killed."""
    proc = subprocess.Popen([sys.executable, "-c", HOLD, action, run], cwd=ROOT, stdout=subprocess.PIPE, text=True,
                            env={**os.environ, "PYTHONPATH": str(ROOT)})
    assert proc.stdout.readline().strip() == "held"
    return proc


def test_a_second_holder_is_refused_with_who_and_since(runs_root):
    with devicelock.hold("merge", run="r1", user="ann"):
        with pytest.raises(Busy) as err:
            devicelock.acquire("chat", user="bob")
        assert "merging of run 'r1' by ann" in err.value.message and f"pid {os.getpid()}" in err.value.message
        (holder,) = devicelock.holders(runs_root)
        assert holder.action == "merge" and holder.user == "ann" and holder.since <= time.time()
    with devicelock.hold("chat", user="bob"):  # released: free again
        pass
    assert devicelock.holders(runs_root) == []


def test_waiting_gets_the_lock_when_it_is_released(runs_root):
    lease = devicelock.acquire("chat", user="ann")
    seen = []
    threading.Timer(0.6, lease.release).start()
    with devicelock.acquire("chat", user="bob", wait=10, on_wait=seen.append) as second:
        assert second.holder.user == "bob" and seen and seen[0].user == "ann"


def test_a_killed_holder_leaves_the_device_free(runs_root):
    proc = hold_in_another_process("train", "r2")
    try:
        with pytest.raises(Busy, match="training of run 'r2' by cli-user"):
            devicelock.acquire("train", run="r3")
        assert devicelock.holder_of_run("r2", runs_root).pid == proc.pid
    finally:
        proc.send_signal(signal.SIGKILL)  # no clean-up code runs: the record stays in the file
        proc.wait()
    assert "r2" in devicelock.lock_path(runs_root).read_text()  # stale record on disk…
    assert devicelock.holders(runs_root) == [] and devicelock.holder_of_run("r2", runs_root) is None  # …not a holder
    with devicelock.hold("train", run="r3") as lease:
        assert lease.holder.run == "r3"


def test_a_run_trained_by_another_process_shows_running_elsewhere(runs_root):
    from core.events import EventLog

    folder = runs.run_dir("r4", runs_root)
    EventLog(folder / "events.jsonl").append("started", model="m", method="lora", total_steps=10)
    assert runs.summarize(folder).status == "interrupted"  # nobody holds it: the process died
    proc = hold_in_another_process("train", "r4")
    try:
        summary = runs.summarize(folder)
        assert summary.status == "elsewhere" and not summary.resumable
        assert f"pid {proc.pid}" in summary.message and summary.elsewhere["pid"] == proc.pid
    finally:
        proc.kill()
        proc.wait()
    assert runs.summarize(folder).status == "interrupted"


def test_separate_devices_have_separate_locks(runs_root, monkeypatch):
    with devicelock.hold("train", run="a"):
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        with devicelock.hold("train", run="b") as other:
            assert other.holder.device == "1"
        assert len({p.name for p in runs_root.glob(".device-*.lock")}) == 2
