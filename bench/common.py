"""Shared pieces of the benchmarks: data, child processes, the training variants, tables.

Every measured variant runs in its own child process (`python -m bench.common
child <spec.json>`), so peak memory is that variant's alone: on CPU the
child's peak resident memory (getrusage ru_maxrss: loading included, which is
what decides an out-of-memory kill), on CUDA torch's peak allocation. The
child prints one `RESULT {json}` line; `run_child` returns it as a dict.

Variants (spec["variant"]):
  engine  TuneLab's own loop: core.train.trainer.Trainer on a model from core.models
  plain   a minimal PyTorch + peft loop: fp32, padded batches, full logits, torch AdamW
  trl     trl's SFTTrainer at its defaults (bf16 autocast + gradient checkpointing + fused AdamW), or with
          spec["expert"] set up as a skilled user would: no gradient checkpointing, BFD packing with
          padding-free batches, completion-only loss, bf16 autocast or fp32 as spec["bf16"] says
  idle    imports only (the framework's baseline memory)
On a GPU (--gpu in the benchmarks) the model is a random-init Llama of a
known shape, saved once as a local folder (gpu_model_folder) and passed as
spec["model"] / config.model, so nothing is downloaded.
Throughput is non-padding tokens per second over the steps after the first
(warm-up) step.
"""
from __future__ import annotations

import json
import os
import resource
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
os.environ.setdefault("TRANSFORMERS_VERBOSITY", "error")
os.environ.setdefault("HF_HUB_DISABLE_PROGRESS_BARS", "1")

IGNORE = -100
LORA = dict(r=8, lora_alpha=16, lora_dropout=0.05)  # the app's default dropout; rank 8 as in the brief

# Llama-architecture shapes for the --gpu runs (random init from a config, nothing downloaded).
GPU_MODELS = {
    "llama-1b": dict(hidden_size=2048, intermediate_size=5632, num_hidden_layers=22, num_attention_heads=32,
                     num_key_value_heads=4),   # TinyLlama-1.1B's shape
    "llama-7b": dict(hidden_size=4096, intermediate_size=11008, num_hidden_layers=32, num_attention_heads=32,
                     num_key_value_heads=32),  # Llama-2-7B's shape
    "tiny": dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                 num_key_value_heads=2),       # for --dry-run checks of the GPU code path on a CPU
}


# -- data ---------------------------------------------------------------------
def demo_examples(max_length: int = 512) -> list[dict]:
    """The built-in demo set's training split, tokenized by core.data.pipeline exactly as a run would."""
    from core.config import RunConfig
    from core.data.pipeline import prepare
    from core.data.tokenize import apply_template_choice
    from core.models import load_tokenizer

    config = RunConfig(max_length=max_length)
    tokenizer = load_tokenizer(config)
    apply_template_choice(tokenizer, config.chat_template)
    data = prepare(config, tokenizer)
    return [{"input_ids": list(e["input_ids"]), "labels": list(e["labels"])} for e in data.train]


def fixed_length_examples(n: int, length: int, trained_share: float = 0.5) -> list[dict]:
    """n examples of exactly `length` tokens (demo text, repeated), the last `trained_share` trained on.

    Every micro-batch then has the same shape, so a measured peak is the peak
    of that shape: what the planner is asked to predict.
    """
    stream = [t for e in demo_examples() for t in e["input_ids"]]
    while len(stream) < n * length:
        stream += stream
    out = []
    for i in range(n):
        ids = stream[i * length: (i + 1) * length]
        cut = int(length * (1 - trained_share))
        out.append({"input_ids": ids, "labels": [IGNORE] * cut + ids[cut:]})
    return out


def write_examples(examples: list[dict], folder: Path) -> str:
    path = Path(folder) / f"examples-{len(examples)}-{sum(len(e['input_ids']) for e in examples)}.json"
    path.write_text(json.dumps(examples))
    return str(path)


# -- child processes ------------------------------------------------------------
def run_child(spec: dict, timeout: float = 900, module: str = "bench.common") -> dict:
    """Run one variant in a fresh Python process (`python -m module child SPEC`); its RESULT dict (or {'error': ...})."""
    with tempfile.NamedTemporaryFile("w", suffix=".json", delete=False) as f:
        json.dump(spec, f)
    try:
        done = subprocess.run([sys.executable, "-m", module, "child", f.name], cwd=ROOT,
                              capture_output=True, text=True, timeout=timeout)
    except subprocess.TimeoutExpired:
        return {"error": f"timed out after {timeout:.0f} s"}
    finally:
        os.unlink(f.name)
    for line in reversed(done.stdout.splitlines()):
        if line.startswith("RESULT "):
            return json.loads(line[7:])
    return {"error": (done.stderr or done.stdout).strip().splitlines()[-1][:300] if (done.stderr or done.stdout).strip()
            else f"exit code {done.returncode}"}


def _rss() -> int:
    import psutil
    return psutil.Process().memory_info().rss


def _peak_rss() -> int:
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024  # Linux: KiB


class _Clock:
    """Per-step times and tokens; throughput over the steps after the first."""

    def __init__(self):
        self.marks: list[tuple[float, int]] = []
        self.start = time.perf_counter()

    def step(self, tokens: int) -> None:
        self.marks.append((time.perf_counter(), tokens))

    def result(self) -> dict:
        if len(self.marks) < 2:
            t = self.marks[-1][0] - self.start if self.marks else 0.0
            tok = sum(n for _, n in self.marks)
            return {"tokens_per_sec": tok / t if t else 0.0, "timed_steps": len(self.marks), "seconds": t}
        t = self.marks[-1][0] - self.marks[0][0]
        tok = sum(n for _, n in self.marks[1:])
        return {"tokens_per_sec": tok / t if t else 0.0, "timed_steps": len(self.marks) - 1, "seconds": t,
                "first_step_s": self.marks[0][0] - self.start}


def _device() -> str:
    import torch
    return "cuda" if torch.cuda.is_available() else "cpu"


def _child(spec: dict) -> dict:
    import torch
    base_rss = _rss()
    variant = spec["variant"]
    out = {"variant": variant, "label": spec.get("label", variant), "baseline_rss": base_rss}
    if variant == "make_model":
        return {**out, **_make_model(spec)}
    if variant == "idle":
        import peft  # noqa: F401  (what a training process has imported)
        import transformers  # noqa: F401

        from core.train import trainer  # noqa: F401
        out["rss"] = _rss()
        out["peak_bytes"] = _peak_rss()
        return out
    examples = json.loads(Path(spec["data"]).read_text()) if spec.get("data") else None
    if spec.get("threads"):
        torch.set_num_threads(int(spec["threads"]))
    if torch.cuda.is_available():
        torch.cuda.reset_peak_memory_stats()
    run = {"engine": _run_engine, "plain": _run_plain, "trl": _run_trl}[variant]
    out.update(run(spec, examples))
    out["threads"] = torch.get_num_threads()
    if torch.cuda.is_available():
        out["peak_bytes"] = torch.cuda.max_memory_allocated()
        out["device"] = torch.cuda.get_device_name(0)
    else:
        out["peak_bytes"] = _peak_rss()
        out["device"] = f"CPU ({os.cpu_count()} cores)"
    return out


def gpu_model_folder(name: str) -> str:
    """A random-init Llama of the named shape saved once as a model folder (bf16; nothing downloaded).

    Built in a child process directly on the GPU, so every variant (and QLoRA's
    4-bit loading) can load it like any other local model.
    """
    folder = Path(tempfile.gettempdir()) / "tunelab-bench-models" / name
    if not (folder / "config.json").exists():
        result = run_child({"variant": "make_model", "name": name, "folder": str(folder)}, timeout=1800)
        if "error" in result:
            raise RuntimeError(f"could not build {name}: {result['error']}")
    return str(folder)


def _make_model(spec: dict) -> dict:
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.config import RunConfig
    from core.models import load_tokenizer
    config = LlamaConfig(vocab_size=49152, max_position_embeddings=4096, tie_word_embeddings=False,
                         bos_token_id=1, eos_token_id=2, pad_token_id=2, **GPU_MODELS[spec["name"]])
    torch.manual_seed(0)
    with torch.device(_device()):
        model = LlamaForCausalLM(config).to(torch.bfloat16 if _device() == "cuda" else torch.float32)
    folder = Path(spec["folder"])
    tmp = folder.with_name(folder.name + ".tmp")
    model.save_pretrained(tmp)
    load_tokenizer(RunConfig()).save_pretrained(tmp)  # the embedded model's tokenizer: same vocabulary size
    tmp.rename(folder)
    return {"params": sum(p.numel() for p in model.parameters())}


def _model_path(spec: dict) -> str:
    from core.config import RunConfig
    from core.models import resolve
    return spec.get("model") or resolve(RunConfig().model)


def _run_engine(spec: dict, examples: list[dict]) -> dict:
    from core import hardware
    from core.config import RunConfig
    from core.events import EventLog
    from core.models import count_parameters, load_base, load_tokenizer, prepare_for_training
    from core.plan import precision as precisions
    from core.train.trainer import Trainer

    config = RunConfig().replace(**spec.get("config", {}))
    steps = spec["steps"]
    config = config.replace(max_steps=steps, eval_steps=10**6, save_steps=10**6, logging_steps=10**6,
                            warmup_ratio=0.0)
    hardware.set_cpu_threads()  # what core.train.job does before a run; the trainer then tunes
    tokenizer = load_tokenizer(config)
    probe_start = time.perf_counter()
    decision = precisions.decide(config)  # what core.train.job does: measured (cached), then load for it
    if spec.get("mode"):  # a control row: the engine forced into one precision mode
        decision = precisions.Decision(spec["mode"], decision.reason, decision.speed, decision.measured)
    probe_seconds = time.perf_counter() - probe_start
    base = load_base(config, dtype=decision.weights_dtype)
    precisions.cast_linears(base, decision)
    loaded_rss = _rss()
    model = prepare_for_training(base, tokenizer, config)
    folder = Path(tempfile.mkdtemp(prefix="tunelab-bench-"))
    trainer = Trainer(model, tokenizer, examples, [], config, EventLog(folder / "events.jsonl"), folder,
                      threading.Event(), precision=decision)
    clock, real = _Clock(), trainer._optimizer_step

    def timed(group, window):
        loss = real(group, window)
        clock.step(sum(len(e["input_ids"]) for b in group for e in b))
        return loss
    trainer._optimizer_step = timed
    clock.start = time.perf_counter()
    trainer.train()
    trainable, total = count_parameters(model)
    return {**clock.result(), "loaded_rss": loaded_rss, "trainable_params": trainable, "total_params": total,
            "kernels": trainer.kernels, "precision": decision.mode, "precision_reason": str(decision.reason),
            "precision_speed": decision.speed, "probe_seconds": probe_seconds}


def _padded(batch: list[dict], pad_id: int, device: str):
    import torch
    width = max(len(e["input_ids"]) for e in batch)
    ids = torch.tensor([e["input_ids"] + [pad_id] * (width - len(e["input_ids"])) for e in batch], device=device)
    mask = torch.tensor([[1] * len(e["input_ids"]) + [0] * (width - len(e["input_ids"])) for e in batch], device=device)
    labels = torch.tensor([e["labels"] + [IGNORE] * (width - len(e["labels"])) for e in batch], device=device)
    return ids, mask, labels


def _run_plain(spec: dict, examples: list[dict]) -> dict:
    """The textbook loop: fp32 (or bf16 autocast when asked), padded batches, full logits, torch AdamW."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    from core.config import RunConfig
    from core.train.batches import micro_batches

    device = _device()
    batch_size, steps = spec.get("batch_size", 4), spec["steps"]
    model = AutoModelForCausalLM.from_pretrained(_model_path(spec), dtype=torch.float32).to(device)
    loaded_rss = _rss()
    if spec.get("method", "lora") == "lora":
        model = get_peft_model(model, LoraConfig(target_modules="all-linear", task_type="CAUSAL_LM", **LORA))
    if spec.get("gradient_checkpointing"):
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    optimizer = torch.optim.AdamW([p for p in model.parameters() if p.requires_grad], lr=2e-4)
    autocast = torch.autocast(device, dtype=torch.bfloat16, enabled=bool(spec.get("bf16_autocast")))
    clock = _Clock()
    batches = micro_batches(examples, RunConfig(batch_size=batch_size), 0)
    for i in range(steps):
        batch = batches[i % len(batches)]
        ids, mask, labels = _padded(batch, 2, device)
        with autocast:
            loss = model(input_ids=ids, attention_mask=mask, labels=labels).loss
        loss.backward()
        optimizer.step()
        optimizer.zero_grad(set_to_none=True)
        clock.step(int(mask.sum()))
    return {**clock.result(), "loaded_rss": loaded_rss}


def _trl_args(spec: dict, output_dir: str):
    """SFTConfig at trl's defaults, or (spec["expert"]) as a skilled user sets it up for this machine."""
    import torch
    from trl import SFTConfig

    common = dict(output_dir=output_dir, max_steps=spec["steps"], per_device_train_batch_size=spec.get("batch_size", 4),
                  report_to="none", save_strategy="no", use_cpu=not torch.cuda.is_available())
    if not spec.get("expert"):
        return SFTConfig(max_length=1024, **common)
    bf16 = bool(spec.get("bf16"))
    return SFTConfig(
        max_length=spec.get("max_length", 512),   # the engine's examples are cut at 512 tokens too
        packing=True, packing_strategy="bfd",     # best-fit decreasing packing: padding-free batches
        padding_free=True, completion_only_loss=True,
        gradient_checkpointing=False,             # memory is not short here: recomputing costs ~30%
        bf16=bf16, fp16=False,                    # the faster of the two on this machine (measured by the caller)
        dataloader_num_workers=0, logging_steps=10**6, disable_tqdm=True,
        **common)


def _run_trl(spec: dict, examples: list[dict]) -> dict:
    """trl's SFTTrainer with its defaults (only size, output and reporting set), or an expert's set-up."""
    import torch
    from datasets import Dataset
    from peft import LoraConfig
    from transformers import TrainerCallback
    from trl import SFTTrainer

    from core.config import RunConfig
    from core.models import load_tokenizer

    tokenizer = load_tokenizer(RunConfig())
    args = _trl_args(spec, tempfile.mkdtemp(prefix="tunelab-trl-"))
    if spec.get("expert"):  # the trained part as trl's own completion mask: the same answers-only loss as the engine
        rows = [{"input_ids": e["input_ids"], "completion_mask": [int(x != IGNORE) for x in e["labels"]]}
                for e in examples]
    else:
        rows = [{"input_ids": e["input_ids"]} for e in examples]
    dataset = Dataset.from_list(rows)
    clock = _Clock()
    seen: list[int] = []

    class Steps(TrainerCallback):
        def on_step_end(self, *a, **k):
            clock.step(0)

    model = spec.get("model") or _model_path(spec)
    if spec.get("expert"):  # fp32 weights: trl's bf16 flag is autocast over them, as Trainer does it
        from transformers import AutoModelForCausalLM
        model = AutoModelForCausalLM.from_pretrained(model, dtype=torch.float32)
    trainer = SFTTrainer(model=model, args=args, train_dataset=dataset, processing_class=tokenizer,
                         peft_config=LoraConfig(target_modules="all-linear", task_type="CAUSAL_LM", **LORA),
                         callbacks=[Steps()])
    collate = trainer.data_collator

    def counting(features):
        batch = collate(features)
        if "attention_mask" in batch:
            seen.append(int(batch["attention_mask"].sum()))
        elif "position_ids" in batch:  # padding-free: one flat row, every token real
            seen.append(int(batch["input_ids"].numel()))
        else:
            seen.append(int((batch["input_ids"] != tokenizer.pad_token_id).sum()))
        return batch
    trainer.data_collator = counting
    if not spec.get("expert"):  # the defaults row trains on the examples as they are (no re-tokenizing)
        trainer.train_dataset = dataset
    if hasattr(trainer, "_train_dataloader"):
        trainer._train_dataloader = None
    clock.start = time.perf_counter()
    trainer.train()
    # the dataloader may fetch a batch ahead: step i trained on the i-th collated batch
    clock.marks = [(t, seen[i] if i < len(seen) else 0) for i, (t, _) in enumerate(clock.marks)]
    return {**clock.result(), "bf16": args.bf16, "gradient_checkpointing": args.gradient_checkpointing,
            "packing": args.packing, "padding_free": args.padding_free, "completion_only_loss": args.completion_only_loss,
            "optim": str(args.optim.value if hasattr(args.optim, "value") else args.optim)}


# -- output -------------------------------------------------------------------
def gb(n: float | None) -> str:
    return "n/a" if n is None else f"{n / 1e9:.2f} GB"


def markdown_table(header: list[str], rows: list[list]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(str(c) for c in row) + " |" for row in rows]
    return "\n".join(lines)


def update_results(section: str, text: str) -> None:
    """Replace (or add) `## section` in bench/RESULTS.md with `text`."""
    path = ROOT / "bench" / "RESULTS.md"
    current = path.read_text() if path.exists() else "# TuneLab benchmark results\n"
    head = f"## {section}"
    parts = current.split("\n## ")
    kept = [parts[0]] + ["## " + p for p in parts[1:] if not ("## " + p).startswith(head)]
    new = "\n".join(s.rstrip("\n") + "\n" for s in kept) + f"\n{head}\n\n{text.strip()}\n"
    path.write_text(new)


def has_cuda() -> bool:
    import torch
    return torch.cuda.is_available()


if __name__ == "__main__" and len(sys.argv) == 3 and sys.argv[1] == "child":
    spec = json.loads(Path(sys.argv[2]).read_text())
    try:
        result = _child(spec)
    except Exception as err:  # reported, not raised: one variant failing must not hide the others
        import traceback
        traceback.print_exc()
        result = {"variant": spec.get("variant"), "label": spec.get("label"), "error": f"{type(err).__name__}: {str(err)[:300]}"}
    print("RESULT " + json.dumps(result), flush=True)
