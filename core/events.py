"""The events of a run and the append-only log they are written to.

Each event is one JSON object per line in `runs/<run>/events.jsonl`, written
and flushed as it happens, so a page reload, a second browser or a restarted
app can rebuild the whole run from the file. Reading tolerates a half-written
last line (the app may have been killed mid-write).
"""
from __future__ import annotations

import errno
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
    "estimate",     # the training time estimated at Start (core/plan/cost.py), compared with the real one at the end
    "finished", "stopped", "failed",  # how the run ended
)
TERMINAL_TYPES = ("finished", "stopped", "failed")
RESERVE_NAME, RESERVE_BYTES = ".space-reserve", 256 << 10


class EventLog:
    """Appends events to a run's events.jsonl; safe to call from several threads."""

    def __init__(self, path: str | Path):
        self.path = Path(path)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._lock = threading.Lock()
        self.reserve = self.path.parent / RESERVE_NAME
        _make_reserve(self.reserve)
        _end_torn_line(self.path)

    def append(self, type: str, **fields) -> dict:
        if type not in EVENT_TYPES:
            raise ValueError(f"unknown event type {type!r}")
        event = {"type": type, "time": round(time.time(), 3), **fields}
        line = json.dumps(event, ensure_ascii=False, default=str)
        with self._lock:
            try:
                self._write(line)
            except OSError as err:
                # a full disk must not also silence how the run ended: free the reserve and write again
                if err.errno != errno.ENOSPC or not self.reserve.exists():
                    raise
                self.reserve.unlink()
                self._write(line)
        return event

    def _write(self, line: str) -> None:
        with open(self.path, "a", encoding="utf-8") as fh:
            fh.write(line + "\n")
            fh.flush()
            os.fsync(fh.fileno())

    def read(self) -> list[dict]:
        return read_events(self.path)


def _end_torn_line(path: Path) -> None:
    """A killed writer may have left half a line: end it, so the next event starts a line of its own."""
    try:
        with open(path, "rb+") as fh:
            if fh.seek(0, os.SEEK_END) and (fh.seek(-1, os.SEEK_END), fh.read(1))[1] != b"\n":
                fh.write(b"\n")
    except OSError:
        return  # no log yet (or unwritable: append will say so)


def _make_reserve(path: Path) -> None:
    """A little space held back per run, given up when the disk fills so the last events still fit."""
    if path.exists():
        return
    try:
        path.write_bytes(b"\0" * RESERVE_BYTES)
    except OSError:
        path.unlink(missing_ok=True)  # already full: nothing to hold back


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
                if isinstance(event, dict) and isinstance(event.get("type"), str):
                    yield event
    except FileNotFoundError:
        return
