"""End to end: data files in two formats train a few steps on the tiny random model."""
import json

import pytest

from core.config import RunConfig
from core.train.job import TrainingJob
from tests.paths import DATA


@pytest.mark.parametrize("name", ["qa_korean.csv", "markers.jsonl"])
def test_a_data_file_trains_a_few_steps(name, tiny_model_dir, tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_RUNS_DIR", str(tmp_path / "runs"))
    config = RunConfig(model=str(tiny_model_dir), dataset=str(DATA / name), max_steps=2, batch_size=2,
                       max_length=128, validation_share=0.0, eval_steps=100, save_steps=100)
    job = TrainingJob(config).start()
    assert job.join(180) == "finished"
    events = [json.loads(line) for line in (job.dir / "events.jsonl").read_text().splitlines()]
    started = next(e for e in events if e["type"] == "started")
    assert started["data"]["trained_share"] > 0 and started["data"]["rows"] == 3
    assert started["format"] == ("qa" if name.endswith(".csv") else "markers")
