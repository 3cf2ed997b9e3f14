"""report_to: a run's loss reaches TensorBoard; a missing tracker is refused; a broken one never stops training."""
import pytest

from core.events import read_events
from core.plan.checks import check
from core.train import trackers
from core.train.job import TrainingJob


def _scalars(folder, tag):
    from tensorboard.backend.event_processing.event_accumulator import EventAccumulator
    events = EventAccumulator(str(folder))
    events.Reload()
    return {e.step: e.value for e in events.Scalars(tag)}


def test_tensorboard_gets_the_runs_loss_and_eval_loss(tiny_config):
    job = TrainingJob(tiny_config.replace(report_to="tensorboard")).start()
    assert job.join(180) == "finished"
    assert list((job.dir / "tensorboard").glob("events.out.tfevents.*"))
    events = read_events(job.dir / "events.jsonl")
    logged = {e["step"]: e["loss"] for e in events if e["type"] == "log"}
    losses = _scalars(job.dir / "tensorboard", "train/loss")
    assert set(losses) == set(logged) == {1, 2, 3, 4}
    assert all(abs(losses[s] - logged[s]) < 1e-4 for s in logged)  # the same numbers the UI draws
    evals = {e["step"]: e["val_loss"] for e in events if e["type"] == "eval"}
    assert evals and set(_scalars(job.dir / "tensorboard", "eval/loss")) == set(evals)
    assert not [e for e in events if e.get("key") == "tracker.failed"]


@pytest.mark.parametrize("name", ["wandb", "mlflow", "trackio"])
def test_a_tracker_that_is_not_installed_is_refused_before_start(tiny_config, monkeypatch, name):
    from core import hardware
    real = hardware.has_package
    monkeypatch.setattr(hardware, "has_package", lambda module: module != name and real(module))
    problems = [str(p) for p in check(tiny_config.replace(report_to=name))]
    assert any(f"pip install {name}" in p for p in problems), problems
    with pytest.raises(Exception, match=f"pip install {name}"):
        TrainingJob(tiny_config.replace(report_to=name))


def test_a_tracker_failing_mid_run_never_stops_training(tiny_config, monkeypatch):
    calls = []

    def broken(self, metrics, step):
        calls.append(step)
        if step == 2:
            raise RuntimeError("tracker server went away")
        self.writer.add_scalar("train/loss", metrics["train/loss"], step)

    monkeypatch.setattr(trackers.TensorBoard, "log", broken)
    job = TrainingJob(tiny_config.replace(report_to="tensorboard")).start()
    assert job.join(180) == "finished"
    events = read_events(job.dir / "events.jsonl")
    failed = [e for e in events if e.get("key") == "tracker.failed"]
    assert len(failed) == 1 and "went away" in failed[0]["message"] and failed[0]["level"] == "warning"
    assert calls == [1, 2]  # dropped after it failed; the run logged all four steps itself
    assert [e["step"] for e in events if e["type"] == "log"] == [1, 2, 3, 4]


def test_a_tracker_that_cannot_start_is_a_notice_not_a_failure(tmp_path):
    from core.config import RunConfig
    from core.events import EventLog

    class Unstartable(trackers.Tracker):
        name = "tensorboard"

        def __init__(self, *args):
            raise OSError("no space for event files")

    log = EventLog(tmp_path / "events.jsonl")
    original = trackers.TRACKERS["tensorboard"]
    trackers.TRACKERS["tensorboard"] = Unstartable
    try:
        tracked = trackers.attach(log, RunConfig(report_to="tensorboard"), tmp_path, "r")
    finally:
        trackers.TRACKERS["tensorboard"] = original
    tracked.append("log", step=1, loss=1.0)
    assert [e["key"] for e in log.read() if e["type"] == "notice"] == ["tracker.failed"]
    assert trackers.attach(log, RunConfig(), tmp_path, "r") is log  # "none": the plain log


def test_wandb_and_mlflow_adapters_feed_metrics_with_the_config(tmp_path, monkeypatch):
    """Against stand-ins of their APIs (neither is installed here): offline wandb, a file-store MLflow run."""
    import sys
    import types

    from core.config import RunConfig
    from core.events import EventLog
    calls = []

    class Run:
        def log(self, metrics, step):
            calls.append(("wandb.log", metrics, step))

        def finish(self):
            calls.append(("wandb.finish",))

    wandb = types.SimpleNamespace(init=lambda **kw: calls.append(("wandb.init", kw)) or Run())

    class Client:
        def __init__(self, tracking_uri):
            calls.append(("mlflow.uri", tracking_uri))

        def get_experiment_by_name(self, name):
            return None

        def create_experiment(self, name):
            return "7"

        def create_run(self, experiment, run_name):
            return types.SimpleNamespace(info=types.SimpleNamespace(run_id=f"{experiment}-{run_name}"))

        def log_param(self, run_id, key, value):
            calls.append(("mlflow.param", key, value))

        def log_metric(self, run_id, key, value, step):
            calls.append(("mlflow.metric", key, value, step))

        def set_terminated(self, run_id):
            calls.append(("mlflow.end", run_id))

    tracking = types.ModuleType("mlflow.tracking")
    tracking.MlflowClient = Client
    monkeypatch.setitem(sys.modules, "wandb", wandb)
    monkeypatch.setitem(sys.modules, "mlflow", types.ModuleType("mlflow"))
    monkeypatch.setitem(sys.modules, "mlflow.tracking", tracking)
    monkeypatch.delenv("WANDB_MODE", raising=False)
    monkeypatch.delenv("WANDB_API_KEY", raising=False)
    monkeypatch.delenv("MLFLOW_TRACKING_URI", raising=False)
    log = EventLog(tmp_path / "events.jsonl")
    for name in ("wandb", "mlflow"):
        tracked = trackers.attach(log, RunConfig(report_to=name, lora_r=8), tmp_path, "run-1")
        tracked.append("log", step=3, loss=1.5, lr=1e-4)
        tracked.append("eval", step=3, val_loss=1.25)
        tracked.append("finished", step=3, message="done")
    init = next(c[1] for c in calls if c[0] == "wandb.init")
    assert init["mode"] == "offline" and init["config"]["lora_r"] == 8 and init["name"] == "run-1"
    assert ("wandb.log", {"train/loss": 1.5, "train/learning_rate": 1e-4}, 3) in calls
    assert ("wandb.log", {"eval/loss": 1.25}, 3) in calls and ("wandb.finish",) in calls
    assert ("mlflow.uri", (tmp_path / "mlruns").resolve().as_uri()) in calls
    assert ("mlflow.param", "lora_r", "8") in calls and ("mlflow.metric", "eval/loss", 1.25, 3) in calls
    assert ("mlflow.end", "7-run-1") in calls
    assert not [e for e in log.read() if e.get("key") == "tracker.failed"]
