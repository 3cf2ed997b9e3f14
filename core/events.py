"""The events of a run and the append-only log they are written to.

Each event is one JSON object per line in `runs/<run>/events.jsonl`, written
and flushed as it happens, so a page reload, a second browser or a restarted
app can rebuild the whole run from the file. Reading tolerates a half-written
last line (the app may have been killed mid-write).
"""
from __future__ import annotations

import json
import os
import threading
import time
from collections.abc import Iterator
from pathlib import Path

# The kinds of events a run writes, in the order they usually appear.
EVENT_TYPES = (
    "started",      # config summary, sizes, device
    "progress",     # a long phase: loading the model, tokenizing, saving
    "log",          # step, loss, lr, epoch, tokens/s, memory
    "eval",         # validation loss
    "sample",       # a probe prompt's answer at a step
    "checkpoint",   # a resumable checkpoint was written
    "notice",       # something the engine changed by itself (e.g. OOM retry)
    "resumed",      # training continued from a checkpoint
    "finished", "stopped", "failed",  # how the run ended
)
TERMINAL_TYPES = ("finished", "stopped", "failed")


class EventLog:
    """Appends events to a run's events.jsonl; safe to call from several threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()

    def append(self, type: str, **fields) -> dict:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = {"type": type, "time": round(time.time(), 3), **fields}
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:
            with open(self.path, "a", encoding="utf-8") as fh:
                fh.write(line + "\n")
                fh.flush()
                os.fsync(fh.fileno())
        return event

    def read(self) -> list[dict]:
        return read_events(self.path)


def read_events(path: str | Path) -> list[dict]:
    """All complete events in the file; a torn or corrupt line is skipped."""
    return list(iter_events(path))


def iter_events(path: str | Path) -> Iterator[dict]:
    try:
        with open(path, encoding="utf-8", errors="replace") as fh:
            for line in fh:
                line = line.strip()
                if not line:
                    continue
                try:
                    event = json.loads(line)
                except json.JSONDecodeError:
                    continue  # half-written line from a killed process
                if isinstance(event, dict) and "type" in event:
                    yield event
    except FileNotFoundError:
        return
