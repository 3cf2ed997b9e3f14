"""TrainingJob on a tiny random model: finish, stop, resume, OOM retry, atomic saves."""
import json
import os
import signal
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from core.events import read_events
from core.runs import summarize
from core.train.job import TrainingJob
from tests.waiting import wait_for

ROOT = Path(__file__).resolve().parents[3]


def _types(job):
    return [e["type"] for e in read_events(job.dir / "events.jsonl")]


def test_finishes_and_leaves_a_complete_run(tiny_config):
    job = TrainingJob(tiny_config.replace(probe_prompts=["Who are you?"])).start()
    assert job.join(120) == "finished"
    types = _types(job)
    assert types[0] == "progress" and "started" in types and types[-1] == "finished"
    assert {"log", "eval", "sample", "checkpoint"} <= set(types)
    assert (job.dir / "config.yaml").exists() and (job.dir / "adapter" / "adapter_config.json").exists()
    summary = summarize(job.dir)
    assert summary.status == "finished" and summary.step == 4 and len(summary.logs) == 4
    # status lines carry a message key + params so the UI can show them in Korean
    events = read_events(job.dir / "events.jsonl")
    assert events[0]["key"] == "job.preparing" and events[-1]["params"] == {"steps": 4}
    assert {"data.loading", "data.tokenizing", "model.loading", "job.saving_adapter"} <= {e.get("key") for e in events}
    assert summary.message == "Finished 4 steps." and summary.message.key == "job.finished"
    log = summary.last_log
    assert {"loss", "lr", "tokens_per_sec", "memory_mb", "epoch", "elapsed", "eta"} <= set(log)


def test_a_bad_config_is_refused_with_every_problem_in_the_page_language(tiny_config):
    import re

    from core.errors import ConfigError
    from core.messages import localize
    with pytest.raises(ConfigError) as err:
        TrainingJob(tiny_config.replace(batch_size=0, lora_r=0))
    message = err.value.message
    assert "Batch size must be at least 1" in message and "LoRA rank must be between 1 and 1024" in message
    korean = localize(message, "ko")  # joined from Msgs: each problem localizes on its own
    assert "Batch size" not in korean and "LoRA rank" not in korean and re.search("[가-힣]", korean)


def test_adapter_loads_with_plain_peft(tiny_config, tiny_model_dir):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    job = TrainingJob(tiny_config.replace(max_steps=2)).start()
    assert job.join(120) == "finished"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), job.dir / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_stop_keeps_what_was_learned(tiny_config):
    job = TrainingJob(tiny_config.replace(max_steps=100000, eval_steps=100000, save_steps=100000)).start()
    _wait_for(lambda: summarize(job.dir, True).step >= 2)
    job.stop()
    assert job.join(60) == "stopped"
    summary = summarize(job.dir)
    assert summary.status == "stopped" and summary.step >= 2
    assert summary.message.key == "job.stopped" and summary.message.params["step"] == summary.step
    assert (job.dir / "adapter" / "adapter_config.json").exists()


def test_failure_is_a_plain_message_and_keeps_nothing_broken(tiny_config, tmp_path):
    bad = tmp_path / "bad.jsonl"
    bad.write_text("not json at all\n{{{\n")
    job = TrainingJob(tiny_config.replace(dataset=str(bad))).start()
    assert job.join(60) == "failed"
    summary = summarize(job.dir)
    assert summary.status == "failed" and "bad.jsonl" in summary.message and "Traceback" not in summary.message


def test_out_of_memory_retries_with_smaller_micro_batch(tiny_config, monkeypatch):
    from core.train import trainer as trainer_module
    real = trainer_module.loss_sum

    def fake_loss_sum(model, inputs):
        if inputs["input_ids"].numel() > 0 and _batch_rows(inputs) > 2:
            raise torch.OutOfMemoryError("CUDA out of memory (injected)")
        return real(model, inputs)

    monkeypatch.setattr(trainer_module, "loss_sum", fake_loss_sum)
    job = TrainingJob(tiny_config.replace(batch_size=8, grad_accum=1, packing=False)).start()
    assert job.join(120) == "finished"
    notices = [e for e in read_events(job.dir / "events.jsonl") if e["type"] == "notice" and "batch_size" in e]
    assert [(n["batch_size"], n["grad_accum"]) for n in notices] == [(4, 2), (2, 4)]
    assert notices[0]["key"] == "job.oom_retry_batch" and notices[0]["params"]["batch_to"] == 4
    assert notices[0]["message"].startswith("Out of memory; retrying with micro-batch 8 -> 4, accumulation 1 -> 2")
    assert job.config.batch_size * job.config.grad_accum == 8  # same effective batch


def _batch_rows(inputs):
    return inputs["input_ids"].shape[0]


def test_checkpoint_write_failure_keeps_the_previous_one(tiny_config, monkeypatch):
    job = TrainingJob(tiny_config.replace(max_steps=4, save_steps=2, eval_steps=100)).start()
    assert job.join(120) == "finished"
    checkpoints = sorted((job.dir / "checkpoints").glob("step-*"))
    assert checkpoints and (checkpoints[-1] / "state.json").exists()
    before = {p.name: p.stat().st_size for p in checkpoints[-1].rglob("*") if p.is_file()}

    from core.train import checkpoints as checkpoint_module

    def disk_full(*args, **kwargs):
        raise OSError(28, "No space left on device")

    monkeypatch.setattr(checkpoint_module.torch, "save", disk_full)
    resumed = TrainingJob(None, resume=job.name)
    trainer = _bare_trainer(resumed)
    with pytest.raises(OSError):
        trainer.save_checkpoint()
    after = {p.name: p.stat().st_size for p in checkpoints[-1].rglob("*") if p.is_file()}
    assert after == before and not list((job.dir / "checkpoints").glob("step-*[!0-9]*"))


def _bare_trainer(job):
    import threading

    from core.models import load_base, load_tokenizer, prepare_for_training
    from core.train.trainer import Trainer
    tok = load_tokenizer(job.config)
    model = prepare_for_training(load_base(job.config), tok, job.config)
    examples = [{"input_ids": [1, 2, 3], "labels": [1, 2, 3]}] * 8
    trainer = Trainer(model, tok, examples, [], job.config, job.log, job.dir, threading.Event())
    trainer.step = 4
    return trainer


def test_killed_process_resumes_to_the_same_total(tiny_model_dir, runs_root, tmp_path):
    """SIGKILL mid-run, then `app.py resume`: continues from the last checkpoint to the same step count."""
    config = tmp_path / "c.yaml"
    config.write_text(f"model: {tiny_model_dir}\nmax_steps: 300\nbatch_size: 2\nsave_steps: 10\n"
                      f"eval_steps: 100000\nvalidation_share: 0\nrun_name: killme\nlogging_steps: 10\n")
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs_root)}
    proc = subprocess.Popen([sys.executable, "app.py", "train", "--config", str(config)], cwd=ROOT, env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    run = runs_root / "killme"
    try:
        _wait_for(lambda: any(e["type"] == "checkpoint" and e["step"] >= 20 for e in read_events(run / "events.jsonl")), 240)
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
    killed = summarize(run)
    assert killed.status == "interrupted" and killed.logs
    last_checkpoint = json.loads(sorted((run / "checkpoints").glob("step-*"))[-1].joinpath("state.json").read_text())["step"]
    done = subprocess.run([sys.executable, "app.py", "resume", "--run", "killme"], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    events = read_events(run / "events.jsonl")
    resumed = [e for e in events if e["type"] == "resumed"]
    assert resumed and resumed[0]["step"] == last_checkpoint
    final = summarize(run)
    assert final.status == "finished" and final.step == 300 and final.total_steps == 300
    steps = [e["step"] for e in final.logs]
    assert steps == sorted(set(steps))  # one curve, no duplicated steps after the resume


def _wait_for(condition, timeout=120):
    wait_for(condition, timeout)
