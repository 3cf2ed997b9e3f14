"""One training job per app (per device), shared by every browser session.

The web app holds a single JobManager. A second Start while a job runs is
refused (Busy, with a catalogue message naming the run that is training and
who started it), instead of starting a second job that would fight for the
same memory. Start and Resume both free the chat model first.
"""
from __future__ import annotations

import threading
from pathlib import Path

from core import runs
from core.config import RunConfig
from core.errors import Busy
from core.infer.chat import release as release_chat_model
from core.messages import msg
from core.train.job import TrainingJob


class JobManager:
    def __init__(self, root: Path | None = None):
        self.root = root
        self._job: TrainingJob | None = None
        self._lock = threading.Lock()

    @property
    def current(self) -> TrainingJob | None:
        """The running job, if any."""
        job = self._job
        return job if job and job.running else None

    def active_names(self) -> set[str]:
        job = self.current
        return {job.name} if job else set()

    def start(self, config: RunConfig, token: str | None = None, who: str = "") -> TrainingJob:
        return self._launch(lambda: TrainingJob(config, token=token, root=self.root), who)

    def resume(self, run_name: str, token: str | None = None, who: str = "") -> TrainingJob:
        return self._launch(lambda: TrainingJob(None, token=token, root=self.root, resume=run_name), who)

    def _launch(self, make, who: str) -> TrainingJob:
        with self._lock:
            running = self.current
            if running:
                owner = getattr(running, "owner", "")
                raise Busy(msg("train.busy_by", run=running.name, who=owner) if owner
                           else msg("train.busy", run=running.name))
            release_chat_model()  # free the chat model's memory for training
            job = make()
            job.owner = who or ""
            self._job = job.start()
            return job

    def stop(self) -> str | None:
        job = self.current
        if job:
            job.stop()
            return job.name
        return None

    def list_runs(self) -> list[runs.RunSummary]:
        return runs.list_runs(self.root, self.active_names())

    def summary(self, name: str) -> runs.RunSummary:
        return runs.summarize(runs.run_dir(name, self.root), name in self.active_names())
