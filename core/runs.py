"""The runs folder: safe names, listing, and a run's state rebuilt from disk.

runs/<name>/ holds config.yaml, events.jsonl, checkpoints/, adapter/ and
merged/. Everything the UI shows about a run (its curve, status, samples)
comes from `summarize()`, which reads only these files, so it is the same
after a page reload, in a second browser or after an app restart.
"""
from __future__ import annotations

import dataclasses
import hashlib
import json
import os
import re
import shutil
import threading
import time
from collections import OrderedDict
from dataclasses import dataclass, field
from pathlib import Path

import yaml

from core import devicelock, home
from core.access.ownership import owner_of
from core.errors import ConfigError
from core.events import TERMINAL_TYPES
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
    detail: str = ""                   # a failed run's technical text (core.doctor), for "Show details"
    bad_input: bool = False            # it failed on something the user can fix (a model, the data): CLI exit 2
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
    warnings: list = field(default_factory=list)   # notices that flag a likely fault (shown apart, in red)
    progress: str = ""
    last_checkpoint: str = ""
    has_adapter: bool = False
    has_merged: bool = False
    preparing: bool = False            # a live run loading its model or data: no training step yet
    resumable: bool = False            # interrupted or stopped: Resume continues it
    owner: str = ""                    # who started it (core.access.ownership); '' = the CLI or before accounts
    elsewhere: dict = field(default_factory=dict)  # pid/host/since of the process training it, if not this one
    estimated_seconds: float | None = None  # training time estimated at Start (core/plan/cost.py)
    trained_seconds: float = 0.0       # time spent training in the stretches that have ended (started/resumed -> end)
    segment_start: float = 0.0         # when the stretch training now began (0: none is open)
    _stepped: bool = field(default=False, repr=False, compare=False)  # a step logged since the latest (re)start

    @property
    def last_log(self) -> dict:
        return self.logs[-1] if self.logs else {}


def summarize(path: Path, active: bool = False) -> RunSummary:
    """Rebuild a run's state from its event log; `active` when a live job owns it."""
    swapped = [path / n for n in ("adapter", "merged") if _swap_interrupted(path / n)]
    if swapped and not active and not devicelock.holder_of_run(path.name, path.parent):
        for folder in swapped:  # a save killed between its two renames (no process is saving now): undo it
            recover_folder(folder)
    summary = _replayed(path)
    summary.has_adapter = (path / "adapter" / "adapter_config.json").exists()
    summary.has_merged = (path / "merged" / "config.json").exists()
    if summary.status == "unknown" and summary.progress:  # still preparing (loading the model or data)
        summary.status = "running"
    summary.owner = owner_of(path)
    holder = None if active else devicelock.holder_of_run(path.name, path.parent)
    if holder:  # another process trains it: not "interrupted", and not resumable from here
        summary.status = "elsewhere"
        summary.elsewhere = {"pid": holder.pid, "host": holder.host, "since": holder.since}
        summary.message = msg("runs.elsewhere", pid=holder.pid, host=holder.host,
                              since=time.strftime("%H:%M:%S", time.localtime(holder.since)))
    if summary.status == "running" and not active:
        summary.status = "interrupted"
        summary.message = summary.message or msg("runs.interrupted")
    summary.preparing = summary.status == "running" and not summary._stepped  # running implies active here
    summary.resumable = summary.status in RESUMABLE
    return summary


# --- reading events.jsonl once: each call reads only the lines added since the last ----------------------
@dataclass
class _Replay:
    summary: RunSummary
    offset: int = 0          # bytes of complete lines applied so far
    stamp: tuple = ()        # (inode, size, mtime_ns) when last read: unchanged means nothing to read


_replays: OrderedDict[Path, _Replay] = OrderedDict()  # least recently read first
_replay_lock = threading.Lock()
CACHED_EVENTS = 400_000  # logged points kept in memory over all cached runs (~0.5 KB each); the oldest runs go first


def _replayed(path: Path) -> RunSummary:
    """The run's state from its events, cached per run: the UI's timer (every tab, every 1.5 s) and the
    runs table read only what was appended since, so a tick costs O(new events), not O(run length)."""
    events = path / "events.jsonl"
    with _replay_lock:
        try:
            st = events.stat()
        except FileNotFoundError:
            _replays.pop(path, None)
            return RunSummary(name=path.name, path=path)
        stamp = (st.st_ino, st.st_size, st.st_mtime_ns)
        cached = _replays.get(path)
        if cached is None or cached.stamp[:1] != stamp[:1] or st.st_size < cached.offset:
            cached = _replays[path] = _Replay(RunSummary(name=path.name, path=path))  # new or rewritten file
        if cached.stamp != stamp:
            _read_new(events, cached)
            cached.stamp = stamp
        _replays.move_to_end(path)
        _evict()
        s = cached.summary
        # a copy: the cached lists keep growing while the caller draws this one
        return dataclasses.replace(s, logs=list(s.logs), evals=list(s.evals), samples=list(s.samples),
                                   notices=list(s.notices), warnings=list(s.warnings))


def _evict() -> None:
    """Forget the least recently read runs while the cache holds more than CACHED_EVENTS points (never the last)."""
    held = sum(len(r.summary.logs) + len(r.summary.evals) for r in _replays.values())
    while held > CACHED_EVENTS and len(_replays) > 1:
        _, oldest = _replays.popitem(last=False)
        held -= len(oldest.summary.logs) + len(oldest.summary.evals)


def _read_new(events: Path, replay: _Replay) -> None:
    with open(events, "rb") as fh:
        fh.seek(replay.offset)
        data = fh.read()
    end = data.rfind(b"\n") + 1  # a torn last line waits until its newline is written
    replay.offset += end
    for line in data[:end].splitlines():
        try:
            event = json.loads(line)
        except ValueError:
            continue  # half-written line from a killed process
        if well_formed(event):
            _apply(replay.summary, event)


# The fields each event type must carry for the summary to use it; an event without them is skipped like a torn line.
_REQUIRED = {"started": ("time",), "log": ("step",), "eval": ("step", "val_loss"),
             "sample": ("step", "prompt", "answer"), "finished": ("time",), "stopped": ("time",),
             "failed": ("time",), "resumed": (), "progress": (), "checkpoint": (), "notice": (), "estimate": ("seconds",)}
_NUMBER_FIELDS = ("time", "step", "val_loss", "total_steps", "seconds")


def well_formed(event) -> bool:
    """True for a JSON object of a known type with the fields its type needs, numbers where numbers go."""
    if not isinstance(event, dict) or event.get("type") not in _REQUIRED:
        return False
    if any(name not in event for name in _REQUIRED[event["type"]]):
        return False
    for name in _NUMBER_FIELDS:
        value = event.get(name)
        if name in event and (isinstance(value, bool) or not isinstance(value, (int, float))):
            return False
    if "step" in event and not isinstance(event["step"], int):
        return False
    loss = event.get("loss")
    return loss is None or (isinstance(loss, (int, float)) and not isinstance(loss, bool))


# --- saving a folder so that a kill at any moment leaves a usable copy ------------------------------------
def replace_folder(new: Path, target: Path) -> None:
    """Put the finished folder `new` in place of `target`: the old copy is renamed aside first and
    deleted only after the new one is in place, so a kill between the renames leaves `target.prev`,
    which `recover_folder` (called by every reader) puts back."""
    prev = target.with_name(target.name + ".prev")
    shutil.rmtree(prev, ignore_errors=True)
    if target.exists():
        os.replace(target, prev)
    os.replace(new, target)
    shutil.rmtree(prev, ignore_errors=True)


def _swap_interrupted(target: Path) -> bool:
    return not target.exists() and target.with_name(target.name + ".prev").exists()


def recover_folder(target: Path) -> bool:
    """Undo a replace_folder that was interrupted between its renames; True when the old copy was put back."""
    prev = target.with_name(target.name + ".prev")
    if target.exists() or not prev.exists():
        return False
    try:
        os.replace(prev, target)
    except OSError:
        return False
    return True


# --- uploads: one copy per content, gone with their run or after an age -------------------------------------
UPLOAD_MAX_AGE_DAYS = 7.0  # TUNELAB_UPLOAD_MAX_AGE_DAYS: an upload no run uses is deleted after this
_IN_USE = ".uploads-in-use.json"  # (in the runs folder) the uploads some run used at the last prune


def same_upload(src: Path, folder: Path) -> Path | None:
    """The file already kept in `folder` with the same bytes as `src` (under any name), made young again."""
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    for existing in folder.glob(f"*-{digest}{src.suffix.lower()}"):
        if existing.is_file() and existing.read_bytes() == src.read_bytes():
            os.utime(existing)  # used again: the age limit starts again
            return existing
    return None


def store_upload(src: Path, folder: Path) -> Path:
    """Keep an uploaded file in `folder` once per content: the same bytes under any name are one file."""
    found = same_upload(src, folder)
    if found:
        return found
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    folder.mkdir(parents=True, exist_ok=True)
    target = folder / f"{safe_name(src.stem) or 'data'}-{digest}{src.suffix.lower()}"
    shutil.copyfile(src, target)
    return target


def prune_uploads(root: Path | None = None, max_age_days: float | None = None) -> list[Path]:
    """Delete uploads no run's config uses any more: at once when the run that used one was deleted,
    otherwise once older than the age (TUNELAB_UPLOAD_MAX_AGE_DAYS). Returns what was deleted."""
    root = root or runs_root()
    folder = root / "uploads"
    if not folder.is_dir():
        return []
    if max_age_days is None:
        raw = os.environ.get("TUNELAB_UPLOAD_MAX_AGE_DAYS", "")
        max_age_days = float(raw) if raw.replace(".", "", 1).isdigit() else UPLOAD_MAX_AGE_DAYS
    used = _datasets_of_runs(root)
    marker = root / _IN_USE  # beside uploads/, not in it: it is no one's upload
    try:
        was_used = set(json.loads(marker.read_text()))
    except (OSError, ValueError):
        was_used = set()
    cutoff, removed = time.time() - max_age_days * 86400, []
    for path in folder.rglob("*"):
        key = str(path.resolve())
        if not path.is_file() or key in used:
            continue
        if key in was_used or path.stat().st_mtime < cutoff:
            path.unlink(missing_ok=True)
            removed.append(path)
    try:
        marker.write_text(json.dumps(sorted(used)))
    except OSError:
        pass  # a full disk: pruning again later is harmless
    return removed


def _datasets_of_runs(root: Path) -> set[str]:
    """The resolved dataset paths that the runs' config.yaml files name."""
    found = set()
    for config in root.glob("*/config.yaml"):
        try:
            dataset = (yaml.safe_load(config.read_text(encoding="utf-8")) or {}).get("dataset", "")
        except (OSError, yaml.YAMLError, AttributeError):
            continue
        if isinstance(dataset, str) and dataset and not dataset.startswith("builtin:"):
            found.add(str(Path(dataset).expanduser().resolve()))
    return found


def merged_is_stale(run: Path) -> bool:
    """True when merged/ was built from an older adapter than adapter/ (a run resumed or retrained since):
    export must rebuild it before a zip or a push (core/infer/export.py)."""
    merged, adapter = run / "merged" / "config.json", run / "adapter"
    weights = [p for p in adapter.glob("adapter_model.*")] if adapter.exists() else []
    if not merged.exists() or not weights:
        return False
    return max(p.stat().st_mtime_ns for p in weights) > merged.stat().st_mtime_ns


def _apply(s: RunSummary, event: dict) -> None:
    kind = event["type"]
    if kind == "started":
        s.status, s.started_at = "running", event["time"]
        s.model, s.method = event.get("model", ""), event.get("method", "")
        s.total_steps = event.get("total_steps", 0)
        s.message, s._stepped = "", False
        s.segment_start = event["time"]
    elif kind == "resumed":
        s.status, s.message, s._stepped = "running", "", False
        s.trained_seconds += open_stretch(s)  # the app died in the last stretch: it counts up to its last step
        s.segment_start = event.get("time", 0.0)
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
        if event.get("warning"):  # e.g. a sudden loss collapse (core.train.checkpoints.LossWatch)
            s.warnings.append(message_of(event))
    elif kind == "estimate":
        s.estimated_seconds = event["seconds"]
    elif kind in TERMINAL_TYPES:
        s.status, s.ended_at = kind, event["time"]
        if s.segment_start:
            s.trained_seconds += max(0.0, event["time"] - s.segment_start)
            s.segment_start = 0.0
        s.message = message_of(event)
        s.detail = str(event.get("detail") or "")
        s.bad_input = bool(event.get("bad_input"))
        s.step = event.get("step", s.step)
        s.progress = ""


def open_stretch(s: RunSummary) -> float:
    """Seconds trained since the open stretch began, up to its last logged step (0 when none is open)."""
    last = s.logs[-1].get("time", 0.0) if s.logs else 0.0
    return max(0.0, last - s.segment_start) if s.segment_start and isinstance(last, (int, float)) else 0.0


def list_runs(root: Path | None = None, active: set[str] | None = None) -> list[RunSummary]:
    """All runs, newest first."""
    root = root or runs_root()
    if not root.exists():
        return []
    active = active or set()
    found = [summarize(p, p.name in active) for p in root.iterdir() if (p / "events.jsonl").exists()]
    return sorted(found, key=lambda s: s.started_at, reverse=True)
