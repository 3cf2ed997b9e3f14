"""The classic table of memory-saving techniques, measured on the embedded model.

Every row trains a few steps in its own child process (peak memory is that
row's alone) with TuneLab's engine, on examples of exactly 128 tokens, an
effective batch of 4 (so every row sees the same data per optimizer step).
Peak = the child's peak resident memory (CPU) or torch's peak allocation (GPU);
speed = tokens/s after a warm-up step; "planner" = core.plan.memory.estimate for the
same settings, for comparison.

    .venv/bin/python -m bench.memory_table           # CPU, ~5 min on 2 busy cores
    .venv/bin/python -m bench.memory_table --bf16    # also measure bf16 autocast on CPU (~2 more min)
    .venv/bin/python -m bench.memory_table --gpu     # random-init Llama 1B on CUDA (skipped without)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import (
    GPU_MODELS,
    fixed_length_examples,
    gb,
    gpu_model_folder,
    has_cuda,
    markdown_table,
    run_child,
    update_results,
    write_examples,
)

LENGTH, BATCH = 128, 4
FULL = dict(method="full", learning_rate=1e-5)
LORA = dict(method="lora", lora_r=8, lora_alpha=16)
ROWS = [  # (technique, RunConfig changes)
    ("full fine-tune, fp32, AdamW (baseline)", dict(FULL)),
    ("+ gradient checkpointing", dict(FULL, gradient_checkpointing=True)),
    ("+ micro-batch 1 x accumulation 4", dict(FULL, batch_size=1, grad_accum=4)),
    ("+ 8-bit AdamW (bitsandbytes)", dict(FULL, optimizer="adamw_8bit")),
    ("+ checkpointing + micro-batch 1x4 + 8-bit AdamW", dict(FULL, gradient_checkpointing=True, batch_size=1,
                                                            grad_accum=4, optimizer="adamw_8bit")),
    ("LoRA r8 (fp32 base)", dict(LORA)),
    ("LoRA r8 + gradient checkpointing", dict(LORA, gradient_checkpointing=True)),
    ("QLoRA r8 (4-bit NF4 base)", dict(LORA, method="qlora")),
    ("QLoRA r8 + checkpointing + micro-batch 1x4", dict(LORA, method="qlora", gradient_checkpointing=True,
                                                       batch_size=1, grad_accum=4)),
]
BF16 = "+ mixed precision (bf16 autocast)"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=3, help="optimizer steps per row (the first is warm-up)")
    parser.add_argument("--bf16", action="store_true", help="measure bf16 autocast on CPU too (slow)")
    parser.add_argument("--gpu", action="store_true", help="random-init Llama 1B on CUDA")
    parser.add_argument("--dry-run", action="store_true", help="with --gpu: run the GPU code path on a tiny model here")
    args = parser.parse_args()
    gpu_model = None
    if args.gpu:
        if not has_cuda() and not args.dry_run:
            print("--gpu: no CUDA device here; skipped (the figures wait for a GPU).")
            return
        gpu_model = "tiny" if args.dry_run else "llama-1b"

    from transformers import LlamaConfig

    from core.config import RunConfig
    from core.plan.memory import estimate
    folder = Path(tempfile.mkdtemp(prefix="tunelab-memtable-"))
    data = write_examples(fixed_length_examples(BATCH * (args.steps + 1), LENGTH), folder)
    stats = {"length_max": LENGTH, "trained_share": 0.5}
    model_config = (LlamaConfig(vocab_size=49152, tie_word_embeddings=False, **GPU_MODELS[gpu_model])
                    if gpu_model else None)
    rows, base = [], None
    plan = list(ROWS)
    if args.bf16 or gpu_model:
        plan.insert(4, (BF16, dict(FULL, precision="bf16")))
    model_dir = gpu_model_folder(gpu_model) if gpu_model else None
    for label, changes in plan:
        config = RunConfig().replace(**{"max_length": LENGTH, "batch_size": BATCH, **changes,
                                        **({"model": model_dir} if model_dir else {})})
        start = time.time()
        if label == BF16 and not gpu_model:
            # The engine refuses bf16 on a CPU (validation), so the textbook loop measures it, full fine-tune.
            spec = {"variant": "plain", "method": "full", "bf16_autocast": True, "steps": 2, "batch_size": BATCH}
        else:
            spec = {"variant": "engine", "steps": args.steps, "config": config.to_dict()}
        result = run_child({"data": data, "label": label, "model": model_dir, **spec}, timeout=1200)
        est = estimate(config, model_config=model_config, data_stats=stats,
                       device="cuda" if gpu_model else None).peak_bytes
        if "error" in result:
            rows.append([label, "failed", "", "", "", gb(est), result["error"][:80]])
            print(f"{label}: failed: {result['error']}", flush=True)
            continue
        peak, speed = result["peak_bytes"], result["tokens_per_sec"]
        base = base or (peak, speed)
        note = "textbook loop (engine refuses bf16 on CPU)" if label == BF16 and not gpu_model else ""
        rows.append([label, gb(peak), f"{peak / base[0]:.0%}", f"{speed:.0f}", f"{speed / base[1]:.2f}x", gb(est), note])
        print(f"{label}: peak {gb(peak)}, {speed:.1f} tok/s ({time.time() - start:.0f} s)", flush=True)
    if not (args.bf16 or gpu_model):
        rows.insert(4, [BF16, "n/a", "", "n/a", "", "", "not run on CPU by default: bf16 autocast here is ~18x slower "
                        "than fp32 (a 4x128 forward+backward: 110-143 s vs 6-9 s); --bf16 measures it"])
    where = "GPU, random-init Llama 1B, bf16" if gpu_model else "CPU, embedded SmolLM2-135M, fp32"
    table = markdown_table([f"technique ({where}; batch {BATCH} x {LENGTH} tokens)", "peak memory", "vs baseline",
                            "tokens/s", "speed vs baseline", "planner", "note"], rows)
    print("\n" + table)
    if args.dry_run:
        return
    update_results("Memory-saving techniques (GPU)" if gpu_model else "Memory-saving techniques (CPU)",
                   f"`.venv/bin/python -m bench.memory_table{' --gpu' if gpu_model else ''}`\n\n{table}\n\n"
                   "Peak = the process's peak resident memory, model loading included (CPU); speed is noisy on "
                   "shared cores - compare rows of one run only.")


if __name__ == "__main__":
    main()
