"""Training throughput: TuneLab's engine vs trl's SFTTrainer at its defaults vs a plain PyTorch loop.

Same model (the embedded SmolLM2-135M-Instruct), same data (the built-in demo
set tokenized by core.data.pipeline), LoRA r=8 on every linear layer, batch 4:

  A  TuneLab's engine: core.train.trainer.Trainer, settings picked by itself
  B  trl SFTTrainer at its defaults (only run size / output / reporting set;
     on a CPU that means bf16 autocast + gradient checkpointing + fused AdamW)
  C  a minimal PyTorch + peft loop: fp32, padded batches, full logits, torch AdamW
  C* the same loop with A's thread count (a control: how much of A/C is threads)

Each variant runs in its own child process (its peak memory is its own), in
the order A C C* B A C (A and C twice, interleaved, so a change in machine
load hits both); tokens/s counts non-padding tokens after a warm-up step.

    .venv/bin/python -m bench.throughput             # CPU, ~4-6 min on 2 busy cores
    .venv/bin/python -m bench.throughput --gpu       # random-init Llama 1B and 7B on CUDA (skipped without)
"""
from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from bench.common import (
    LORA,
    demo_examples,
    gb,
    gpu_model_folder,
    has_cuda,
    markdown_table,
    run_child,
    update_results,
    write_examples,
)

ENGINE = dict(lora_r=LORA["r"], lora_alpha=LORA["lora_alpha"], lora_dropout=LORA["lora_dropout"], batch_size=4,
              target_modules="all-linear")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps for A and C per round")
    parser.add_argument("--trl-steps", type=int, default=2, help="steps for B (slow: bf16 on CPU)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-trl", action="store_true", help="skip B")
    parser.add_argument("--gpu", action="store_true", help="random-init Llama 1B / 7B on CUDA")
    parser.add_argument("--dry-run", action="store_true", help="with --gpu: run the GPU code path on a tiny model here")
    args = parser.parse_args()
    if args.gpu:
        return gpu(args)

    folder = Path(tempfile.mkdtemp(prefix="tunelab-throughput-"))
    examples = demo_examples()
    data = write_examples(examples, folder)
    print(f"data: {len(examples)} examples, {sum(len(e['input_ids']) for e in examples)} tokens "
          f"(demo set); LoRA r={LORA['r']} all-linear, dropout {LORA['lora_dropout']}, batch 4", flush=True)
    results: dict[str, list[dict]] = {"A": [], "B": [], "C": [], "C*": []}

    def go(key: str, spec: dict) -> dict:
        start = time.time()
        r = run_child({"data": data, **spec}, timeout=1200)
        results[key].append(r)
        if "error" in r:
            print(f"  {key}: failed: {r['error']}", flush=True)
        else:
            print(f"  {key}: {r['tokens_per_sec']:.1f} tok/s over {r['timed_steps']} steps, threads {r['threads']}, "
                  f"peak {gb(r['peak_bytes'])} ({time.time() - start:.0f} s)", flush=True)
        return r

    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        a = go("A", {"variant": "engine", "steps": args.steps, "config": ENGINE})
        go("C", {"variant": "plain", "steps": args.steps})
        if round_ == 0:
            go("C*", {"variant": "plain", "steps": args.steps, "threads": a.get("threads", 1)})
        if round_ == 0 and not args.no_trl:
            go("B", {"variant": "trl", "steps": args.trl_steps})
    report(results, args)


def _mean(runs: list[dict], key: str) -> float | None:
    values = [r[key] for r in runs if "error" not in r and r.get(key)]
    return sum(values) / len(values) if values else None


def _tokens_per_sec(runs: list[dict]) -> float | None:
    """Pooled over rounds: all timed tokens / all timed seconds."""
    ok = [r for r in runs if "error" not in r and r.get("seconds")]
    secs = sum(r["seconds"] for r in ok)
    return sum(r["tokens_per_sec"] * r["seconds"] for r in ok) / secs if secs else None


def report(results: dict, args) -> None:
    names = {"A": "A  TuneLab engine", "B": "B  trl SFTTrainer, defaults", "C": "C  plain PyTorch + peft, fp32",
             "C*": "C* plain loop with A's threads"}
    speed = {k: _tokens_per_sec(v) for k, v in results.items()}
    peak = {k: max((r["peak_bytes"] for r in v if "error" not in r), default=None) for k, v in results.items()}
    rows = []
    for key, runs in results.items():
        if not runs:
            continue
        ok = [r for r in runs if "error" not in r]
        per_round = " / ".join(f"{r['tokens_per_sec']:.1f}" for r in ok) or runs[0].get("error", "")[:60]
        extra = ""
        if key == "B" and ok:
            extra = f"bf16={ok[0].get('bf16')}, grad. ckpt={ok[0].get('gradient_checkpointing')}, {ok[0].get('optim')}"
        elif ok:
            extra = "threads " + " / ".join(str(r.get("threads")) for r in ok)
        rows.append([names[key], f"{speed[key]:.1f}" if speed[key] else "n/a", per_round, gb(peak[key]),
                     sum(r.get("timed_steps", 0) for r in ok), extra])
    table = markdown_table(["variant", "tokens/s", "per round", "peak memory", "timed steps", "settings"], rows)
    lines = []

    def ratio(x: str, y: str, label: str, target: float | None = None) -> None:
        if speed.get(x) and speed.get(y):
            r = speed[x] / speed[y]
            verdict = f" (target >= {target:g}x: {'met' if r >= target else 'MISSED'})" if target else ""
            lines.append(f"{label}: {r:.2f}x{verdict}")
    ratio("A", "B", "A/B speed", 20)
    ratio("A", "C", "A/C speed", 1.3)
    a_runs = [r for r in results["A"] if "error" not in r]
    c_runs = [r for r in results["C"] if "error" not in r]
    if len(a_runs) == len(c_runs) and len(a_runs) > 1:
        lines.append("A/C per round (same moment, same load): " + ", ".join(
            f"{a['tokens_per_sec'] / c['tokens_per_sec']:.2f}x" for a, c in zip(a_runs, c_runs)))
    cstar = [r for r in results["C*"] if "error" not in r]
    if a_runs and cstar:
        lines.append(f"A/C* (round 1, both on {a_runs[0].get('threads')} thread(s)): "
                     f"{a_runs[0]['tokens_per_sec'] / cstar[0]['tokens_per_sec']:.2f}x - the engine's own gain, "
                     "thread choice aside")
    if peak.get("A") and peak.get("C"):
        lines.append(f"A/C peak memory: {peak['A'] / peak['C']:.2f} (target <= 1: "
                     f"{'met' if peak['A'] <= peak['C'] else 'MISSED'})")
    device = next((r.get("device") for v in results.values() for r in v if r.get("device")), "")
    text = (f"`.venv/bin/python -m bench.throughput` on {device}; LoRA r=8 all-linear, dropout 0.05, batch 4, "
            f"demo set; non-padding tokens/s after one warm-up step, each variant in its own process.\n\n"
            f"{table}\n\n" + "\n".join(f"- {line}" for line in lines))
    print("\n" + table + "\n")
    for line in lines:
        print(line)
    update_results("Throughput (CPU)", text)


def gpu(args) -> None:
    if not has_cuda() and not args.dry_run:
        print("--gpu: no CUDA device here; skipped (the figures wait for a GPU).")
        return
    folder = Path(tempfile.mkdtemp(prefix="tunelab-throughput-gpu-"))
    data = write_examples(demo_examples(), folder)
    models = ["tiny"] if args.dry_run else ["llama-1b", "llama-7b"]
    rows = []
    for name in models:
        model = gpu_model_folder(name)
        runs = {
            "A": run_child({"variant": "engine", "data": data, "steps": args.steps, "config": {**ENGINE, "model": model}}),
            "B": run_child({"variant": "trl", "data": data, "steps": max(args.trl_steps, 5), "model": model}),
            "C": run_child({"variant": "plain", "data": data, "steps": args.steps, "model": model}),
        }
        for key, r in runs.items():
            rows.append([name, key, f"{r['tokens_per_sec']:.0f}" if "error" not in r else r["error"][:80],
                         gb(r.get("peak_bytes")), ", ".join(r.get("kernels", []))])
        a, b, c = (runs[k].get("tokens_per_sec") for k in "ABC")
        if a and b and c:
            rows.append([name, "A/B, A/C", f"{a / b:.2f}x, {a / c:.2f}x", "", ""])
    table = markdown_table(["model", "variant", "tokens/s", "peak (torch)", "extras"], rows)
    print(table)
    if not args.dry_run:
        update_results("Throughput (GPU)", table)


if __name__ == "__main__":
    main()
