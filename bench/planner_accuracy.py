"""How close core.plan.memory.estimate() comes to the measured peak, config by config.

Each configuration trains a few steps with TuneLab's engine in its own child
process on the embedded model, with examples of one fixed length (so every
micro-batch has the shape the planner is asked about); the measured peak is the
child's peak resident memory (CPU) or torch's peak allocation (GPU). Target:
every estimate within +-20% on CPU.

    .venv/bin/python -m bench.planner_accuracy            # CPU, embedded model (~5 min on 2 cores)
    .venv/bin/python -m bench.planner_accuracy --quick    # 4 configurations
    .venv/bin/python -m bench.planner_accuracy --gpu      # random-init Llama 1B on CUDA (skipped without)
    .venv/bin/python -m bench.planner_accuracy --families # GPT-2, GPT-NeoX and T5, tiny to small (~25 min on 2 cores)
    .venv/bin/python -m bench.planner_accuracy --families --only t5,mt0   # the T5 / mT5 rows alone

The --families rows train random-init GPT-2 (Conv1D layers), GPT-NeoX (fused query_key_value) and T5
(encoder-decoder: relu T5 and mT5/mt0's gated-gelu) models built from a config here (the embedded
tokenizer's vocabulary; nothing downloaded): the planner sizes them from the empty model of the same
config (core/plan/targets.py). T5 rows train (source -> target) pairs of fixed lengths.
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

# (name, config class, config keywords): tiny to small, with the embedded tokenizer's vocabulary
FAMILIES = [
    ("gpt2-tiny (4 x 256)", "GPT2Config", dict(n_embd=256, n_layer=4, n_head=4, n_positions=1024)),
    ("gpt2-small (6 x 768)", "GPT2Config", dict(n_embd=768, n_layer=6, n_head=12, n_positions=1024)),
    ("neox-tiny (4 x 256)", "GPTNeoXConfig", dict(hidden_size=256, num_hidden_layers=4, num_attention_heads=4,
                                                  intermediate_size=1024, max_position_embeddings=1024)),
    ("neox-small (6 x 1024)", "GPTNeoXConfig", dict(hidden_size=1024, num_hidden_layers=6, num_attention_heads=16,
                                                    intermediate_size=4096, max_position_embeddings=1024)),
    ("t5-tiny (2+2 x 256)", "T5Config", dict(d_model=256, d_kv=64, d_ff=1024, num_layers=2, num_heads=4)),
    ("t5-small (6+6 x 512)", "T5Config", dict(d_model=512, d_kv=64, d_ff=2048, num_layers=6, num_heads=8)),
    ("mt0-style (4+4 x 384, gated-gelu)", "T5Config", dict(d_model=384, d_kv=64, d_ff=1024, num_layers=4, num_heads=6,
                                                            feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
]
ATTENTION = {"GPT2Config": "c_attn", "GPTNeoXConfig": "query_key_value", "T5Config": "q,v"}
SEQ2SEQ_LENGTHS = (192, 64)  # (source, target) tokens of every T5 example: a question with history, a short answer


def family_configs(kind: str) -> list[tuple[str, dict, int]]:
    """What each family is measured with: LoRA on every linear layer, LoRA on the attention only
    (the KoGPT2 / polyglot-ko recipes) with checkpointing, and full fine-tuning."""
    rows = "{} -> {}".format(*SEQ2SEQ_LENGTHS) if kind == "T5Config" else "256"  # T5: source -> target tokens
    return [(f"LoRA r8 all-linear, batch 4 x {rows}", dict(BASE, batch_size=4), 256),
            (f"LoRA r8 {ATTENTION[kind]}, batch 8 x {rows}, grad. ckpt",
             dict(BASE, batch_size=8, target_modules=ATTENTION[kind], gradient_checkpointing=True), 256),
            (f"full, AdamW, batch 4 x {rows}", dict(method="full", batch_size=4, learning_rate=1e-5), 256)]


def family_folder(name: str, kind: str, keywords: dict, folder: Path) -> tuple[str, object]:
    """A random-init model of this family saved with the embedded tokenizer; (its folder, its config)."""
    import torch  # noqa: PLC0415 - the bench parent imports torch only for --families
    import transformers  # noqa: PLC0415 - idem

    from core.config import RunConfig  # noqa: PLC0415 - idem
    from core.models import load_tokenizer  # noqa: PLC0415 - idem

    tokenizer = load_tokenizer(RunConfig())
    config = getattr(transformers, kind)(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id,
                                         eos_token_id=tokenizer.eos_token_id, pad_token_id=tokenizer.pad_token_id,
                                         **keywords)
    target = folder / name.split(" ")[0]
    torch.manual_seed(0)
    if config.is_encoder_decoder:  # T5 starts its decoder from the pad token
        config.decoder_start_token_id = tokenizer.pad_token_id
        transformers.AutoModelForSeq2SeqLM.from_config(config).save_pretrained(target)
    else:
        transformers.AutoModelForCausalLM.from_config(config).save_pretrained(target)
    tokenizer.save_pretrained(target)
    return str(target), config


def families(args) -> None:
    from core.config import RunConfig  # noqa: PLC0415 - idem

    folder = Path(tempfile.mkdtemp(prefix="tunelab-planner-families-"))
    rows, worst = [], 0.0
    for name, kind, keywords in FAMILIES:
        if args.only and not name.startswith(tuple(args.only.split(","))):
            continue
        model, model_config = family_folder(name, kind, keywords, folder)
        for label, changes, length in family_configs(kind):
            config = RunConfig().replace(**changes, max_length=length, model=model)
            row = measure(f"{name}: {label}", config, length, args.steps, folder, model_config)
            rows.append(row[:-1])
            worst = max(worst, row[-1])
    table = markdown_table(["configuration (random-init, CPU, fp32)", "estimate", "measured peak", "error",
                            "largest parts of the estimate (GB)"], rows)
    verdict = f"Largest error: {worst:.0%} (target: within 20% for every configuration)."
    print("\n" + table + "\n\n" + verdict)
    # --only t5,mt0 (the T5 rows alone, ~15 min) keeps its own section: the decoder families' stays as measured
    title = "Planner accuracy, T5 / mT5 encoder-decoders (CPU)" if args.only == "t5,mt0" else \
        "Planner accuracy, GPT-2, GPT-NeoX and T5 (CPU)"
    if args.only and args.only != "t5,mt0":
        return  # a partial table is for tuning; RESULTS.md keeps the whole one
    update_results(title,
                   f"`.venv/bin/python -m bench.planner_accuracy --families{' --only ' + args.only if args.only else ''}`"
                   f"\n\n{table}\n\n{verdict}")


def seq2seq_examples(n: int, source: int, target: int) -> list[dict]:
    """n (source, target) items of fixed lengths, as core/data/pipeline.py makes them for an encoder-decoder."""
    stream = [t for e in fixed_length_examples(1, source + target) for t in e["input_ids"]]
    return [{"input_ids": stream[:source], "labels": stream[source:], "seq2seq": True} for _ in range(n)]


def measure(label: str, config, length: int, steps: int, folder: Path, model_config=None) -> list:
    """[label, estimate, measured, error, largest parts, |error|] of one configuration trained in a child."""
    from core.plan.memory import estimate  # noqa: PLC0415 - torch and transformers: only when measuring

    n = config.batch_size * (steps + 1)
    if getattr(model_config, "is_encoder_decoder", False):
        source, target = SEQ2SEQ_LENGTHS
        data = write_examples(seq2seq_examples(n, source, target), folder)
        stats = {"length_max": source, "source_length_max": source, "target_length_max": target,
                 "trained_share": target / (source + target), "tokens": n * (source + target), "seq2seq": True}
    else:
        data = write_examples(fixed_length_examples(n, length), folder)
        stats = {"length_max": length, "trained_share": 0.5, "tokens": n * length}
    est = estimate(config, data_stats=stats, model_config=model_config)
    start = time.time()
    result = run_child({"variant": "engine", "label": label, "data": data, "steps": steps,
                        "config": config.to_dict()})
    if "error" in result:
        print(f"{label}: failed: {result['error']}", flush=True)
        return [label, gb(est.peak_bytes), "failed", result["error"][:80], "", 0.0]
    measured = result["peak_bytes"]
    error = est.peak_bytes / measured - 1
    top = sorted(((v, k) for k, v in est.breakdown.items()), reverse=True)[:3]
    print(f"{label}: estimate {gb(est.peak_bytes)}, measured {gb(measured)} ({error:+.0%}), "
          f"{result['tokens_per_sec']:.0f} tok/s, {time.time() - start:.0f} s", flush=True)
    return [label, gb(est.peak_bytes), gb(measured), f"{error:+.0%}",
            ", ".join(f"{k} {v / 1e9:.2f}" for v, k in top), abs(error)]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--quick", action="store_true", help="4 configurations instead of 8")
    parser.add_argument("--steps", type=int, default=3)
    parser.add_argument("--gpu", action="store_true", help="random-init Llama 1B / 7B on CUDA")
    parser.add_argument("--families", action="store_true", help="random-init GPT-2, GPT-NeoX and T5, tiny to small")
    parser.add_argument("--only", default="", help="with --families: only the models whose names start so (t5,mt0)")
    args = parser.parse_args()
    if args.gpu:
        return gpu(args)
    if args.families:
        return families(args)

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
