"""One training job per app (per device), shared by every browser session, owned by the user who started it.

The web app holds a single JobManager. A second Start while a job runs is
refused (Busy, with a catalogue message naming the run that is training and
who started it), instead of starting a second job that would fight for the
same memory. Every job also holds the device lock (core.devicelock) for as
long as its thread runs, so a CLI run, a second app or a chat answer on the
same device is refused too, with who holds it and since when; a run another
process is training is never resumed here. Start and Resume both free the chat
model first.

`who` is either a plain name (a script or test: acts as the owner) or a
core.access.User from a browser: then the owner's policy applies (remote code,
allowed folders, demo limits), the run is written as that user's
(runs/<run>/owner.json), and Stop/Resume/listing are limited to that user's
own runs unless they are an admin.
"""
from __future__ import annotations

import threading
import time
from pathlib import Path

from core import access, devicelock, runs
from core.access import User
from core.config import RunConfig
from core.errors import AccessDenied, Busy
from core.infer.chat import release as release_chat_model
from core.messages import join, msg
from core.train import preference
from core.train.job import TrainingJob


def as_user(who: str | User | None) -> tuple[User, bool]:
    """(user, from a browser): a plain name is trusted (the owner's own scripts and tests)."""
    if isinstance(who, User):
        return who, True
    return User(who or "", admin=True), False


class JobManager:
    def __init__(self, root: Path | None = None):
        self.root = root
        self._job: TrainingJob | None = None
        self._lock = threading.Lock()
        self._watcher: threading.Thread | None = None  # hands the device lock back when the job's thread ends

    @property
    def current(self) -> TrainingJob | None:
        """The running job, if any."""
        job = self._job
        return job if job and job.running else None

    def active_names(self) -> set[str]:
        job = self.current
        return {job.name} if job else set()

    def start(self, config: RunConfig, token: str | None = None, who: str | User = "") -> TrainingJob:
        user, browser = as_user(who)
        if browser:
            problems = access.check_config(config) + access.check_local_paths(config, user)
            if problems:
                raise AccessDenied(join(problems))
            for name in preference.source_runs(config):  # DPO reads a run's adapter and votes: one's own runs only
                access.require_owner(user, runs.run_dir(name, self.root))
        return self._launch(lambda: TrainingJob(config, token=token, root=self.root), user, "train", new=True)

    def resume(self, run_name: str, token: str | None = None, who: str | User = "") -> TrainingJob:
        user, browser = as_user(who)
        folder = runs.run_dir(run_name, self.root)
        refuse_if_elsewhere(run_name, self.root)
        if browser:
            access.require_owner(user, folder)
            problems = access.check_config(RunConfig.load_yaml(folder / "config.yaml"))
            if problems:
                raise AccessDenied(join(problems))
        return self._launch(lambda: TrainingJob(None, token=token, root=self.root, resume=run_name), user,
                            "resume", new=False)

    def _launch(self, make, user: User, action: str, new: bool) -> TrainingJob:
        with self._lock:
            running = self.current
            if running:
                owner = getattr(running, "owner", "")
                raise Busy(msg("train.busy_by", run=running.name, who=owner) if owner
                           else msg("train.busy", run=running.name))
            if self._watcher:  # the last job has ended: let it hand the device lock back first
                self._watcher.join(10)
            job = make()
            lease = devicelock.acquire(action, run=job.name, user=user.name, root=job.root)  # Busy: who holds it
            try:
                if new:
                    access.write_owner(job.dir, user)  # before the first event: never listed without an owner
                release_chat_model()  # free the chat model's memory for training
                job.owner = user.name
                self._job = job.start()
            except BaseException:
                lease.release()
                raise
            self._watcher = threading.Thread(target=_release_when_done, args=(job, lease), name=f"lock-{job.name}",
                                             daemon=True)
            self._watcher.start()
            return job

    def stop(self, who: str | User = "") -> str | None:
        """Ask the live run to stop; a browser user may stop only their own run (an admin any)."""
        job = self.current
        if not job:
            return None
        user, _ = as_user(who)
        if not access.can_act(user, job.owner):
            raise AccessDenied(msg("access.not_your_run", run=job.name))
        job.stop()
        return job.name

    def list_runs(self, who: str | User | None = None) -> list[runs.RunSummary]:
        """Every run this user may see (all for an admin, a script, or None), newest first."""
        found = runs.list_runs(self.root, self.active_names())
        if who is None:
            return found
        user, _ = as_user(who)
        return [s for s in found if access.can_act(user, s.owner)]

    def summary(self, name: str, who: str | User | None = None) -> runs.RunSummary:
        """A run's state; AccessDenied when a browser user may not see it."""
        folder = runs.run_dir(name, self.root)
        if who is not None:
            access.require_owner(as_user(who)[0], folder)
        return runs.summarize(folder, name in self.active_names())


def refuse_if_elsewhere(run_name: str, root: Path | None = None) -> None:
    """Busy when another process is training `run_name` (the UI's Resume and the CLI's resume both ask)."""
    holder = devicelock.holder_of_run(run_name, runs.run_dir(run_name, root).parent)
    if holder:
        raise Busy(msg("access.run_elsewhere", run=run_name, pid=holder.pid, host=holder.host,
                       since=_clock(holder.since)))


def _release_when_done(job: TrainingJob, lease: devicelock.Lease) -> None:
    job.join()
    lease.release()


def _clock(when: float) -> str:
    return time.strftime("%H:%M:%S", time.localtime(when))
