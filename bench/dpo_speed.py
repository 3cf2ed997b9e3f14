"""DPO speed on this machine: trl's DPOTrainer against TuneLab's loop with the DPO loss, same pairs, same steps.

    python -m bench.dpo_speed [--steps 8] [--rounds 2] [--batch 4]

Both train a fresh LoRA adapter (r 16, all linear layers, no dropout) on the embedded model in
fp32 on the built-in preference pairs (chat template chatml, max length 256), with the
reference log-probs computed once before training (trl: `precompute_ref_log_probs=True`, the
adapter disabled = the base, which is what our reference is for a fresh adapter too) and the
same thread count. Each trial is its own process (peak memory is the process's), and the
engines alternate, so a change in the machine's load hits both. Each trains steps x batch pairs once
(file order), so the reference pass covers the same pairs for both. Tokens/s counts the pairs' real
(unpadded) prompt+answer tokens of both sides, the same number for both engines.

trl is configured as it is meant to be used on a CPU: fp32 (`bf16=False`, `use_cpu=True`), no
gradient checkpointing, no dataloader workers, no saving or evaluation; its `padding_free`
is disabled in trl 1.16 (it says so and falls back to padding), so chosen and rejected are
padded to a common length and every position's log-probs are computed.
"""
from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

LORA = {"lora_r": 16, "lora_alpha": 32, "lora_dropout": 0.0}


def _config(steps: int, batch: int):
    from core.config import RunConfig

    return RunConfig(objective="dpo", dataset="builtin:demo-preferences", chat_template="chatml", max_length=256,
                     validation_share=0.0, max_steps=steps, batch_size=batch, learning_rate=5e-4, warmup_ratio=0.0,
                     save_steps=10**6, logging_steps=1, shuffle=False, **LORA)


def _real_tokens(items: list[dict], steps: int, batch: int) -> int:
    return sum(len(p["input_ids"]) for p in (items * (steps * batch // max(1, len(items)) + 1))[: steps * batch])


def run_ours(steps: int, batch: int) -> dict:
    from core import hardware
    from core.data.tokenize import apply_template_choice
    from core.events import EventLog
    from core.models import load_base, load_tokenizer, prepare_for_training
    from core.train.dpo import PreferenceTrainer
    from core.train.preference import prepare

    config = _config(steps, batch)
    hardware.set_cpu_threads()
    tokenizer = load_tokenizer(config)
    apply_template_choice(tokenizer, config.chat_template)
    data = prepare(config, tokenizer)
    data.train = data.train[: steps * batch]  # the pairs trained on, once each: the reference pass is over these
    model = prepare_for_training(load_base(config), tokenizer, config)
    folder = Path(tempfile.mkdtemp(prefix="dpo-speed-"))
    started = time.time()
    trainer = PreferenceTrainer(model, tokenizer, data.train, [], config, EventLog(folder / "events.jsonl"), folder,
                                threading.Event())
    ref_seconds = time.time() - started
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    return {"seconds": seconds, "ref_seconds": ref_seconds, "tokens": _real_tokens(data.train, steps, batch),
            "threads": trainer.threads}


def run_trl(steps: int, batch: int) -> dict:
    import datasets
    import torch
    from peft import LoraConfig
    from transformers import AutoModelForCausalLM
    from trl import DPOConfig, DPOTrainer

    from core import hardware
    from core.data.sources import BUILTINS
    from core.data.tokenize import apply_template_choice
    from core.models import find_target_modules, load_tokenizer, resolve
    from core.train.preference import prepare

    config = _config(steps, batch)
    hardware.tune_cpu_threads()  # before its reference pass, as ours does
    tokenizer = load_tokenizer(config)
    apply_template_choice(tokenizer, config.chat_template)
    rows = [json.loads(line) for line in BUILTINS[config.dataset].read_text(encoding="utf-8").splitlines()]
    rows = rows[: steps * batch]  # the same pairs as ours (file order, no shuffle)
    model = AutoModelForCausalLM.from_pretrained(resolve(config.model), dtype=torch.float32)
    lora = LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=find_target_modules(model),
                      task_type="CAUSAL_LM")
    args = DPOConfig(output_dir=tempfile.mkdtemp(prefix="dpo-trl-"), per_device_train_batch_size=batch,
                     gradient_accumulation_steps=1, max_steps=steps, learning_rate=config.learning_rate,
                     lr_scheduler_type="cosine", warmup_steps=0, beta=config.dpo_beta, max_length=config.max_length,
                     precompute_ref_log_probs=True, bf16=False, fp16=False, use_cpu=True, gradient_checkpointing=False,
                     dataloader_num_workers=0, save_strategy="no", eval_strategy="no", report_to="none",
                     logging_steps=1, seed=config.seed, disable_dropout=True)
    started = time.time()
    trainer = DPOTrainer(model=model, args=args, train_dataset=datasets.Dataset.from_list(rows),
                         processing_class=tokenizer, peft_config=lora)
    ref_seconds = time.time() - started
    threads = hardware.tune_cpu_threads()  # what our trainer does too: the thread count fastest under this load
    started = time.time()
    trainer.train()
    seconds = time.time() - started
    ours = prepare(config, tokenizer).train[: steps * batch]  # the same pairs, tokenized our way: the common token count
    return {"seconds": seconds, "ref_seconds": ref_seconds, "tokens": _real_tokens(ours, steps, batch),
            "threads": threads}


def _child(engine: str, steps: int, batch: int) -> None:
    result = (run_ours if engine == "ours" else run_trl)(steps, batch)
    result["peak_mb"] = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
    print("RESULT " + json.dumps(result), flush=True)


def _trial(engine: str, steps: int, batch: int) -> dict:
    out = subprocess.run([sys.executable, "-m", "bench.dpo_speed", "--child", engine, "--steps", str(steps),
                          "--batch", str(batch)], capture_output=True, text=True, env={**os.environ})
    line = next((x for x in out.stdout.splitlines() if x.startswith("RESULT ")), None)
    if line is None:
        sys.exit(f"{engine} failed:\n{out.stderr[-3000:]}")
    return json.loads(line[len("RESULT "):])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8)
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--batch", type=int, default=4)
    parser.add_argument("--child", choices=("ours", "trl"), help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        return _child(args.child, args.steps, args.batch)
    from core import hardware

    results: dict[str, list[dict]] = {"ours": [], "trl": []}
    for round_ in range(args.rounds):
        for engine in (("ours", "trl") if round_ % 2 == 0 else ("trl", "ours")):
            results[engine].append(_trial(engine, args.steps, args.batch))
            r = results[engine][-1]
            print(f"round {round_ + 1} {engine}: {args.steps / r['seconds']:.3f} steps/s, "
                  f"{r['tokens'] / r['seconds']:.0f} tokens/s, reference {r['ref_seconds']:.1f} s, "
                  f"peak {r['peak_mb']:.0f} MB, {r['threads']} threads", flush=True)
    print(f"\n## DPO speed ({hardware.cpu_model_name()}, {os.cpu_count()} logical CPUs; "
          f"{args.steps} steps x batch {args.batch}, {args.rounds} rounds; median)")
    print("| engine | steps/s | tokens/s | reference pass (s) | peak memory (MB) |\n|---|---|---|---|---|")
    for engine, label in (("ours", "TuneLab loop + DPO loss"), ("trl", "trl DPOTrainer")):
        med = lambda f, rs=results[engine]: statistics.median(f(r) for r in rs)
        print(f"| {label} | {med(lambda r: args.steps / r['seconds']):.3f} | "
              f"{med(lambda r: r['tokens'] / r['seconds']):.0f} | {med(lambda r: r['ref_seconds']):.1f} | "
              f"{med(lambda r: r['peak_mb']):.0f} |")


if __name__ == "__main__":
    main()
