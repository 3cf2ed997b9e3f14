"""GPU throughput, 4-bit QLoRA: TuneLab's engine vs trl's SFTTrainer set up as an expert would, in one run.

The model is a random-initialised Llama of Llama-2-7B's shape (bench.common builds it once on the GPU;
nothing is downloaded). Both sides train the same examples with the same LoRA (r 16, alpha 32, dropout
0.05, every linear layer), the same micro-batch, the same 4-bit NF4 base with bf16 compute, gradient
checkpointing and the paged 8-bit AdamW. trl's side is set up as an expert sets it: bf16, packing
without padding (`padding_free`), loss on the answers only, Liger kernels when installed
(`use_liger_kernel`) and the Hub kernels (`use_kernels`) when the `kernels` package is installed.
Each side runs in its own child process; tokens/s counts trained-on-rows tokens after a warm-up step,
peak memory is torch's peak allocation. Target: TuneLab >= 1.5x trl's tokens/s at no more memory.

    .venv/bin/python -m bench.gpu_throughput                 # llama-7b shape, 20 steps each
    .venv/bin/python -m bench.gpu_throughput --model llama-1b --steps 10
    .venv/bin/python -m bench.gpu_throughput --dry-run       # prints the two set-ups, trains nothing

Without CUDA it says so and exits 0 (only --dry-run does anything on a CPU).
"""
from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path

from bench.common import (
    GPU_MODELS,
    fixed_length_examples,
    gb,
    markdown_table,
    run_child,
    update_results,
    write_examples,
)

LORA = dict(r=16, lora_alpha=32, lora_dropout=0.05)
LEARNING_RATE = 2e-4
OPTIMIZER = "paged_adamw_8bit"
TARGET_SPEEDUP = 1.5


def parse_args(argv: list[str] | None = None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="python -m bench.gpu_throughput", description=__doc__,
                                     formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--model", choices=sorted(GPU_MODELS), default="llama-7b", help="the random-init shape")
    parser.add_argument("--steps", type=int, default=20, help="optimizer steps per side (the first is warm-up)")
    parser.add_argument("--batch", type=int, default=4, help="micro-batch (examples), the same on both sides")
    parser.add_argument("--length", type=int, default=1024, help="tokens per example")
    parser.add_argument("--dry-run", action="store_true", help="print both set-ups and exit")
    args = parser.parse_args(argv)
    if args.steps < 2 or args.batch < 1 or args.length < 16:
        parser.error("--steps needs at least 2 (one warm-up), --batch at least 1, --length at least 16")
    return args


def installed(name: str) -> bool:
    import importlib.util  # noqa: PLC0415 - keeps `--help` free of imports
    return importlib.util.find_spec(name) is not None


def engine_config(args: argparse.Namespace, model: str) -> dict:
    """TuneLab's RunConfig fields for the run (validated by the test on any machine)."""
    return dict(model=model, method="qlora", quantization="4bit", quant_type="nf4", double_quant=True,
                compute_dtype="bf16", precision="bf16", lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"],
                lora_dropout=LORA["lora_dropout"], target_modules="all-linear", batch_size=args.batch,
                grad_accum=1, max_length=args.length, gradient_checkpointing=True, optimizer=OPTIMIZER,
                learning_rate=LEARNING_RATE, warmup_ratio=0.0, scheduler="constant", packing=True,
                max_steps=args.steps, eval_steps=10**6, save_steps=10**6, logging_steps=10**6, oom_retry=False)


def trl_settings(args: argparse.Namespace) -> dict:
    """SFTConfig fields as an expert sets them for 4-bit QLoRA on a GPU."""
    return dict(max_steps=args.steps, per_device_train_batch_size=args.batch, gradient_accumulation_steps=1,
                max_length=args.length, packing=True, padding_free=True, completion_only_loss=True,
                bf16=True, fp16=False, gradient_checkpointing=True,
                gradient_checkpointing_kwargs={"use_reentrant": False},
                use_liger_kernel=installed("liger_kernel"), optim=OPTIMIZER, learning_rate=LEARNING_RATE,
                lr_scheduler_type="constant", warmup_steps=0, logging_steps=10**6, save_strategy="no",
                report_to="none", dataloader_num_workers=0, disable_tqdm=True)


def quantization_settings() -> dict:
    """The BitsAndBytesConfig both sides load the base with (what the engine's qlora fields mean)."""
    return dict(load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
                bnb_4bit_compute_dtype="bfloat16")


# -- the child processes -----------------------------------------------------------
class Clock:
    """Tokens/s after the first (warm-up) step."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []

    def step(self, tokens: int) -> None:
        self.marks.append((time.perf_counter(), tokens))

    def result(self) -> dict:
        if len(self.marks) < 2:
            return {"error": "fewer than 2 steps ran"}
        elapsed = self.marks[-1][0] - self.marks[0][0]
        tokens = sum(t for _, t in self.marks[1:])
        return {"tokens_per_sec": tokens / elapsed if elapsed > 0 else None, "steps": len(self.marks)}


def run_engine(spec: dict) -> dict:
    import threading  # noqa: PLC0415 - child process only

    from core.config import RunConfig  # noqa: PLC0415 - child process only: the engine
    from core.events import EventLog  # noqa: PLC0415
    from core.models import load_base, load_tokenizer, prepare_for_training  # noqa: PLC0415
    from core.plan import precision as precisions  # noqa: PLC0415
    from core.train.trainer import Trainer  # noqa: PLC0415

    config = RunConfig.from_dict(spec["config"])
    examples = json.loads(Path(spec["data"]).read_text())
    tokenizer = load_tokenizer(config)
    decision = precisions.decide(config)
    model = prepare_for_training(load_base(config, dtype=decision.weights_dtype), tokenizer, config)
    folder = Path(tempfile.mkdtemp(prefix="tunelab-gpu-bench-"))
    trainer = Trainer(model, tokenizer, examples, [], config, EventLog(folder / "events.jsonl"), folder,
                      threading.Event(), precision=decision)
    clock, real = Clock(), trainer._optimizer_step

    def timed(group, window):
        loss = real(group, window)
        import torch  # noqa: PLC0415 - already loaded; synchronise so the step's time is its own
        torch.cuda.synchronize()
        clock.step(sum(len(e["input_ids"]) for b in group for e in b))
        return loss
    trainer._optimizer_step = timed
    trainer.train()
    return {**clock.result(), "kernels": trainer.kernels, "precision": decision.mode}


def run_trl(spec: dict) -> dict:
    import torch  # noqa: PLC0415 - child process only
    from datasets import Dataset  # noqa: PLC0415
    from peft import LoraConfig  # noqa: PLC0415
    from transformers import AutoModelForCausalLM, BitsAndBytesConfig, TrainerCallback  # noqa: PLC0415
    from trl import SFTConfig, SFTTrainer  # noqa: PLC0415

    from core.config import RunConfig  # noqa: PLC0415
    from core.models import load_tokenizer  # noqa: PLC0415

    examples = json.loads(Path(spec["data"]).read_text())
    tokenizer = load_tokenizer(RunConfig())
    q = quantization_settings()
    q["bnb_4bit_compute_dtype"] = torch.bfloat16
    model = AutoModelForCausalLM.from_pretrained(spec["model"], quantization_config=BitsAndBytesConfig(**q),
                                                 dtype=torch.bfloat16, device_map={"": 0},
                                                 use_kernels=installed("kernels"))
    rows = [{"input_ids": e["input_ids"], "completion_mask": [int(x != -100) for x in e["labels"]]} for e in examples]
    clock = Clock()

    class Steps(TrainerCallback):
        def on_step_end(self, *a, **k):
            torch.cuda.synchronize()
            clock.step(spec["tokens_per_step"])

    args = SFTConfig(output_dir=tempfile.mkdtemp(prefix="tunelab-trl-gpu-"), **spec["trl"])
    trainer = SFTTrainer(model=model, args=args, train_dataset=Dataset.from_list(rows), processing_class=tokenizer,
                         peft_config=LoraConfig(target_modules="all-linear", task_type="CAUSAL_LM", **LORA),
                         callbacks=[Steps()])
    trainer.train()
    return {**clock.result(), "liger": args.use_liger_kernel}


def child(spec_file: str) -> None:
    import torch  # noqa: PLC0415 - child process only
    spec = json.loads(Path(spec_file).read_text())
    torch.cuda.reset_peak_memory_stats()
    try:
        out = {"engine": run_engine, "trl": run_trl}[spec["variant"]](spec)
    except Exception as err:  # reported in the table, not a traceback
        out = {"error": f"{type(err).__name__}: {str(err)[:200]}"}
    out["peak_bytes"] = torch.cuda.max_memory_allocated()
    out["device"] = torch.cuda.get_device_name(0)
    print("RESULT " + json.dumps(out))


def run_side(spec: dict, timeout: float = 3600) -> dict:
    return run_child(spec, timeout, module="bench.gpu_throughput")


def plan(args: argparse.Namespace, model: str, data: str) -> dict[str, dict]:
    """The two child specs: the same data, steps, LoRA, batch and 4-bit base."""
    tokens_per_step = args.batch * args.length
    return {"TuneLab": {"variant": "engine", "data": data, "config": engine_config(args, model)},
            "trl SFTTrainer (expert)": {"variant": "trl", "data": data, "model": model, "trl": trl_settings(args),
                                        "tokens_per_step": tokens_per_step}}


def report(results: dict[str, dict], args: argparse.Namespace) -> str:
    rows = [[name, f"{r['tokens_per_sec']:.0f}" if r.get("tokens_per_sec") else r.get("error", "-")[:80],
             gb(r.get("peak_bytes"))] for name, r in results.items()]
    ours, theirs = (results[k] for k in results)
    if ours.get("tokens_per_sec") and theirs.get("tokens_per_sec"):
        speedup = ours["tokens_per_sec"] / theirs["tokens_per_sec"]
        memory = (ours.get("peak_bytes") or 0) / max(1, theirs.get("peak_bytes") or 1)
        verdict = "meets" if speedup >= TARGET_SPEEDUP and memory <= 1.0 else "misses"
        rows.append(["TuneLab / trl", f"{speedup:.2f}x", f"{memory:.2f}x memory ({verdict} the 1.5x target)"])
    device = next((r["device"] for r in results.values() if r.get("device")), "GPU")
    return markdown_table([f"4-bit QLoRA, {args.model} shape, batch {args.batch} x {args.length}, {device}",
                           "tokens/s", "peak memory (torch)"], rows)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if argv[:1] == ["child"]:
        child(argv[1])
        return 0
    args = parse_args(argv)
    import torch  # noqa: PLC0415 - `--help` answers without loading torch
    if args.dry_run:
        print(json.dumps(plan(args, "<random-init model folder>", "<examples.json>"), indent=2, default=str))
        return 0
    if not torch.cuda.is_available():
        print("bench.gpu_throughput: no CUDA device here; nothing measured (run it on a GPU machine).")
        return 0
    from bench.common import gpu_model_folder  # noqa: PLC0415 - builds the random-init model on the GPU
    model = gpu_model_folder(args.model)
    folder = Path(tempfile.mkdtemp(prefix="tunelab-gpu-throughput-"))
    # the same examples for both: every one exactly --length tokens, half of them trained on
    data = write_examples(fixed_length_examples(args.batch * (args.steps + 1), args.length), folder)
    results = {name: run_side(spec) for name, spec in plan(args, model, data).items()}
    table = report(results, args)
    print(table)
    update_results("Throughput (GPU, 4-bit QLoRA)", table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
