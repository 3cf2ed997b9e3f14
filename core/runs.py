"""The runs folder: safe names, listing, and a run's state rebuilt from disk.

runs/<name>/ holds config.yaml, events.jsonl, checkpoints/, adapter/ and
merged/. Everything the UI shows about a run (its curve, status, samples)
comes from `summarize()`, which reads only these files, so it is the same
after a page reload, in a second browser or after an app restart.
"""
from __future__ import annotations

import re
import time
from dataclasses import dataclass, field
from pathlib import Path

from core import home
from core.errors import ConfigError
from core.events import TERMINAL_TYPES, read_events
from core.messages import message_of, msg

_SAFE = re.compile(r"[^A-Za-z0-9_.-]+")
# The states Resume continues (from the last checkpoint, or from the start when none was written yet).
RESUMABLE = ("interrupted", "stopped")
START_KEY = "job.preparing"  # the first line a job writes, on Start and on Resume (core/train/job.py)


def runs_root() -> Path:
    """The runs folder (core.home decides where: TUNELAB_HOME, a Space's /data, or ./runs)."""
    return home.runs_root()


def safe_name(name: str) -> str:
    """A run or folder name with no separators, no '..' and no leading dot."""
    cleaned = _SAFE.sub("-", name.strip()).strip(".-_")
    cleaned = re.sub(r"\.{2,}", ".", cleaned)
    return cleaned[:80]


def new_run_name(requested: str = "", root: Path | None = None) -> str:
    """The requested name made safe (or one from the clock), never an existing run's."""
    root = root or runs_root()
    base = safe_name(requested) or time.strftime("run-%Y%m%d-%H%M%S")
    name, n = base, 2
    while (root / name).exists():
        name, n = f"{base}-{n}", n + 1
    return name


def run_dir(name: str, root: Path | None = None) -> Path:
    """The folder of an existing or new run; refuses names that would leave the runs folder."""
    root = root or runs_root()
    if not name or safe_name(name) != name:
        raise ConfigError(msg("runs.bad_name", name=name))  # a ValueError too
    return root / name


@dataclass
class RunSummary:
    """What is known about a run from its files.

    `message`, `progress` and each of `notices` is the English text; where the event carried a
    core.messages key it is a Msg (still that str) whose `.key`/`.params` let the UI translate it.
    `preparing` and `resumable` are the lifecycle answers every reader (web page, CLI) shares.
    """
    name: str
    path: Path
    status: str = "unknown"            # running, finished, stopped, failed, interrupted
    message: str = ""
    model: str = ""
    method: str = ""
    started_at: float = 0.0
    ended_at: float = 0.0
    step: int = 0
    total_steps: int = 0
    logs: list = field(default_factory=list)       # log events
    evals: list = field(default_factory=list)      # eval events
    samples: list = field(default_factory=list)    # sample events
    notices: list = field(default_factory=list)
    progress: str = ""
    last_checkpoint: str = ""
    has_adapter: bool = False
    has_merged: bool = False
    preparing: bool = False            # a live run loading its model or data: no training step yet
    resumable: bool = False            # interrupted or stopped: Resume continues it
    _stepped: bool = field(default=False, repr=False, compare=False)  # a step logged since the latest (re)start

    @property
    def last_log(self) -> dict:
        return self.logs[-1] if self.logs else {}


def summarize(path: Path, active: bool = False) -> RunSummary:
    """Rebuild a run's state from its event log; `active` when a live job owns it."""
    summary = RunSummary(name=path.name, path=path)
    for event in read_events(path / "events.jsonl"):
        _apply(summary, event)
    summary.has_adapter = (path / "adapter" / "adapter_config.json").exists()
    summary.has_merged = (path / "merged" / "config.json").exists()
    if summary.status == "unknown" and summary.progress:  # still preparing (loading the model or data)
        summary.status = "running"
    if summary.status == "running" and not active:
        summary.status = "interrupted"
        summary.message = summary.message or msg("runs.interrupted")
    summary.preparing = summary.status == "running" and not summary._stepped  # running implies active here
    summary.resumable = summary.status in RESUMABLE
    return summary


def _apply(s: RunSummary, event: dict) -> None:
    kind = event["type"]
    if kind == "started":
        s.status, s.started_at = "running", event["time"]
        s.model, s.method = event.get("model", ""), event.get("method", "")
        s.total_steps = event.get("total_steps", 0)
        s.message, s._stepped = "", False
    elif kind == "resumed":
        s.status, s.message, s._stepped = "running", "", False
        s.total_steps = event.get("total_steps", s.total_steps)
        # a resumed run may re-log steps after its checkpoint: drop the replaced tail
        s.logs = [e for e in s.logs if e["step"] <= event.get("step", 0)]
        s.evals = [e for e in s.evals if e["step"] <= event.get("step", 0)]
    elif kind == "progress":
        if s.status in TERMINAL_TYPES or event.get("key") == START_KEY:  # a (re)start: the job is loading
            s.status, s.message, s._stepped = "unknown", "", False
        s.progress = message_of(event)
    elif kind == "log":
        s.logs.append(event)
        s.step, s._stepped = event["step"], True
    elif kind == "eval":
        s.evals.append(event)
    elif kind == "sample":
        s.samples.append(event)
    elif kind == "checkpoint":
        s.last_checkpoint = event.get("path", "")
    elif kind == "notice":
        s.notices.append(message_of(event))
    elif kind in TERMINAL_TYPES:
        s.status, s.ended_at = kind, event["time"]
        s.message = message_of(event)
        s.step = event.get("step", s.step)
        s.progress = ""


def list_runs(root: Path | None = None, active: set[str] | None = None) -> list[RunSummary]:
    """All runs, newest first."""
    root = root or runs_root()
    if not root.exists():
        return []
    active = active or set()
    found = [summarize(p, p.name in active) for p in root.iterdir() if (p / "events.jsonl").exists()]
    return sorted(found, key=lambda s: s.started_at, reverse=True)
