"""Experiment trackers (`report_to`): the run's own events, also sent to TensorBoard, W&B, MLflow or Trackio.

The trackers are fed from exactly what the UI shows: every event the job writes to
events.jsonl passes through `TrackedLog.append`, and the "log" / "eval" ones become
the tracker's metrics (loss, learning rate, gradient norm, tokens/s, validation
loss) at the run's step; the run's config goes with the tracker run's start.
Whether the chosen tracker is installed is checked before Start
(core/plan/checks.py, with the pip command); one that fails mid-run is closed and
named in a notice event, and training goes on: a tracker is never worth a run.

    tensorboard  event files in <run>/tensorboard (torch.utils.tensorboard)
    wandb        a W&B run; offline (files in <run>/wandb) unless WANDB_API_KEY or WANDB_MODE say otherwise
    mlflow       an MLflow run in MLFLOW_TRACKING_URI, else a file store in <run>/mlruns
    trackio      a Trackio run (its own local store), project TRACKIO_PROJECT or "tunelab"
"""
from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

from core.config import RunConfig
from core.events import TERMINAL_TYPES
from core.messages import event_fields, msg

PROJECT = "tunelab"
# which fields of a "log" / "eval" event become which tracker metric
METRICS = {"log": {"loss": "train/loss", "lr": "train/learning_rate", "grad_norm": "train/grad_norm",
                   "epoch": "train/epoch", "tokens_per_sec": "train/tokens_per_sec"},
           "eval": {"val_loss": "eval/loss"}}


class Tracker:
    """One tracker run: `log(metrics, step)` and `close()`; a subclass opens it in __init__."""
    name = ""

    def log(self, metrics: dict[str, float], step: int) -> None:
        raise NotImplementedError

    def close(self) -> None:
        """Nothing to flush by default."""


class TensorBoard(Tracker):
    name = "tensorboard"

    def __init__(self, config: RunConfig, run_dir: Path, run_name: str):
        from torch.utils.tensorboard import SummaryWriter  # noqa: PLC0415 - needs the optional tensorboard package

        self.writer = SummaryWriter(log_dir=str(run_dir / "tensorboard"))
        self.writer.add_text("config", "```\n" + json.dumps(config.to_dict(), indent=1, ensure_ascii=False) + "\n```")

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.writer.add_scalar(key, value, step)
        self.writer.flush()  # the UI's curve and TensorBoard's stay step for step

    def close(self) -> None:
        self.writer.close()


class Wandb(Tracker):
    name = "wandb"

    def __init__(self, config: RunConfig, run_dir: Path, run_name: str):
        import wandb  # noqa: PLC0415 - optional package

        # no key and no explicit mode: offline files (`wandb sync` uploads them later), never a login prompt
        mode = os.environ.get("WANDB_MODE") or ("online" if os.environ.get("WANDB_API_KEY") else "offline")
        self.run = wandb.init(project=os.environ.get("WANDB_PROJECT", PROJECT), name=run_name, dir=str(run_dir),
                              config=config.to_dict(), mode=mode, reinit="create_new")

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.run.log(metrics, step=step)

    def close(self) -> None:
        self.run.finish()


class Mlflow(Tracker):
    name = "mlflow"

    def __init__(self, config: RunConfig, run_dir: Path, run_name: str):
        from mlflow.tracking import MlflowClient  # noqa: PLC0415 - optional package

        # a client of its own (not mlflow's global active run): the app may train while something else logs
        uri = os.environ.get("MLFLOW_TRACKING_URI") or (run_dir / "mlruns").resolve().as_uri()
        self.client = MlflowClient(tracking_uri=uri)
        name = os.environ.get("MLFLOW_EXPERIMENT_NAME", PROJECT)
        found = self.client.get_experiment_by_name(name)
        experiment = found.experiment_id if found else self.client.create_experiment(name)
        self.run_id = self.client.create_run(experiment, run_name=run_name).info.run_id
        for key, value in config.to_dict().items():
            self.client.log_param(self.run_id, key, str(value)[:500])  # mlflow caps a parameter's length

    def log(self, metrics: dict[str, float], step: int) -> None:
        for key, value in metrics.items():
            self.client.log_metric(self.run_id, key, value, step=step)

    def close(self) -> None:
        self.client.set_terminated(self.run_id)


class Trackio(Tracker):
    name = "trackio"

    def __init__(self, config: RunConfig, run_dir: Path, run_name: str):
        import trackio  # noqa: PLC0415 - optional package

        self.trackio = trackio
        trackio.init(project=os.environ.get("TRACKIO_PROJECT", PROJECT), name=run_name, config=config.to_dict())

    def log(self, metrics: dict[str, float], step: int) -> None:
        self.trackio.log(metrics, step=step)

    def close(self) -> None:
        self.trackio.finish()


TRACKERS: dict[str, type[Tracker]] = {t.name: t for t in (TensorBoard, Wandb, Mlflow, Trackio)}


class TrackedLog:
    """An EventLog that also feeds the run's trackers; everything else is the EventLog's own."""

    def __init__(self, log, trackers: list[Tracker]):
        self._log = log
        self.trackers = trackers

    def __getattr__(self, name: str) -> Any:
        return getattr(self._log, name)

    def append(self, type: str, **fields) -> dict:
        event = self._log.append(type, **fields)
        if type in METRICS:
            metrics = {name: float(fields[key]) for key, name in METRICS[type].items()
                       if isinstance(fields.get(key), (int, float))}
            if metrics:
                self._each(lambda t: t.log(metrics, int(fields.get("step") or 0)))
        elif type in TERMINAL_TYPES:
            self.close()
        return event

    def close(self) -> None:
        self._each(lambda t: t.close())
        self.trackers = []

    def _each(self, call) -> None:
        """Call every tracker; one that raises is dropped with a notice, and training goes on."""
        for tracker in list(self.trackers):
            try:
                call(tracker)
            except Exception as err:  # any tracker error (network, disk, its own bugs): never the run's end
                self._drop(tracker, err)

    def _drop(self, tracker: Tracker, err: BaseException) -> None:
        self.trackers.remove(tracker)
        try:
            tracker.close()
        except Exception:  # closing a broken tracker may fail too; the notice below says why
            pass
        error = (str(err).splitlines() or [type(err).__name__])[0][:200]
        self._log.append("notice", level="warning",
                         **event_fields(msg("tracker.failed", tracker=tracker.name, error=error or type(err).__name__)))


def attach(log, config: RunConfig, run_dir: Path, run_name: str):
    """`log` feeding the trackers `config.report_to` names (a TrackedLog), or `log` itself for "none".

    A tracker that cannot start is named in a notice and left out; the run trains without it.
    """
    base = log._log if isinstance(log, TrackedLog) else log  # a retry after running out of memory: start afresh
    if isinstance(log, TrackedLog):
        log.close()
    names = [n.strip() for n in (config.report_to or "none").split(",") if n.strip() not in ("", "none")]
    if not names:
        return base
    tracked = TrackedLog(base, [])
    for name in names:
        try:
            tracked.trackers.append(TRACKERS[name](config, Path(run_dir), run_name))
        except Exception as err:  # not configured, a bad URI, no disk: the run goes on without it
            error = (str(err).splitlines() or [type(err).__name__])[0][:200]
            base.append("notice", level="warning",
                        **event_fields(msg("tracker.failed", tracker=name, error=error or type(err).__name__)))
    return tracked
