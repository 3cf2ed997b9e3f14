"""Training throughput: TuneLab's engine vs trl's SFTTrainer (set up by an expert, and at its defaults) vs plain PyTorch.

Same model (the embedded SmolLM2-135M-Instruct), same data (the built-in demo
set tokenized by core.data.pipeline), LoRA r=8 on every linear layer, batch 4:

  A   TuneLab's engine: core.train.trainer.Trainer, every setting picked by itself
      (precision measured by core/plan/precision.py, as a run does)
  A'  the engine forced into the other precision (a control: did the probe pick the faster one?)
  E   trl SFTTrainer as an expert sets it up for this machine: the precision the
      probe measured faster (bf16 autocast or fp32), no gradient checkpointing, BFD
      packing with padding-free batches, completion-only loss
  E'  the same expert set-up in the other precision (the expert's choice checked: E is the faster of the two)
  B   trl SFTTrainer at its defaults (only run size / output / reporting set;
      on a CPU that means bf16 autocast + gradient checkpointing + fused AdamW)
  C   a minimal PyTorch + peft loop: fp32, padded batches, full logits, torch AdamW

E, E', B and C run on the thread count A's trainer measured fastest in that
round (on busy shared cores, 1 thread can be several times faster than 2; the
engine measures it, the others would not, and that is not what is compared).

Each variant runs in its own child process (its peak memory is its own), A, E
and C in every round, interleaved, so a change in machine load hits them alike;
tokens/s counts non-padding tokens after a warm-up step. First it prints the
machine: CPU model and bf16 flags, matmul GFLOP/s in fp32 and bf16, the
model's FLOPs per token, and so the most tokens/s this CPU's matmuls allow.

    .venv/bin/python -m bench.throughput             # CPU, ~10-15 min on 2 busy cores
    .venv/bin/python -m bench.throughput --gpu       # random-init Llama 1B and 7B on CUDA (skipped without)
"""
from __future__ import annotations

import argparse
import statistics
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
NAMES = {"A": "A  TuneLab engine (auto)", "A'": "A' engine, other precision", "E": "E  trl SFTTrainer, expert set-up",
         "E'": "E' trl expert, other precision", "B": "B  trl SFTTrainer, defaults",
         "C": "C  plain PyTorch + peft, fp32"}


def matmul_gflops(n: int = 1024, rounds: int = 7) -> dict[str, float]:
    """n x n matmul GFLOP/s in fp32 and bf16, interleaved, median, on the thread count that runs fastest now."""
    import torch

    from core import hardware
    from core.plan.probe import time_modes
    hardware.tune_cpu_threads()
    a32, b32 = torch.randn(n, n), torch.randn(n, n)
    a16, b16 = a32.bfloat16(), b32.bfloat16()
    times = time_modes({"fp32": lambda: a32 @ b32, "bf16": lambda: a16 @ b16}, rounds=rounds)
    return {k: 2 * n ** 3 / statistics.median(v) / 1e9 for k, v in times.items()}


def machine(examples: list[dict]) -> dict:
    """What this machine is and what its matmuls allow: printed first, kept for the results table."""
    import torch

    from core import hardware
    from core.config import RunConfig
    from core.plan.model_shape import read_model_config, shape_of
    from core.plan.speed import flops_per_token
    config = RunConfig(**ENGINE)
    shape = shape_of(read_model_config(config.model))
    lengths = sorted(len(e["input_ids"]) for e in examples)
    share = sum(sum(1 for x in e["labels"] if x != -100) for e in examples) / sum(lengths)
    per_token = flops_per_token(config, shape, share, lengths[len(lengths) // 2])
    gflops = matmul_gflops()
    best = max(gflops.values())
    hardware.set_cpu_threads()
    info = dict(cpu=hardware.cpu_model_name(), flags=", ".join(hardware.cpu_bf16_flags()) or "none",
                capability=torch.backends.cpu.get_cpu_capability(), threads=torch.get_num_threads(), gflops=gflops,
                flops_per_token=per_token, limit=best * 1e9 / per_token, share=share)
    print(f"CPU: {info['cpu']} ({info['threads']} threads), bf16 flags: {info['flags']}, "
          f"torch kernels: {info['capability']}", flush=True)
    print(f"matmul 1024^3: fp32 {gflops['fp32']:.0f} GFLOP/s, bf16 {gflops['bf16']:.0f} GFLOP/s "
          f"(bf16 {gflops['bf16'] / gflops['fp32']:.2f}x fp32)", flush=True)
    print(f"model: {per_token / 1e9:.2f} GFLOP per token (LoRA, {share:.0%} of tokens trained on) -> at most "
          f"{info['limit']:.0f} tok/s at this CPU's best matmul speed", flush=True)
    return info


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--steps", type=int, default=8, help="optimizer steps for A and C per round")
    parser.add_argument("--expert-steps", type=int, default=3, help="steps for E (each packs ~4x512 tokens)")
    parser.add_argument("--trl-steps", type=int, default=2, help="steps for B (slow: gradient checkpointing)")
    parser.add_argument("--rounds", type=int, default=2)
    parser.add_argument("--no-trl", action="store_true", help="skip E, E' and B")
    parser.add_argument("--no-controls", action="store_true", help="skip A' and E'")
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
    info = machine(examples)
    results: dict[str, list[dict]] = {k: [] for k in NAMES}

    def go(key: str, spec: dict) -> dict:
        start = time.time()
        r = run_child({"data": data, **spec}, timeout=1500)
        results[key].append(r)
        if "error" in r:
            print(f"  {key}: failed: {r['error']}", flush=True)
        else:
            print(f"  {key}: {r['tokens_per_sec']:.1f} tok/s over {r['timed_steps']} steps, threads {r['threads']}, "
                  f"peak {gb(r['peak_bytes'])}{_settings(key, r)} ({time.time() - start:.0f} s)", flush=True)
        return r

    expert_bf16 = None
    for round_ in range(args.rounds):
        print(f"round {round_ + 1}/{args.rounds}", flush=True)
        a = go("A", {"variant": "engine", "steps": args.steps, "config": ENGINE})
        if expert_bf16 is None:  # the expert uses the precision measured faster here (the engine's probe said)
            expert_bf16 = a.get("precision", "fp32") != "fp32"
        threads = a.get("threads")  # the expert gets the engine's thread count: on busy cores it is worth ~10x
        if not args.no_trl:
            go("E", {"variant": "trl", "expert": True, "bf16": expert_bf16, "steps": args.expert_steps,
                     "threads": threads})
        go("C", {"variant": "plain", "steps": args.steps, "threads": threads})
        if round_ == 0 and not args.no_controls:
            other = "bf16-weights" if a.get("precision", "fp32") == "fp32" else "fp32"
            go("A'", {"variant": "engine", "steps": args.steps, "config": ENGINE, "mode": other})
            if not args.no_trl:
                go("E'", {"variant": "trl", "expert": True, "bf16": not expert_bf16, "steps": args.expert_steps,
                          "threads": threads})
        if round_ == 0 and not args.no_trl:
            go("B", {"variant": "trl", "steps": args.trl_steps, "threads": threads})
    again = matmul_gflops()  # the machine's load moves: its limit is the better of two moments
    info["gflops"] = {k: max(v, again[k]) for k, v in info["gflops"].items()}
    info["limit"] = max(info["gflops"].values()) * 1e9 / info["flops_per_token"]
    report(results, info)


def _settings(key: str, r: dict) -> str:
    if key.startswith("A"):
        return f", precision {r.get('precision')}"
    if key.startswith("E"):
        return f", {'bf16 autocast' if r.get('bf16') else 'fp32'}"
    return ""


def _tokens_per_sec(runs: list[dict]) -> float | None:
    """Pooled over rounds: all timed tokens / all timed seconds."""
    ok = [r for r in runs if "error" not in r and r.get("seconds")]
    secs = sum(r["seconds"] for r in ok)
    return sum(r["tokens_per_sec"] * r["seconds"] for r in ok) / secs if secs else None


def _extra(key: str, ok: list[dict]) -> str:
    if not ok:
        return ""
    r = ok[0]
    if key in ("B", "E", "E'"):
        return (f"bf16={r.get('bf16')}, grad. ckpt={r.get('gradient_checkpointing')}, packing={r.get('packing')}, "
                f"padding-free={r.get('padding_free')}, completion-only={r.get('completion_only_loss')}")
    if key.startswith("A"):
        return f"precision {r.get('precision')}; threads " + " / ".join(str(x.get("threads")) for x in ok)
    return "threads " + " / ".join(str(x.get("threads")) for x in ok)


def report(results: dict, info: dict) -> None:
    speed = {k: _tokens_per_sec(v) for k, v in results.items()}
    peak = {k: max((r["peak_bytes"] for r in v if "error" not in r), default=None) for k, v in results.items()}
    rows = []
    for key, runs in results.items():
        if not runs:
            continue
        ok = [r for r in runs if "error" not in r]
        per_round = " / ".join(f"{r['tokens_per_sec']:.1f}" for r in ok) or runs[0].get("error", "")[:60]
        rows.append([NAMES[key], f"{speed[key]:.1f}" if speed[key] else "n/a", per_round, gb(peak[key]),
                     sum(r.get("timed_steps", 0) for r in ok), _extra(key, [r for r in ok])])
    table = markdown_table(["variant", "tokens/s", "per round", "peak memory", "timed steps", "settings"], rows)
    lines = [f"CPU: {info['cpu']}, {info['threads']} threads; bf16 flags: {info['flags']}; "
             f"torch kernels: {info['capability']}",
             f"matmul 1024^3: fp32 {info['gflops']['fp32']:.0f} GFLOP/s, bf16 {info['gflops']['bf16']:.0f} GFLOP/s",
             f"model: {info['flops_per_token'] / 1e9:.2f} GFLOP/token -> this CPU's matmul limit "
             f"{info['limit']:.0f} tok/s; A reaches {speed['A'] / info['limit']:.0%} of it" if speed.get("A") else ""]
    a_runs = [r for r in results["A"] if "error" not in r]
    if a_runs:
        lines.append(f"A's precision: {a_runs[0].get('precision_reason')} (probe {a_runs[0].get('probe_seconds', 0):.1f} s)")

    def ratio(x: str, y: str, label: str, target: float | None = None) -> None:
        if speed.get(x) and speed.get(y):
            r = speed[x] / speed[y]
            verdict = f" (target >= {target:g}x: {'met' if r >= target else 'MISSED'})" if target else ""
            lines.append(f"{label}: {r:.2f}x{verdict}")
    if speed.get("E") and speed.get("E'") and speed["E'"] > speed["E"]:  # the expert would have taken the other
        speed["E*"] = speed["E'"]
        ratio("A", "E*", "A/expert in its faster precision (E', the probe's pick was not the faster for trl)", 1.5)
    ratio("A", "E", "A/expert (trl set up by an expert)", 1.5)
    ratio("A", "B", "A/defaults (trl at its defaults)")
    ratio("A", "C", "A/plain (PyTorch + peft fp32)")
    ratio("A", "A'", "A/A' (the probe's pick vs the other precision, whole engine)")
    ratio("E", "E'", "E/E' (the expert's precision vs the other one)")
    e_runs = [r for r in results["E"] if "error" not in r]
    if len(a_runs) == len(e_runs) > 1:
        lines.append("A/expert per round (same moment, same load): " + ", ".join(
            f"{a['tokens_per_sec'] / e['tokens_per_sec']:.2f}x" for a, e in zip(a_runs, e_runs)))
    if peak.get("A") and peak.get("E"):
        lines.append(f"A/expert peak memory: {peak['A'] / peak['E']:.2f} (target <= 1: "
                     f"{'met' if peak['A'] <= peak['E'] else 'MISSED'})")
    lines = [line for line in lines if line]
    text = (f"`.venv/bin/python -m bench.throughput`; LoRA r=8 all-linear, dropout 0.05, batch 4, demo set; "
            f"non-padding tokens/s after one warm-up step, each variant in its own process, A/E/C interleaved "
            f"in every round. The CPU is shared with other work: per-round figures show the noise.\n\n"
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
