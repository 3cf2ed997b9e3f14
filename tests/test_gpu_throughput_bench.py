"""bench/gpu_throughput.py on a CPU: its arguments, both set-ups (valid for TuneLab, trl and bitsandbytes),
the report's arithmetic, and a plain exit without CUDA. The measurement itself needs a GPU."""
import dataclasses
import json

import pytest
import torch

from bench import gpu_throughput as bench
from core.config import RunConfig


def test_arguments_and_their_limits():
    args = bench.parse_args([])
    assert (args.model, args.steps, args.batch, args.length) == ("llama-7b", 20, 4, 1024)
    with pytest.raises(SystemExit):
        bench.parse_args(["--steps", "1"])


def test_both_sides_get_the_same_run():
    args = bench.parse_args(["--batch", "2", "--length", "512", "--steps", "5"])
    specs = bench.plan(args, "/models/llama-7b", "/tmp/examples.json")
    ours, theirs = specs["TuneLab"], specs["trl SFTTrainer (expert)"]
    config = RunConfig.from_dict(ours["config"])
    assert not config.validate() and config.effective_quantization == "4bit"
    assert ours["data"] == theirs["data"]
    from trl import SFTConfig
    names = {f.name for f in dataclasses.fields(SFTConfig)}
    assert set(theirs["trl"]) <= names  # every expert setting is a real SFTConfig field
    trl = theirs["trl"]
    assert (trl["per_device_train_batch_size"], trl["max_length"], trl["max_steps"]) == \
        (config.batch_size, config.max_length, config.max_steps)
    assert trl["bf16"] and trl["padding_free"] and trl["gradient_checkpointing"] and config.gradient_checkpointing
    assert trl["optim"] == config.optimizer and trl["learning_rate"] == config.learning_rate
    assert (bench.LORA["r"], bench.LORA["lora_alpha"]) == (config.lora_r, config.lora_alpha)
    from transformers import BitsAndBytesConfig
    q = BitsAndBytesConfig(**{**bench.quantization_settings(), "bnb_4bit_compute_dtype": torch.bfloat16})
    assert q.load_in_4bit and q.bnb_4bit_quant_type == config.quant_type


def test_report_says_whether_the_target_is_met():
    args = bench.parse_args([])
    table = bench.report({"TuneLab": {"tokens_per_sec": 3000.0, "peak_bytes": 9e9, "device": "H100"},
                          "trl": {"tokens_per_sec": 1500.0, "peak_bytes": 10e9}}, args)
    assert "2.00x" in table and "meets" in table and "H100" in table


def test_dry_run_and_no_gpu(capsys):
    assert bench.main(["--dry-run", "--steps", "3"]) == 0
    printed = json.loads(capsys.readouterr().out)
    assert printed["TuneLab"]["config"]["max_steps"] == 3
    if not torch.cuda.is_available():
        assert bench.main([]) == 0
        assert "no CUDA device" in capsys.readouterr().out
