"""One heavy job per device, across processes: a file lock in the runs folder.

Training, resuming, evaluating, merging, zipping, pushing and chat generation each
hold the device's lock while they work: `runs/.device-<device>.lock`, locked with
flock(2) and holding who has it (pid, host, user, run, action, since) as JSON.
The kernel drops a flock when its process dies, so a lock left by a killed
process is free at once; its stale JSON is overwritten by the next holder. A
second heavy action either waits (chat behind chat) or is refused with who holds
the device and since when. The CLI and the app, or two apps, sharing a runs
folder therefore never train on one device at once, and a run trained by another
process is recognised here (`holder_of_run`) and shown as running elsewhere.

The device is CUDA_VISIBLE_DEVICES (TUNELAB_DEVICE overrides it): two processes
on different GPUs hold different locks. flock is per open file, so two threads of
one process exclude each other too.
"""
from __future__ import annotations

import contextlib
import fcntl
import getpass
import json
import os
import re
import socket
import time
from collections.abc import Iterator
from dataclasses import asdict, dataclass
from pathlib import Path

from core import home
from core.errors import Busy
from core.messages import msg

POLL_SECONDS = 0.5
TRAINING_ACTIONS = ("train", "resume")


@dataclass(frozen=True)
class Holder:
    """Who holds a device lock."""
    pid: int
    host: str
    user: str
    run: str
    action: str
    since: float
    device: str = ""

    def busy_message(self):
        since = time.strftime("%H:%M:%S", time.localtime(self.since))
        action = msg(f"lock.action_{self.action}") if self.action in ACTIONS else self.action
        if self.run:
            return msg("lock.busy_run", action=action, run=self.run, who=self.user or "-", pid=self.pid,
                       host=self.host, since=since)
        return msg("lock.busy", action=action, who=self.user or "-", pid=self.pid, host=self.host, since=since)


ACTIONS = ("train", "resume", "evaluate", "merge", "gguf", "zip", "push", "chat")


def device_key() -> str:
    """Which device this process works on, as a file-name-safe string."""
    raw = os.environ.get("TUNELAB_DEVICE") or os.environ.get("CUDA_VISIBLE_DEVICES") or "default"
    return re.sub(r"[^A-Za-z0-9_.-]+", "-", raw)[:40] or "default"


def lock_path(root: Path | None = None, device: str | None = None) -> Path:
    return (root or home.runs_root()) / f".device-{device or device_key()}.lock"


class Lease:
    """A held device lock; `release()` (or leaving the `with`) frees it."""

    def __init__(self, fd: int, path: Path, holder: Holder):
        self.fd, self.path, self.holder = fd, path, holder

    def release(self) -> None:
        if self.fd >= 0:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, 0)  # no stale holder left for readers
            fcntl.flock(self.fd, fcntl.LOCK_UN)
            os.close(self.fd)
            self.fd = -1

    def __enter__(self) -> Lease:
        return self

    def __exit__(self, *exc) -> None:
        self.release()


def _read(fd: int) -> Holder | None:
    try:
        os.lseek(fd, 0, os.SEEK_SET)
        data = json.loads(os.read(fd, 65536).decode("utf-8") or "null")
        return Holder(**data) if isinstance(data, dict) else None
    except (OSError, ValueError, TypeError):
        return None


def _alive(holder: Holder) -> bool:
    """False only when the holder is on this host and its process is gone (a lock flock could not clear)."""
    if holder.host != socket.gethostname():
        return True
    try:
        os.kill(holder.pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def try_acquire(action: str, run: str = "", user: str = "", root: Path | None = None) -> Lease | Holder:
    """The lease, or the Holder in the way (never a dead one)."""
    path = lock_path(root)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    for attempt in range(4):
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            break
        except BlockingIOError:
            holder = _read(fd)
            if (holder and _alive(holder)) or attempt == 3:  # a dead holder's record: a reader's brief look
                os.close(fd)
                # held, but by whom is not written (a reader's brief look, a holder between flock and write)
                return holder or Holder(pid=0, host="?", user="", run="", action="?", since=time.time())
            time.sleep(0.05)
    holder = Holder(pid=os.getpid(), host=socket.gethostname(), user=user or _local_user(), run=run,
                    action=action, since=time.time(), device=device_key())
    os.ftruncate(fd, 0)
    os.write(fd, json.dumps(asdict(holder)).encode("utf-8"))
    os.fsync(fd)
    return Lease(fd, path, holder)


def acquire(action: str, run: str = "", user: str = "", root: Path | None = None, wait: float = 0,
            on_wait=None) -> Lease:
    """The lease; waits up to `wait` seconds (calling `on_wait(holder)` once), else raises Busy naming the holder."""
    deadline, told = time.monotonic() + wait, False
    while True:
        got = try_acquire(action, run, user, root)
        if isinstance(got, Lease):
            return got
        if time.monotonic() >= deadline:
            raise Busy(got.busy_message())
        if on_wait and not told:
            on_wait(got)
            told = True
        time.sleep(POLL_SECONDS)


@contextlib.contextmanager
def hold(action: str, run: str = "", user: str = "", root: Path | None = None, wait: float = 0) -> Iterator[Lease]:
    lease = acquire(action, run, user, root, wait)
    try:
        yield lease
    finally:
        lease.release()


def holders(root: Path | None = None) -> list[Holder]:
    """Every live holder of a device lock in this runs folder (any device)."""
    root = root or home.runs_root()
    found = []
    for path in root.glob(".device-*.lock") if root.exists() else []:
        holder = _held(path)
        if holder:
            found.append(holder)
    return found


def _held(path: Path) -> Holder | None:
    try:
        fd = os.open(path, os.O_RDWR)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _read(fd)
            return holder if holder and _alive(holder) else None
        fcntl.flock(fd, fcntl.LOCK_UN)  # free: whatever it says is stale
        return None
    finally:
        os.close(fd)


def holder_of_run(run: str, root: Path | None = None) -> Holder | None:
    """The live holder training `run` in another process (on any device), or None."""
    for holder in holders(root):
        here = holder.pid == os.getpid() and holder.host == socket.gethostname()
        if holder.run == run and holder.action in TRAINING_ACTIONS and not here:
            return holder
    return None


def _local_user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):
        return str(os.getuid())
