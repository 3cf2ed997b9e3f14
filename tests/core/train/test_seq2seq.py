"""Encoder-decoder models (T5, BART) train like decoders: loaded with the seq2seq class, LoRA with the
SEQ_2_SEQ_LM task type on their own layers, (source -> answer) data, QLoRA; the planner counts them.

Tiny random models with the embedded tokenizer (no T5 tokenizer can be downloaded here), built once."""
import json
import math
import os
import subprocess
import sys

import pytest
import torch
from peft import load_peft_weights
from transformers import AutoModelForSeq2SeqLM, BartConfig, T5Config

from core.data.pipeline import encode_examples, token_stats
from core.data.tokenize import IGNORE, seq2seq_source
from core.events import read_events
from core.models import config_is_seq2seq, is_seq2seq, load_base, load_tokenizer, prepare_for_training
from core.plan.memory import _lora_targets, estimate
from core.plan.model_shape import shape_of
from core.plan.targets import target_problems
from core.train import checkpoints
from core.train.batches import collate, trained_count
from core.train.job import TrainingJob
from tests.paths import ROOT

# 64 wide, not 32: bitsandbytes' CPU 4-bit kernel needs each layer's input to hold a 64-weight block
T5 = dict(d_model=64, d_kv=16, d_ff=128, num_layers=2, num_heads=4)
BART = dict(d_model=32, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4, decoder_attention_heads=4,
            encoder_ffn_dim=64, decoder_ffn_dim=64, max_position_embeddings=64)
CHATS = [[{"role": "user", "content": f"What is {a} plus {b}?"}, {"role": "assistant", "content": f"{a + b}."},
          {"role": "user", "content": "And doubled?"}, {"role": "assistant", "content": f"{2 * (a + b)}."}]
         for a in range(4) for b in range(3)]


def _tiny(kind, sizes: dict, tokenizer):
    ids = dict(pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id,
               bos_token_id=tokenizer.bos_token_id, decoder_start_token_id=tokenizer.pad_token_id)
    return kind(vocab_size=len(tokenizer), **ids, **sizes)


@pytest.fixture(scope="module", params=["t5", "bart"])
def family(request, tmp_path_factory, tokenizer):
    """(name, folder, config) of a tiny random encoder-decoder saved with the embedded tokenizer."""
    kind, sizes = {"t5": (T5Config, T5), "bart": (BartConfig, BART)}[request.param]
    config = _tiny(kind, sizes, tokenizer)
    folder = tmp_path_factory.mktemp(request.param)
    torch.manual_seed(0)
    AutoModelForSeq2SeqLM.from_config(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    return request.param, folder, config


@pytest.fixture(scope="module")
def chats(tmp_path_factory) -> str:
    path = tmp_path_factory.mktemp("data") / "chats.jsonl"
    path.write_text("".join(json.dumps({"messages": m}) + "\n" for m in CHATS))
    return str(path)


def _run(tiny_config, folder, chats, **changes):
    settings = dict(model=str(folder), dataset=chats, max_steps=2, max_length=32, eval_steps=0, save_steps=0,
                    validation_share=0.2, batch_size=4)
    return tiny_config.replace(**{**settings, **changes})


def test_data_map_to_one_source_answer_pair_per_reply(tokenizer, tiny_config):
    items, dropped = encode_examples([{"messages": CHATS[5]}, {"text": "no question here"}], tokenizer,
                                     tiny_config.replace(max_length=64), seq2seq=True)
    assert len(items) == 2 and sum(dropped.values()) == 1  # two replies; plain text has no pair: dropped, counted
    first, second = items
    assert tokenizer.decode(first["labels"]) == "3." + tokenizer.eos_token  # the answer + EOS, nothing else
    assert IGNORE not in first["labels"] and trained_count(first) == len(first["labels"])
    # the second reply's source is the whole history: the first question, its answer, the follow-up
    source = tokenizer.decode(second["input_ids"])
    assert "What is 1 plus 2?" in source and "3." in source and source.rstrip().endswith("assistant")
    assert source == seq2seq_source(tokenizer, CHATS[5][:3])  # chat renders its prompt through the same function
    batch = collate(items, tiny_config, "cpu")  # padded (never packed): masked sources, -100 padded targets
    assert batch["input_ids"].shape[0] == 2 and "position_ids" not in batch
    assert batch["attention_mask"][0].sum() == len(first["input_ids"])
    assert (batch["labels"][0, len(first["labels"]):] == IGNORE).all()
    stats = token_stats(items)
    assert stats["trained_tokens"] == sum(len(e["labels"]) for e in items)
    assert stats["source_length_max"] == len(second["input_ids"])


def test_a_long_source_keeps_its_end_the_question(tokenizer, tiny_config):
    chat = [{"role": "user", "content": "word " * 200 + "Final question?"}, {"role": "assistant", "content": "Yes."}]
    (item,), _ = encode_examples([{"messages": chat}], tokenizer, tiny_config.replace(max_length=24), seq2seq=True)
    assert len(item["input_ids"]) == 24 and item["truncated"]
    assert "Final question?" in tokenizer.decode(item["input_ids"])


def test_loads_with_the_seq2seq_class_and_lora_targets_its_layers(family, tiny_config):
    name, folder, _ = family
    config = tiny_config.replace(model=str(folder))
    assert config_is_seq2seq(config)
    model = prepare_for_training(load_base(config), load_tokenizer(config), config)
    assert is_seq2seq(model) and type(model).__name__ == "PeftModelForSeq2SeqLM"
    wrapped = {n.rsplit(".", 1)[-1] for n, m in model.named_modules() if hasattr(m, "lora_A")}
    expected = {"t5": {"q", "k", "v", "o", "wi", "wo"},
                "bart": {"q_proj", "k_proj", "v_proj", "out_proj", "fc1", "fc2"}}[name]
    assert wrapped == expected  # all-linear: every linear layer but the head


@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_trains_two_steps_saves_the_adapter_and_the_planner_counts_it(method, family, chats, tiny_config):
    name, folder, model_config = family
    if method == "qlora" and name != "t5":
        pytest.skip("QLoRA is the same code path for every family: T5 covers it")
    run = _run(tiny_config, folder, chats, method=method, probe_prompts=["What is 2 plus 2?"] if name == "t5" else [],
               save_steps=1)
    job = TrainingJob(run).start()
    assert job.join(300) == "finished"
    events = read_events(job.dir / "events.jsonl")
    losses = [e["loss"] for e in events if e["type"] == "log"]
    assert losses and all(math.isfinite(x) for x in losses)
    assert math.isfinite(next(e for e in events if e["type"] == "eval")["val_loss"])
    assert any(e.get("key") == "seq2seq.no_packing" for e in events)  # packing asked for, switched off, said
    adapter = json.loads((job.dir / "adapter" / "adapter_config.json").read_text())
    assert adapter["task_type"] == "SEQ_2_SEQ_LM" and (job.dir / "adapter" / "adapter_model.safetensors").exists()
    if name == "t5" and method == "lora":
        assert [e for e in events if e["type"] == "sample"]  # probe answers are generated for seq2seq too
        _resumes_from_its_checkpoint(run, job.dir)
    started = next(e for e in events if e["type"] == "started")
    planned = run.lora_r * sum(a + b for a, b in _lora_targets(run, shape_of(model_config)))
    assert started["trainable_params"] == planned
    if method == "lora":
        assert shape_of(model_config).total_params == started["total_params"] - planned


def _resumes_from_its_checkpoint(run, run_dir):
    """The step-1 checkpoint loads back into a fresh seq2seq LoRA model: the same adapter weights, step 1."""
    (folder,) = checkpoints.resumable_checkpoints(run_dir)
    model = prepare_for_training(load_base(run), load_tokenizer(run), run)
    step, state = checkpoints.load_checkpoint(folder, model, run)
    saved = load_peft_weights(str(folder / "adapter"))
    loaded = {k: v for k, v in model.state_dict().items() if "lora_" in k}
    assert step == 1 and "optimizer" in state and len(saved) == len(loaded)
    assert all(torch.equal(v, loaded[k.replace(".weight", ".default.weight")]) for k, v in saved.items())


def test_the_planner_sizes_an_encoder_decoder_from_its_real_model(tokenizer, tiny_config):
    config = _tiny(T5Config, dict(T5, feed_forward_proj="gated-gelu", tie_word_embeddings=False), tokenizer)
    real = AutoModelForSeq2SeqLM.from_config(config)
    shape = shape_of(config)
    assert shape.seq2seq and shape.decoder_layers == 2 and shape.intermediate == 128
    assert shape.total_params == sum(p.numel() for p in real.parameters())
    stats = lambda source, target: {"length_max": max(source, target), "source_length_max": source,
                                    "target_length_max": target, "trained_share": 0.3}
    short = estimate(tiny_config, model_config=config, data_stats=stats(32, 16), device="cpu")
    long_source = estimate(tiny_config.replace(max_length=512), model_config=config, data_stats=stats(512, 16),
                           device="cpu")
    long_target = estimate(tiny_config.replace(max_length=512), model_config=config, data_stats=stats(32, 512),
                           device="cpu")
    assert 0 < short.breakdown["activations"] < long_source.breakdown["activations"]
    # the logits are the target's only: a long source does not grow them, a long answer does
    assert short.breakdown["logits"] == long_source.breakdown["logits"] < long_target.breakdown["logits"]


def test_a_target_t5_lacks_is_refused_naming_its_real_layers(tokenizer, tiny_config):
    config = _tiny(T5Config, T5, tokenizer)
    assert target_problems(tiny_config.replace(target_modules="q,v"), config) == []
    problem = str(target_problems(tiny_config.replace(target_modules="q_proj,v"), config)[0])
    assert "q_proj" in problem and all(name in problem for name in ("q", "k", "wi", "wo"))


@pytest.mark.slow  # two app.py processes
def test_the_cli_trains_a_t5_folder_and_refuses_a_target_it_lacks_before_loading(family, chats, runs_root):
    name, folder, _ = family
    if name != "t5":
        pytest.skip("one CLI round is enough: the family only changes what core loads")
    cli = lambda *sets: subprocess.run(
        [sys.executable, "app.py", "train", "--config", "presets/cpu-demo.yaml", "--set", f"model={folder}",
         f"dataset={chats}", "max_steps=2", "max_length=32", "eval_steps=0", "save_steps=0", "probe_prompts=[]",
         *sets], cwd=ROOT, env={**os.environ, "TUNELAB_RUNS_DIR": str(runs_root)}, capture_output=True, text=True,
        timeout=600)
    done = cli()
    assert done.returncode == 0, done.stderr[-3000:]
    refused = cli("target_modules=q_proj,v")
    assert refused.returncode == 2 and "Traceback" not in refused.stderr + refused.stdout
    assert "q_proj" in refused.stderr + refused.stdout and "wi" in refused.stderr + refused.stdout
