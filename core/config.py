"""RunConfig: the one description of a fine-tuning run.

Presets, the UI form, the CLI (`--set key=value`) and each run's saved
`config.yaml` are all this same dataclass. Every field carries a help text
(reused as the form's tooltip), the section it belongs to, and, where the
value is one of a few, its choices. `validate()` explains problems in plain
words; YAML loading rejects unknown keys by name.
"""
from __future__ import annotations

import dataclasses
import difflib
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
DEFAULT_DATASET = "builtin:demo"

METHODS = ("lora", "qlora", "full")
QUANTIZATIONS = ("none", "8bit", "4bit")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "qa", "markers", "text")


def _f(default: Any, section: str, help: str, choices: tuple | None = None, **kw) -> Any:
    """A dataclass field with its help text, form section and allowed choices."""
    meta = {"help": help, "section": section, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class RunConfig:
    # --- model -----------------------------------------------------------
    model: str = _f(DEFAULT_MODEL, "model", "Which model to fine-tune: the embedded default, a Hugging Face Hub id (e.g. Qwen/Qwen2.5-0.5B-Instruct) or a local folder.")
    method: str = _f("lora", "model", "lora: train small adapter matrices (fast, small files). qlora: the same on a 4-bit model (fits big models on small GPUs). full: train every weight (most memory).", METHODS)
    trust_remote_code: bool = _f(False, "model", "Run Python code shipped with the model. Only turn on for models you trust: the code runs on this machine.")
    # --- quantization ------------------------------------------------------
    quantization: str = _f("none", "quantization", "Load the base model in 4-bit or 8-bit (bitsandbytes) to save memory. QLoRA uses 4-bit.", QUANTIZATIONS)
    quant_type: str = _f("nf4", "quantization", "4-bit number format: nf4 (best for weights) or fp4.", ("nf4", "fp4"))
    double_quant: bool = _f(True, "quantization", "Quantize the quantization constants too: saves ~0.4 bits per weight.")
    compute_dtype: str = _f("auto", "quantization", "Precision used for computing with 4-bit weights; auto picks bf16/fp16 on a GPU and fp32 on a CPU.", PRECISIONS)
    # --- LoRA --------------------------------------------------------------
    lora_r: int = _f(16, "lora", "LoRA rank: size of the adapter. 8-64 is typical; bigger learns more but uses more memory.")
    lora_alpha: int = _f(32, "lora", "LoRA scaling (alpha). The adapter's effect is alpha / r; often 2 x r.")
    lora_dropout: float = _f(0.05, "lora", "Dropout on the adapter input, 0 to 0.5. Helps against overfitting on small data.")
    target_modules: str = _f("all-linear", "lora", "Layers that get adapters: 'all-linear' (every linear layer but the output head) or names separated by commas, e.g. q_proj,v_proj.")
    lora_bias: str = _f("none", "lora", "Which biases to train alongside the adapter.", ("none", "lora_only", "all"))
    loraplus_ratio: float = _f(0.0, "lora", "LoRA+: train the adapter's second matrix (B) this many times faster than the first (A); 4-16 learns faster. 0 = off.")
    # --- data --------------------------------------------------------------
    dataset: str = _f(DEFAULT_DATASET, "data", "Training data: builtin:demo, a Hub dataset id, or a file (JSON, JSONL, CSV, TSV, Parquet, TXT).")
    dataset_config: str = _f("", "data", "Hub dataset configuration (subset) name, if it has several.")
    dataset_split: str = _f("train", "data", "Split to train on, slices allowed: train, train[:10%], train[:500].")
    data_format: str = _f("auto", "data", "How rows are laid out; auto detects it.", DATA_FORMATS)
    prompt_column: str = _f("", "data", "Column holding the question (for question/answer data); empty = detect.")
    response_column: str = _f("", "data", "Column holding the answer (for question/answer data); empty = detect.")
    user_marker: str = _f("<usr>", "data", "Marker that starts a user turn in single-text data.")
    bot_marker: str = _f("<bot>", "data", "Marker that starts an assistant turn in single-text data.")
    chat_template: str = _f("auto", "data", "Chat template: auto uses the model's own (or a plain one if it has none); chatml adds <|im_start|> tokens.", ("auto", "chatml", "plain"))
    system_prompt: str = _f("", "data", "System message added to every example that has none (empty = none).")
    max_length: int = _f(512, "data", "Longest example in tokens; longer ones are cut.")
    validation_share: float = _f(0.1, "data", "Share of rows held back to measure validation loss (0 = none).")
    subset_share: float = _f(1.0, "data", "Use only this share of the rows (1 = all); handy for a quick try.")
    train_on: str = _f("answers", "data", "answers: learn only the assistant's replies (recommended). all: learn the whole text.", ("answers", "all"))
    packing: bool = _f(True, "data", "Pack short examples together without padding: faster, same result.")
    clean_text: bool = _f(True, "data", "Strip surrounding whitespace and control characters.")
    drop_duplicates: bool = _f(True, "data", "Drop rows that are exact duplicates.")
    min_chars: int = _f(1, "data", "Drop examples whose answer is shorter than this many characters.")
    max_chars: int = _f(0, "data", "Drop examples longer than this many characters (0 = no limit).")
    korean_stopwords: bool = _f(False, "data", "Remove common Korean stopwords from the text (for users who want it).")
    shuffle: bool = _f(True, "data", "Shuffle rows (with the seed) before splitting.")
    # --- training ------------------------------------------------------------
    epochs: float = _f(3.0, "training", "Passes over the data. Ignored when max steps is set.")
    max_steps: int = _f(0, "training", "Stop after this many optimizer steps (0 = use epochs).")
    batch_size: int = _f(4, "training", "Examples per forward pass (micro-batch). Lower it if memory runs out.")
    grad_accum: int = _f(1, "training", "Micro-batches per optimizer step. Effective batch = batch size x this.")
    learning_rate: float = _f(2e-4, "training", "Step size. LoRA: 1e-4 to 1e-3. Full fine-tuning: 1e-5 to 5e-5.")
    scheduler: str = _f("cosine", "training", "How the learning rate changes over the run.", SCHEDULERS)
    warmup_ratio: float = _f(0.03, "training", "Share of steps spent ramping the learning rate up from 0.")
    weight_decay: float = _f(0.0, "training", "Weight decay (L2-like regularisation).")
    max_grad_norm: float = _f(1.0, "training", "Clip gradients to this norm (0 = off). 0.3 is the QLoRA recipe.")
    optimizer: str = _f("adamw_torch", "training", "adamw_torch: standard. adamw_8bit / paged_*: bitsandbytes optimizers that save memory.", OPTIMIZERS)
    gradient_checkpointing: bool = _f(False, "training", "Recompute activations instead of storing them: much less memory, ~30% slower.")
    precision: str = _f("auto", "training", "auto: bf16 on GPUs that support it, else fp16 on GPU, fp32 on CPU.", PRECISIONS)
    seed: int = _f(42, "training", "Random seed, for repeatable runs.")
    logging_steps: int = _f(1, "training", "Log loss every N optimizer steps.")
    eval_steps: int = _f(0, "training", "Measure validation loss and ask the probe prompts every N steps (0 = about 5 times per run).")
    save_steps: int = _f(0, "training", "Save a resumable checkpoint every N steps (0 = at each evaluation).")
    oom_retry: bool = _f(True, "training", "If memory runs out, retry with half the batch and double accumulation (same effective batch).")
    probe_prompts: list = _f([], "training", "A few questions the model answers at each evaluation, so you can watch it learn.")
    # --- output ------------------------------------------------------------
    run_name: str = _f("", "output", "Name of the run folder (letters, digits, - and _). Empty = made from the time.")
    report_to: str = _f("none", "output", "Also log to an experiment tracker (needs it installed).", ("none", "tensorboard", "wandb"))

    # ------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_info(cls, name: str) -> dict:
        return dict(_FIELDS[name].metadata)

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> "RunConfig":
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown))
        config = cls()
        for key, value in data.items():
            setattr(config, key, coerce(key, value))
        return config

    def replace(self, **changes) -> "RunConfig":
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

    @classmethod
    def load_yaml(cls, path: str | Path) -> "RunConfig":
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(f"Config file not found: {path}") from None
        except yaml.YAMLError as err:
            raise ConfigError(f"{path} is not valid YAML: {err}") from None
        if not isinstance(data, dict):
            raise ConfigError(f"{path} must hold 'key: value' lines, not a {type(data).__name__}.")
        return cls.from_dict(data)

    def with_overrides(self, pairs: list[str]) -> "RunConfig":
        """Apply CLI-style `key=value` overrides."""
        changes = {}
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(f"'{pair}' should look like key=value, e.g. max_steps=10.")
            key, value = pair.split("=", 1)
            changes[key.strip()] = yaml.safe_load(value) if value.strip() else ""
        return self.replace(**changes)

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora")

    @property
    def effective_quantization(self) -> str:
        return "4bit" if self.method == "qlora" and self.quantization == "none" else self.quantization

    def validate(self) -> list[str]:
        """Plain-language problems with this config; empty when it is fine."""
        from core.validation import problems
        return problems(self)


class ConfigError(ValueError):
    """A config the user wrote that cannot be used; the message says why."""


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def _unknown_key_message(unknown: list[str]) -> str:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(_FIELDS), n=1)
        parts.append(f"'{key}'" + (f" (did you mean '{close[0]}'?)" if close else ""))
    return "Unknown setting " + ", ".join(parts) + "."


def coerce(key: str, value: Any) -> Any:
    """Convert a value (from YAML, the CLI or a form) to the field's type, or explain."""
    if key not in _FIELDS:
        raise ConfigError(_unknown_key_message([key]))
    default = getattr(RunConfig(), key)
    kind = type(default)
    if value is None:
        return default
    try:
        if kind is bool:
            if isinstance(value, str):
                low = value.strip().lower()
                if low not in ("true", "false", "yes", "no", "1", "0", "on", "off"):
                    raise ValueError
                return low in ("true", "yes", "1", "on")
            return bool(value)
        if kind is int:
            if isinstance(value, float) and not value.is_integer():
                raise ValueError
            if isinstance(value, bool):
                raise ValueError
            return int(float(value)) if isinstance(value, str) else int(value)
        if kind is float:
            if isinstance(value, bool):
                raise ValueError
            return float(value)
        if kind is list:
            if isinstance(value, str):
                return [line.strip() for line in value.splitlines() if line.strip()]
            return [str(v) for v in value]
        return str(value)
    except (TypeError, ValueError):
        raise ConfigError(f"'{key}' must be {_kind_words(kind)}, not {value!r}.") from None


def _kind_words(kind: type) -> str:
    return {bool: "true or false", int: "a whole number", float: "a number", list: "a list"}.get(kind, "text")
