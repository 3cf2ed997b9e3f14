"""Faults a real app meets: repeated runs, a second Start, stopped generation, secrets, random input;
and (issue 16) hostile data, bad numbers and every way a run can end, each as its expected behaviour.

The deep file and the bad numbers go through the CLI (a crash there would be exit 139, a traceback
exit 1); the runs use the tiny random model of tests/conftest.py. The event-log test prints the CPU
cost of one live-view tick at 100,000 steps, the Parquet test the memory a million-row file costs.
"""
from __future__ import annotations

import errno
import gc
import json
import math
import os
import subprocess
import sys
import threading
import time
import tracemalloc
from pathlib import Path

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from core.config import RunConfig
from core.data.pipeline import load_examples
from core.data.sources import load_rows
from core.errors import Busy, ConfigError, DataError
from core.events import EventLog, read_events
from core.runs import summarize
from core.train.job import TrainingJob
from core.train.manager import JobManager
from tests.core.data.helpers import cfg, write_jsonl
from tests.paths import ROOT
from tests.waiting import wait_for


def test_second_start_is_refused_with_who_is_running(tiny_config, runs_root):
    manager = JobManager(runs_root)
    first = manager.start(tiny_config.replace(max_steps=100000, eval_steps=100000, save_steps=100000), who="alice")
    try:
        with pytest.raises(Busy, match=f"'{first.name}'.*alice"):
            manager.start(tiny_config, who="bob")
    finally:
        manager.stop()
        first.join(60)
    assert first.outcome == "stopped"
    second = manager.start(tiny_config.replace(max_steps=1))
    assert second.join(60) == "finished"


def test_token_is_never_written_to_disk(tiny_config, runs_root):
    secret = "hf_" + "Q" * 34
    job = TrainingJob(tiny_config.replace(max_steps=2), token=secret).start()
    assert job.join(120) == "finished"
    from core.infer.export import merge
    merge(job.dir)
    for path in job.dir.rglob("*"):
        if path.is_file():
            assert secret.encode() not in path.read_bytes(), f"token found in {path}"


def test_five_runs_in_one_process_leak_no_models(tiny_config):
    import psutil
    from transformers import PreTrainedModel
    process = psutil.Process()
    from core.hardware import release_memory
    for _ in range(2):  # warm-up: imports, allocator pools, tokenizer caches
        TrainingJob(tiny_config.replace(max_steps=2)).start().join(120)
    release_memory()
    baseline = process.memory_info().rss
    for _ in range(5):
        job = TrainingJob(tiny_config.replace(max_steps=2)).start()
        assert job.join(120) == "finished"
        release_memory()
        assert process.memory_info().rss <= baseline * 1.10
    # the planner keeps a few empty models (every parameter on the meta device, no memory) to read layer shapes
    alive = [o for o in gc.get_objects() if isinstance(o, PreTrainedModel)
             and any(p.device.type != "meta" for p in o.parameters())]
    assert not alive, f"{len(alive)} models still in memory after the runs"


def test_generation_stop_ends_quickly_and_never_blocks_the_next(tiny_model_dir):
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.infer.generate import Sampling, stream
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    tokenizer = AutoTokenizer.from_pretrained(tiny_model_dir)
    stop = threading.Event()
    messages = [{"role": "user", "content": "Hello"}]
    updates = 0
    for _texts in stream(model, tokenizer, messages, Sampling(max_new_tokens=400, temperature=1.0), ["default"], stop):
        updates += 1
        stop.set()
    # the next generation works normally after a stopped one
    out = list(stream(model, tokenizer, messages, Sampling(max_new_tokens=5, temperature=0), ["default"]))
    assert out and updates >= 1


def test_base_and_tuned_differ_from_one_loaded_model(tiny_config, tiny_model_dir):
    """The 'base' column equals the plain base model; the 'tuned' one carries the adapter."""
    from transformers import AutoModelForCausalLM

    from core.infer.chat import get_chat_model, release
    from core.infer.generate import Sampling, answer, compare
    job = TrainingJob(tiny_config.replace(max_steps=3, learning_rate=5e-2)).start()
    assert job.join(120) == "finished"
    chat = get_chat_model(job.name)
    question = [{"role": "user", "content": "Hi"}]
    greedy = Sampling(max_new_tokens=8, temperature=0, repetition_penalty=1.0)
    base, tuned = list(compare(chat.model, chat.tokenizer, question, greedy))[-1]
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir).eval()
    assert base.strip() == answer(plain, chat.tokenizer, question, greedy)
    assert tuned.strip() == answer(chat.model, chat.tokenizer, question, greedy)
    assert base != tuned

    # batched, left-padded, mixed base/tuned rows give the same answers as one question at a time
    from core.infer.generate import BASE, answer_batch
    questions = [question, [{"role": "user", "content": "Tell me about the bakery on the island, please"}]]
    rows = [q for q in questions for _ in (0, 1)]
    batched = answer_batch(chat.model, chat.tokenizer, rows, [BASE, "default"] * 2, greedy)
    singles = [answer(plain, chat.tokenizer, q, greedy) if i % 2 == 0 else answer(chat.model, chat.tokenizer, q, greedy)
               for i, q in enumerate(rows)]
    assert batched == singles
    release()


field_values = st.one_of(st.none(), st.booleans(), st.integers(-10**6, 10**6), st.floats(allow_nan=True),
                         st.text(max_size=30), st.lists(st.text(max_size=5), max_size=3))


@settings(max_examples=300, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.dictionaries(st.sampled_from(RunConfig.field_names() + ["bogus_key"]), field_values, max_size=6))
def test_random_config_values_end_in_a_message_or_a_config(values):
    try:
        config = RunConfig.from_dict(values)
    except ConfigError as err:
        assert str(err)
        return
    problems = config.validate()
    assert all(isinstance(p, str) and p for p in problems)


json_values = st.recursive(st.one_of(st.none(), st.booleans(), st.integers(), st.text(max_size=20)),
                           lambda inner: st.one_of(st.lists(inner, max_size=3),
                                                   st.dictionaries(st.text(max_size=8), inner, max_size=3)),
                           max_leaves=8)
row_keys = st.sampled_from(["messages", "conversations", "instruction", "input", "output", "question", "answer",
                            "질문", "답변", "text", "role", "content", "from", "value"])


@settings(max_examples=200, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(st.lists(st.dictionaries(row_keys, json_values, max_size=4), min_size=1, max_size=6))
def test_random_rows_end_in_a_message_or_examples(rows):
    from core.data.converters import to_examples
    from core.data.formats import detect_format
    from core.errors import DataError
    config = RunConfig()
    try:
        examples, report = to_examples(rows, detect_format(rows, config), config)
    except DataError as err:
        assert str(err)
        return
    assert report["kept"] == len(examples)


# --- issue 16 --------------------------------------------------------------------------------
DEMO = ROOT / "core" / "data" / "builtin" / "demo_train.jsonl"


def _cli(*args: str, env: dict | None = None, timeout: int = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, capture_output=True, text=True,
                          timeout=timeout, env={**os.environ, **(env or {})})


# --- hostile data -----------------------------------------------------------------------------------
def test_a_deeply_nested_file_is_refused_and_the_process_survives(tmp_path):
    deep = tmp_path / "deep.jsonl"
    deep.write_text('{"messages": ' + "[" * 20_000 + "]" * 20_000 + "}\n")  # 40 KB
    with pytest.raises(DataError, match="nests more than 64 levels deep .TUNELAB_DATA_MAX_DEPTH"):
        load_rows(cfg(deep))
    done = _cli("train", "--config", "presets/cpu-demo.yaml", "--set", f"dataset={deep}")
    assert done.returncode == 2, done.stderr[-1500:]  # not 139 (the segfault of pyarrow's reader)
    refusals = [line for line in done.stdout.splitlines() if "nests more than" in line]
    assert refusals and "Traceback" not in done.stderr
    # the same file as one JSON document, and nested inside a CSV cell
    document = tmp_path / "deep.json"
    document.write_text("[" + deep.read_text().strip() + "]")
    with pytest.raises(DataError, match="nests more than"):
        load_rows(cfg(document))


def test_a_million_row_parquet_is_refused_from_its_footer_within_a_memory_bound(tmp_path, monkeypatch):
    import pyarrow as pa
    import pyarrow.parquet as pq
    column = pa.DictionaryArray.from_arrays(pa.array([0, 1] * 500_000, type=pa.int32()), pa.array(["hi?", "yo."]))
    path = tmp_path / "million.parquet"
    pq.write_table(pa.table({"question": column, "answer": column}), path)
    size_kb = path.stat().st_size / 1024
    import psutil
    load_rows(cfg("qa.parquet"))  # imports and caches first: only the big file's cost is measured below
    rss = psutil.Process().memory_info().rss
    tracemalloc.start()
    with pytest.raises(DataError, match=r"1,000,000 rows; the limit is 500,000 \(TUNELAB_DATA_MAX_ROWS"):
        load_rows(cfg(path))
    refused_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.reset_peak()
    rows = load_rows(cfg(path, dataset_split="train[:1000]"))  # a slice below the limit is read
    slice_peak = tracemalloc.get_traced_memory()[1]
    tracemalloc.stop()
    grown = (psutil.Process().memory_info().rss - rss) / 2**20
    assert len(rows) == 1000 and rows[0] == {"question": "hi?", "answer": "hi?"}
    print(f"\nmillion-row parquet ({size_kb:.0f} KB): refused with a peak of {refused_peak / 2**20:.2f} MB "
          f"of Python memory; a 1,000-row slice {slice_peak / 2**20:.2f} MB; process grew {grown:.0f} MB in all")
    assert refused_peak < 20 * 2**20 and slice_peak < 60 * 2**20
    monkeypatch.setenv("TUNELAB_DATA_MAX_ROWS", "999")
    with pytest.raises(DataError, match="the limit is 999"):
        load_rows(cfg(path, dataset_split="train[:1000]"))


def test_a_row_of_40000_turns_is_dropped_fast(tmp_path, tokenizer):
    from core.data.preflight import run_preflight
    turns = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"t{i}"} for i in range(40_000)]
    normal = [{"messages": [{"role": "user", "content": f"q{i}?"}, {"role": "assistant", "content": f"a{i}."}]}
              for i in range(3)]
    path = write_jsonl(tmp_path / "long.jsonl", [{"messages": turns}] + normal)
    started = time.perf_counter()
    examples, _, report = load_examples(cfg(path))
    report = run_preflight(cfg(path), tokenizer)
    elapsed = time.perf_counter() - started
    assert len(examples) == 3 and report["ok"]
    assert {getattr(why, "key", "") for why in report["dropped"]} == {"data.drop.too_many_turns"}
    assert elapsed < 5, f"{elapsed:.1f} s"


def test_a_huge_jsonl_line_is_refused_with_the_setting_that_changes_it(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "big.jsonl", [{"question": "q?", "answer": "x" * 40_000}])
    monkeypatch.setenv("TUNELAB_DATA_MAX_ROW_KB", "16")
    with pytest.raises(DataError, match=r"Row 1 of big.jsonl is 39 KB; the limit per row is 16 KB \(TUNELAB_DATA_MAX_ROW_KB"):
        load_rows(cfg(path))
    monkeypatch.setenv("TUNELAB_DATA_MAX_FILE_MB", "1")
    path.write_text(json.dumps({"question": "q", "answer": "y" * 100}) + "\n" + " " * (2 << 20))
    with pytest.raises(DataError, match="the limit is 1 MB .TUNELAB_DATA_MAX_FILE_MB"):
        load_rows(cfg(path))


def test_one_data_check_reads_the_file_once(tmp_path, monkeypatch):
    from core.data import readers
    path = write_jsonl(tmp_path / "qa.jsonl", [{"question": f"q{i}?", "answer": f"a{i}."} for i in range(20)])
    reads = []
    real = readers.load_file
    monkeypatch.setattr(readers, "load_file", lambda *a: reads.append(a) or real(*a))
    load_examples(cfg(path))
    load_examples(cfg(path))  # the Data tab's preview, then its pre-flight
    assert len(reads) == 1
    path.write_text(path.read_text() + json.dumps({"question": "new?", "answer": "row."}) + "\n")
    assert len(load_rows(cfg(path))) == 21 and len(reads) == 2  # a changed file is read again


# --- bad numbers ---------------------------------------------------------------------------------------
@pytest.mark.parametrize("setting,name", [("max_grad_norm=.nan", "max_grad_norm"), ("weight_decay=.nan", "weight_decay"),
                                          ("epochs=.inf", "epochs"), ("max_steps=1e400", "max_steps"),
                                          ("learning_rate=nan", "learning_rate"), ("batch_size=1e12", "batch_size")])
def test_bad_numbers_exit_2_before_any_model_loads(setting, name):
    started = time.perf_counter()
    done = _cli("train", "--config", "presets/cpu-demo.yaml", "--set", setting)
    assert done.returncode == 2 and f"'{name}'" in done.stderr and "Traceback" not in done.stderr
    assert len(done.stderr.strip().splitlines()) == 1 and time.perf_counter() - started < 20


def test_set_values_are_typed_by_their_field():
    config = RunConfig().with_overrides(["system_prompt=Answer: briefly", "user_marker=### Human:", "prompt_column=yes",
                                         "bot_marker=", "max_steps=3", "packing=no", "learning_rate=1e-4",
                                         "probe_prompts=[Hello, Who are you]"])
    assert config.system_prompt == "Answer: briefly" and config.user_marker == "### Human:"
    assert config.prompt_column == "yes" and config.bot_marker == ""
    assert config.max_steps == 3 and config.packing is False and config.learning_rate == 1e-4
    assert config.probe_prompts == ["Hello", "Who are you"]
    assert [p.params["name"] for p in RunConfig(max_grad_norm=math.nan, epochs=math.inf).validate()] == \
        ["epochs", "max_grad_norm"]


# --- how a run ends ------------------------------------------------------------------------------------
def _wait_for(condition, timeout=120):
    wait_for(condition, timeout)


def test_a_nan_loss_stops_the_run_and_keeps_the_last_good_weights(tiny_config, monkeypatch):
    import torch
    from safetensors.torch import load_file

    from core.train import trainer as trainer_module

    real, calls = trainer_module.loss_sum, []

    def poisoned(model, inputs):
        loss, n = real(model, inputs)
        calls.append(1)
        return (loss * float("nan"), n) if len(calls) > 5 else (loss, n)  # steps 1-5 fine, step 6 NaN

    monkeypatch.setattr(trainer_module, "loss_sum", poisoned)
    job = TrainingJob(tiny_config.replace(max_steps=20, save_steps=2, eval_steps=1000, grad_accum=1,
                                          validation_share=0)).start()
    assert job.join(120) == "failed"
    summary = summarize(job.dir)
    assert summary.status == "failed" and summary.message.startswith("The loss became NaN at step 6;")
    assert summary.message.key == "train.loss_nan" and "learning rate" in summary.message and summary.step == 5
    weights = load_file(str(job.dir / "adapter" / "adapter_model.safetensors"))
    assert weights and all(bool(torch.isfinite(w).all()) for w in weights.values())
    assert (job.dir / "checkpoints" / "step-000004" / "state.json").exists()


def test_stop_before_the_first_checkpoint_then_resume_is_one_curve(tiny_config):

    config = tiny_config.replace(max_steps=24, save_steps=1000, eval_steps=1000, validation_share=0)
    job = TrainingJob(config).start()
    _wait_for(lambda: summarize(job.dir, True).step >= 3)
    job.stop()
    assert job.join(60) == "stopped"
    stopped = summarize(job.dir).step
    assert (job.dir / "checkpoints" / f"step-{stopped:06d}" / "state.json").exists()  # written at Stop
    resumed = TrainingJob(None, resume=job.name).start()
    assert resumed.join(120) == "finished"
    events = read_events(job.dir / "events.jsonl")
    assert [e["type"] for e in events].count("started") == 1
    assert next(e for e in events if e["type"] == "resumed")["step"] == stopped
    steps = [e["step"] for e in events if e["type"] == "log"]
    assert steps == list(range(1, 25))  # no step trained twice, none lost
    final = summarize(job.dir)
    assert final.status == "finished" and [e["step"] for e in final.logs] == steps


def test_stop_before_any_step_then_resume_writes_no_second_start(tiny_config):

    job = TrainingJob(tiny_config.replace(max_steps=3, validation_share=0))
    job._stop.set()  # stopped before the first micro-batch
    assert job.start().join(60) == "stopped"
    assert TrainingJob(None, resume=job.name).start().join(120) == "finished"
    types = [e["type"] for e in read_events(job.dir / "events.jsonl")]
    assert types.count("started") == 1 and types.count("resumed") == 1
    assert [e["step"] for e in summarize(job.dir).logs] == [1, 2, 3]


def test_a_kill_during_the_final_save_leaves_an_adapter(tmp_path, monkeypatch):
    from core import models, runs
    run = tmp_path / "run"
    run.mkdir()

    class Saver:  # writes what save_pretrained would, with a marker of which save it was
        def __init__(self, tag):
            self.tag = tag

        def save_pretrained(self, folder):
            Path(folder).mkdir(parents=True, exist_ok=True)
            (Path(folder) / "adapter_config.json").write_text(json.dumps({"save": self.tag}))

    models.save_folder(Saver("first"), Saver("first"), run / "adapter")
    real, calls = os.replace, []

    def killed_between_renames(src, dst):
        calls.append(dst)
        if len(calls) == 2:  # adapter -> adapter.prev done; the new copy is not in place yet
            raise KeyboardInterrupt("killed")
        return real(src, dst)

    monkeypatch.setattr(runs.os, "replace", killed_between_renames)
    with pytest.raises(KeyboardInterrupt):
        models.save_folder(Saver("second"), Saver("second"), run / "adapter")
    monkeypatch.setattr(runs.os, "replace", real)
    assert not (run / "adapter").exists()
    assert summarize(run).has_adapter  # the reader puts the previous copy back
    assert json.loads((run / "adapter" / "adapter_config.json").read_text()) == {"save": "first"}
    models.save_folder(Saver("third"), Saver("third"), run / "adapter")
    assert json.loads((run / "adapter" / "adapter_config.json").read_text()) == {"save": "third"}
    assert not (run / "adapter.prev").exists() and not (run / "adapter.tmp").exists()


def test_a_corrupt_newest_checkpoint_is_skipped_with_a_note(tiny_config):

    job = TrainingJob(tiny_config.replace(max_steps=6, save_steps=2, eval_steps=1000, validation_share=0)).start()
    assert job.join(120) == "finished"
    folders = sorted((job.dir / "checkpoints").glob("step-*"))
    assert [p.name for p in folders] == ["step-000002", "step-000004"]
    (folders[-1] / "training_state.pt").write_bytes(b"torn write")
    assert TrainingJob(None, resume=job.name).start().join(120) == "finished"
    events = read_events(job.dir / "events.jsonl")
    resumed = [e for e in events if e["type"] == "resumed"][-1]
    assert resumed["step"] == 2 and resumed["checkpoint"] == "step-000002"
    assert any(e.get("key") == "job.checkpoint_skipped" and e["params"]["name"] == "step-000004" for e in events)


def test_checkpoint_folders_sort_by_number(tmp_path):
    from core.train.checkpoints import checkpoint_folders, resumable_checkpoints
    for step in (999_999, 1_000_000, 2, 10):
        folder = tmp_path / "checkpoints" / f"step-{step:06d}"
        folder.mkdir(parents=True)
        (folder / "state.json").write_text("{}")
    (tmp_path / "checkpoints" / ".tmp-step-000011").mkdir()
    assert [p.name for p in checkpoint_folders(tmp_path)] == ["step-000002", "step-000010", "step-999999",
                                                             "step-1000000"]
    assert resumable_checkpoints(tmp_path)[0].name == "step-1000000"


def test_resume_refuses_when_the_data_changed(tiny_config, tmp_path):

    data = tmp_path / "data.jsonl"
    data.write_bytes(DEMO.read_bytes())
    config = tiny_config.replace(dataset=str(data), max_steps=40, save_steps=2, eval_steps=1000, validation_share=0)
    job = TrainingJob(config).start()
    _wait_for(lambda: summarize(job.dir, True).step >= 2)
    job.stop()
    assert job.join(60) == "stopped"
    data.write_text("".join(DEMO.read_text(encoding="utf-8").splitlines(keepends=True)[:-5]), encoding="utf-8")
    resumed = TrainingJob(None, resume=job.name).start()
    assert resumed.join(120) == "stopped"
    summary = summarize(job.dir)
    assert summary.message.key == "job.data_changed" and summary.resumable  # put the data back and Resume
    assert "data of this run changed" in summary.message


def test_a_full_disk_during_the_final_save_fails_the_run_and_keeps_the_checkpoint(tiny_config, monkeypatch):
    from core.train import job as job_module
    writes = []
    real_write = EventLog._write

    def nearly_full(self, line):
        # the final save fails for space, and so does the first write of the failure: the reserve is freed
        if '"failed"' in line and not writes:
            writes.append(line)
            raise OSError(errno.ENOSPC, "No space left on device")
        return real_write(self, line)

    def disk_full(*args, **kwargs):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(EventLog, "_write", nearly_full)
    monkeypatch.setattr(job_module, "save_folder", disk_full)
    job = job_module.TrainingJob(tiny_config.replace(max_steps=4, save_steps=2, validation_share=0)).start()
    assert job.join(120) == "failed"
    summary = summarize(job.dir)
    assert summary.status == "failed" and summary.message.key == "job.disk_full"
    assert "disk is full" in summary.message and writes and not (job.dir / ".space-reserve").exists()
    assert (job.dir / "checkpoints" / "step-000002" / "state.json").exists()


# --- the live view ---------------------------------------------------------------------------------
def test_a_tick_of_the_live_view_at_100k_steps_costs_little(tmp_path):
    from ui import live
    run = tmp_path / "long-run"
    run.mkdir()
    lines = [json.dumps({"type": "started", "time": 1.0, "model": "m", "method": "lora", "total_steps": 200_000})]
    lines += [json.dumps({"type": "log", "time": 1.0 + i, "step": i, "total_steps": 200_000, "loss": 2 / (1 + i / 1e4),
                          "lr": 1e-4, "tokens_per_sec": 900.0, "memory_mb": 900, "elapsed": i, "eta": 1.0})
              for i in range(1, 100_001)]
    lines += ['{"type": "log", "time": 5}', '{"type": "log", "step": "x", "time": 5}', '{"type": "eval"}', "{torn"]
    (run / "events.jsonl").write_text("\n".join(lines) + "\n")
    size_mb = (run / "events.jsonl").stat().st_size / 2**20
    first = time.process_time()
    summarize(run, active=True)  # the first tick of a page: reads the log once
    first = time.process_time() - first
    log = EventLog(run / "events.jsonl")
    costs = []
    for step in range(100_001, 100_011):
        log.append("log", step=step, total_steps=200_000, loss=0.2, lr=1e-4)
        started = time.process_time()
        summary = summarize(run, active=True)
        frame = live.loss_frame(summary)
        live.status_html(summary), live.metrics_html(summary), live.samples_html(summary)
        costs.append(time.process_time() - started)
    tick = sorted(costs)[len(costs) // 2]
    print(f"\nlive view, {size_mb:.0f} MB event log at 100,010 steps: first read {first * 1000:.0f} ms CPU, "
          f"then {tick * 1000:.1f} ms CPU per tick (median of 10)")
    assert summary.step == 100_010 and len(summary.logs) == 100_010  # malformed lines skipped, not fatal
    assert len(frame) <= live.MAX_POINTS + 2 and frame["loss"].max() == pytest.approx(2 / 1.0001, rel=1e-3)
    assert tick < 0.05  # ~5 ms here on 2 shared cores; re-reading the whole log took ~0.9 s


def test_downsampling_keeps_the_extremes():
    from ui.live import downsample
    points = [(i, 1.0) for i in range(10_000)]
    points[5_000] = (5_000, 50.0)  # a spike
    points[7_000] = (7_000, 0.0)   # a collapse
    assert len(downsample([(i, math.nan if i % 3 else 1.0) for i in range(5000)], limit=100)) <= 102
    kept = downsample(points, limit=200)
    assert len(kept) <= 202 and (5_000, 50.0) in kept and (7_000, 0.0) in kept
    assert kept[0] == (0, 1.0) and kept[-1] == (9_999, 1.0) and kept == sorted(kept)


def test_a_collapse_stops_the_run_only_when_asked(tiny_config, monkeypatch):
    from core.train.checkpoints import LossWatch
    monkeypatch.setattr(LossWatch, "check", lambda self, step, loss, log: step == 3)  # "collapsed" at step 3
    config = tiny_config.replace(max_steps=8, save_steps=1000, eval_steps=1000, validation_share=0)
    assert TrainingJob(config).start().join(120) == "finished"  # a warning only, by default
    job = TrainingJob(config.replace(stop_on_collapse=True)).start()
    assert job.join(120) == "stopped"
    summary = summarize(job.dir)
    assert summary.step == 3 and summary.resumable and (job.dir / "checkpoints" / "step-000003").exists()
    assert any(getattr(n, "key", "") == "train.stopped_on_collapse" for n in summary.notices)
