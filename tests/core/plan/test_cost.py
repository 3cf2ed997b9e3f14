"""Time and cost: the estimate before Start (in the measured precision's speed), the price, and real vs estimate.

The estimate is the real planner on the embedded model's shape (nothing loaded); the
precision probe's cache is written by hand, so the measured bf16 speed-up is known.
Real vs estimate is rebuilt from a run's events.jsonl by core.runs, as after a restart.
"""
from __future__ import annotations

import json
import re

import pytest

from core import runs
from core.config import RunConfig
from core.events import EventLog
from core.messages import localize
from core.plan import cost, speed
from core.plan import precision as P
from core.plan.model_shape import EMBEDDED_CONFIG, shape_of

HANGUL = re.compile("[\uac00-\ud7a3]")
STATS = {"examples": 200, "tokens": 24_000, "trained_share": 0.4, "length_p50": 110}


@pytest.fixture(autouse=True)
def fixed_machine(tmp_path, monkeypatch):
    """A machine of known speed: 100 GFLOP/s, and a precision cache of our own."""
    monkeypatch.setattr(P, "_cache_file", lambda: tmp_path / "precision.json")
    monkeypatch.setattr(speed, "device_flops", lambda device="cpu": 100e9)
    monkeypatch.setattr(speed.hardware, "device_type", lambda: "cpu")
    yield tmp_path / "precision.json"


def embedded(**changes) -> RunConfig:
    return RunConfig(**changes)


def test_estimate_scales_with_the_steps_of_the_run():
    config = embedded(epochs=2)
    per_epoch = 50
    one_epoch = cost.run_seconds(config, STATS, per_epoch, per_epoch, model_config=EMBEDDED_CONFIG)
    assert one_epoch and one_epoch > 0
    assert cost.run_seconds(config, STATS, 2 * per_epoch, per_epoch, model_config=EMBEDDED_CONFIG) == \
        pytest.approx(2 * one_epoch)
    assert cost.run_seconds(config, STATS, 10, per_epoch, model_config=EMBEDDED_CONFIG) == pytest.approx(one_epoch / 5)
    assert cost.run_seconds(config, None, 10, per_epoch, model_config=EMBEDDED_CONFIG) is None  # data not checked


def test_estimate_uses_the_measured_precision_speed(fixed_machine):
    config = embedded(precision="auto")
    shape = shape_of(EMBEDDED_CONFIG)
    fp32 = cost.run_seconds(config, STATS, 50, 50, model_config=EMBEDDED_CONFIG)
    assert P.planned_speed(config, shape) is None  # not measured yet: fp32 speed assumed
    modes = tuple(sorted(set(P.candidates(config)) | {"fp32"}))
    fixed_machine.write_text(json.dumps({P._cache_key(shape, modes, config.uses_lora):
                                         {"fp32": 1.0, "bf16-autocast": 1.2, "bf16-weights": 2.0}}))
    assert P.planned_speed(config, shape) == 2.0
    assert cost.run_seconds(config, STATS, 50, 50, model_config=EMBEDDED_CONFIG) == pytest.approx(fp32 / 2)
    # an explicit fp32 run trains at fp32 speed whatever bf16 measured
    assert cost.run_seconds(embedded(precision="fp32"), STATS, 50, 50, model_config=EMBEDDED_CONFIG) == \
        pytest.approx(fp32)


def test_cost_with_a_price():
    assert cost.cost(1800, 0.44) == pytest.approx(0.22)
    assert cost.cost(1800, None) is None and cost.cost(None, 0.44) is None
    assert cost.money(0.22) == "$0.22" and cost.money(0.001) == "<$0.01" and cost.money(0) == "$0.00"
    assert cost.price("0.44") == 0.44 and cost.price(2) == 2.0
    assert cost.price("") is None and cost.price(None) is None and cost.price(-1) is None
    assert cost.price(float("nan")) is None and cost.price(1e9) is None
    line = cost.before_start(1800, 0.44)
    assert line == "Training takes about 30:00 · about $0.22 at $0.44/h"
    assert "$0.22" in localize(line, "ko") and HANGUL.search(localize(line, "ko"))
    assert cost.before_start(1800, None) == "Training takes about 30:00"
    assert cost.before_start(None, 0.44).key == "cost.no_estimate"


def _run(tmp_path, name="r1"):
    folder = tmp_path / "runs" / name
    return folder, EventLog(folder / "events.jsonl")


def test_real_against_estimate_from_the_events(tmp_path):
    folder, log = _run(tmp_path)
    log.append("started", model="m", total_steps=10)
    log.append("estimate", seconds=100.0)
    log.append("log", step=5, loss=1.0)
    log.append("stopped", step=5)
    log.append("resumed", step=5, total_steps=10)
    log.append("log", step=10, loss=0.5)
    log.append("finished", step=10)
    events = [json.loads(line) for line in (folder / "events.jsonl").read_text().splitlines()]
    # the stretches: started -> stopped, resumed -> finished (the pause between them is not training time)
    spans = (events[3]["time"] - events[0]["time"]) + (events[6]["time"] - events[4]["time"])
    summary = runs.summarize(folder)
    timing = cost.timing(summary)
    assert timing.estimated == 100.0 and timing.real == pytest.approx(spans) and not timing.live
    line = cost.after_end(timing, 3.6)
    assert line.key == "cost.took_vs_price" and "(estimated 1:40" in line and line.params["ratio"].endswith("%")
    assert cost.after_end(timing, None).key == "cost.took_vs"
    assert HANGUL.search(localize(line, "ko"))


def test_real_time_of_a_run_the_app_lost(tmp_path):
    """Interrupted (the app died mid-run), then resumed: the lost stretch counts up to its last logged step."""
    folder, log = _run(tmp_path, "r2")
    started = log.append("started", model="m", total_steps=10)
    log.append("estimate", seconds=50.0)
    last = log.append("log", step=3, loss=1.0)
    interrupted = cost.timing(runs.summarize(folder))
    assert interrupted.real == pytest.approx(last["time"] - started["time"]) and not interrupted.live
    resumed = log.append("resumed", step=3, total_steps=10)
    end = log.append("finished", step=10)
    done = cost.timing(runs.summarize(folder))
    assert done.real == pytest.approx(last["time"] - started["time"] + end["time"] - resumed["time"])


def test_no_estimate_event_still_shows_the_real_time(tmp_path):
    folder, log = _run(tmp_path, "r3")
    log.append("started", model="m", total_steps=2)
    log.append("finished", step=2)
    timing = cost.timing(runs.summarize(folder))
    assert timing.estimated is None and cost.after_end(timing, None).key == "cost.took"
    assert cost.after_end(cost.Timing(None, None), 1.0) is None


def test_the_job_records_its_estimate(tmp_path, tiny_config):
    """A real (tiny) run writes the estimate event, and its summary compares it with the real time."""
    from core.train.job import TrainingJob
    config = tiny_config.replace(dataset="builtin:demo", max_steps=2, eval_steps=0, save_steps=0, probe_prompts=[])
    job = TrainingJob(config, root=tmp_path / "runs").start()
    assert job.join(300) == "finished"
    summary = runs.summarize(job.dir)
    assert summary.estimated_seconds and summary.estimated_seconds > 0
    timing = cost.timing(summary)
    assert timing.real and timing.real > 0


def test_seconds_per_epoch_needs_this_device():
    assert speed.seconds_per_epoch(embedded(), shape_of(EMBEDDED_CONFIG), "cuda", 1000, STATS) is None
