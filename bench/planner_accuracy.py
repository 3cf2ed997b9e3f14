"""How close core.plan.memory.estimate() comes to the measured peak, config by config.

Each configuration trains a few steps with TuneLab's engine in its own child
process on the embedded model, with examples of one fixed length (so every
micro-batch has the shape the planner is asked about); the measured peak is the
child's peak resident memory (CPU) or torch's peak allocation (GPU). Target:
every estimate within +-20% on CPU.

    .venv/bin/python -m bench.planner_accuracy            # CPU, embedded model (~5 min on 2 cores)
    .venv/bin/python -m bench.planner_accuracy --quick    # 4 configurations
    .venv/bin/python -m bench.planner_accuracy --gpu      # random-init Llama 1B on CUDA (skipped without)
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

BASE = dict(lora_r=8, lora_alpha=16)
CONFIGS = [  # (label, RunConfig changes, example length)
    ("LoRA r8, batch 4 x 256", dict(BASE, batch_size=4), 256),
    ("LoRA r8, batch 8 x 256", dict(BASE, batch_size=8), 256),
    ("LoRA r8, batch 8 x 256, grad. checkpointing", dict(BASE, batch_size=8, gradient_checkpointing=True), 256),
    ("LoRA r16, batch 2 x 512, dropout 0", dict(lora_r=16, lora_alpha=32, lora_dropout=0.0, batch_size=2), 512),
    ("LoRA r8, batch 4 x 256, padded (no packing)", dict(BASE, batch_size=4, packing=False), 256),
    ("QLoRA 4-bit r8, batch 4 x 256", dict(BASE, method="qlora", batch_size=4), 256),
    ("full, AdamW, batch 4 x 256", dict(method="full", batch_size=4, learning_rate=1e-5), 256),
    ("full, SGD, batch 4 x 256, grad. checkpointing",
     dict(method="full", optimizer="sgd", batch_size=4, gradient_checkpointing=True, learning_rate=1e-5), 256),
]
QUICK = [0, 2, 5, 6]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 configurations instead of 8")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="random-init Llama 1B / 7B on CUDA")
    args = parser.parse_args()
    if args.gpu:
        return gpu(args)

    from core.config import RunConfig
    from core.plan.memory import estimate

    configs = [CONFIGS[i] for i in QUICK] if args.quick else CONFIGS
    folder = Path(tempfile.mkdtemp(prefix="tunelab-planner-"))
    rows, worst = [], 0.0
    for label, changes, length in configs:
        config = RunConfig().replace(**changes, max_length=length)
        n = config.batch_size * (args.steps + 1)
        data = write_examples(fixed_length_examples(n, length), folder)
        stats = {"length_max": length, "trained_share": 0.5, "tokens": n * length}
        est = estimate(config, data_stats=stats)
        start = time.time()
        result = run_child({"variant": "engine", "label": label, "data": data, "steps": args.steps,
                            "config": config.to_dict()})
        if "error" in result:
            rows.append([label, gb(est.peak_bytes), "failed", result["error"][:80], ""])
            print(f"{label}: failed: {result['error']}", flush=True)
            continue
        measured = result["peak_bytes"]
        error = est.peak_bytes / measured - 1
        worst = max(worst, abs(error))
        top = sorted(((v, k) for k, v in est.breakdown.items()), reverse=True)[:3]
        rows.append([label, gb(est.peak_bytes), gb(measured), f"{error:+.0%}",
                     ", ".join(f"{k} {v / 1e9:.2f}" for v, k in top)])
        print(f"{label}: estimate {gb(est.peak_bytes)}, measured {gb(measured)} ({error:+.0%}), "
              f"{result['tokens_per_sec']:.0f} tok/s, {time.time() - start:.0f} s", flush=True)
    table = markdown_table(["configuration (embedded SmolLM2-135M, CPU, fp32)", "estimate", "measured peak",
                            "error", "largest parts of the estimate (GB)"], rows)
    verdict = f"Largest error: {worst:.0%} (target: within 20% for every configuration)."
    print("\n" + table + "\n\n" + verdict)
    update_results("Planner accuracy (CPU)", f"`.venv/bin/python -m bench.planner_accuracy`\n\n{table}\n\n{verdict}\n\n"
                   "Measured peak = the child process's peak resident memory (getrusage), model loading included.")


def gpu(args) -> None:
    if not has_cuda():
        print("--gpu: no CUDA device here; skipped (the figures wait for a GPU).")
        return
    from transformers import LlamaConfig

    from core.config import RunConfig
    from core.plan.memory import estimate

    folder = Path(tempfile.mkdtemp(prefix="tunelab-planner-gpu-"))
    rows = []
    for name in ("llama-1b", "llama-7b"):
        model = gpu_model_folder(name)
        model_config = LlamaConfig(vocab_size=49152, tie_word_embeddings=False, **GPU_MODELS[name])
        for label, changes, length in [("LoRA r8, batch 4 x 512", dict(BASE, batch_size=4), 512),
                                       ("LoRA r8, batch 8 x 1024, grad. ckpt",
                                        dict(BASE, batch_size=8, gradient_checkpointing=True), 1024)]:
            config = RunConfig().replace(**changes, max_length=length, model=model)
            data = write_examples(fixed_length_examples(config.batch_size * (args.steps + 1), length), folder)
            est = estimate(config, model_config=model_config, data_stats={"length_max": length, "trained_share": 0.5})
            result = run_child({"variant": "engine", "label": label, "data": data, "steps": args.steps,
                                "config": config.to_dict()})
            measured = result.get("peak_bytes")
            rows.append([f"{name}: {label}", gb(est.peak_bytes), gb(measured),
                         f"{est.peak_bytes / measured - 1:+.0%}" if measured else result.get("error", "")[:80]])
    table = markdown_table(["configuration (GPU, bf16)", "estimate", "measured peak (torch)", "error"], rows)
    print(table)
    update_results("Planner accuracy (GPU)", table)


if __name__ == "__main__":
    main()
