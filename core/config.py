"""RunConfig: the one description of a fine-tuning run.

Presets, the UI form, the CLI (`--set key=value`) and each run's saved
`config.yaml` are all this same dataclass. Every field carries the form
section it belongs to and, where the value is one of a few, its choices; its
label and help text (the form's tooltip, the CLI's help) are in the text
catalogue, in every language (`field_info`). `validate()` explains, in plain
words, what is wrong on any machine (core.plan.checks adds what depends on
this one); YAML loading rejects unknown keys by name. Every such sentence is a
catalogue message (core/catalog/<lang>/config.yaml), so the form shows it in
its own language and the CLI prints the English.
"""
from __future__ import annotations

import dataclasses
import difflib
import math
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml

from core.errors import ConfigError
from core.messages import DEFAULT_LANG, Msg, msg, text

DEFAULT_MODEL = "embedded:smollm2-135m-instruct"
DEFAULT_DATASET = "builtin:demo"

METHODS = ("lora", "qlora", "full")
QUANTIZATIONS = ("none", "8bit", "4bit")
PRECISIONS = ("auto", "fp32", "fp16", "bf16")
OPTIMIZERS = ("adamw_torch", "adamw_8bit", "paged_adamw_8bit", "paged_adamw_32bit", "sgd")
SCHEDULERS = ("cosine", "linear", "constant", "constant_with_warmup")
RUN_NAME_PATTERN = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]{0,79}$")
DATA_FORMATS = ("auto", "messages", "sharegpt", "alpaca", "qa", "markers", "text", "preference")
DISTRIBUTED = ("ddp", "fsdp", "deepspeed")
OBJECTIVES = ("sft", "dpo")  # sft: learn the answers; dpo: prefer chosen over rejected (core/train/preference.py)


def _f(default: Any, section: str, choices: tuple | None = None, **kw) -> Any:
    """A dataclass field with its form section and allowed choices.

    Its label and help text live in the catalogue (core/catalog/<lang>/fields.yaml) under
    field.<name>.label / field.<name>.help, so the Korean form has Korean tooltips too.
    """
    meta = {"section": section, "choices": choices}
    if isinstance(default, list):
        return field(default_factory=lambda: list(default), metadata=meta, **kw)
    return field(default=default, metadata=meta, **kw)


@dataclass
class RunConfig:
    # --- model -----------------------------------------------------------
    model: str = _f(DEFAULT_MODEL, "model")
    method: str = _f("lora", "model", METHODS)
    trust_remote_code: bool = _f(False, "model")
    # --- quantization ------------------------------------------------------
    quantization: str = _f("none", "quantization", QUANTIZATIONS)
    quant_type: str = _f("nf4", "quantization", ("nf4", "fp4"))
    double_quant: bool = _f(True, "quantization")
    compute_dtype: str = _f("auto", "quantization", PRECISIONS)
    # --- LoRA --------------------------------------------------------------
    lora_r: int = _f(16, "lora")
    lora_alpha: int = _f(32, "lora")
    lora_dropout: float = _f(0.05, "lora")
    target_modules: str = _f("all-linear", "lora")
    lora_bias: str = _f("none", "lora", ("none", "lora_only", "all"))
    loraplus_ratio: float = _f(0.0, "lora")
    # --- data --------------------------------------------------------------
    dataset: str = _f(DEFAULT_DATASET, "data")
    dataset_config: str = _f("", "data")
    dataset_split: str = _f("train", "data")
    data_format: str = _f("auto", "data", DATA_FORMATS)
    prompt_column: str = _f("", "data")
    response_column: str = _f("", "data")
    user_marker: str = _f("<usr>", "data")
    bot_marker: str = _f("<bot>", "data")
    chat_template: str = _f("auto", "data", ("auto", "chatml", "plain"))
    system_prompt: str = _f("", "data")
    max_length: int = _f(512, "data")
    validation_share: float = _f(0.1, "data")
    subset_share: float = _f(1.0, "data")
    train_on: str = _f("answers", "data", ("answers", "all"))
    packing: bool = _f(True, "data")
    clean_text: bool = _f(True, "data")
    drop_duplicates: bool = _f(True, "data")
    min_chars: int = _f(1, "data")
    max_chars: int = _f(0, "data")
    korean_stopwords: bool = _f(False, "data")
    shuffle: bool = _f(True, "data")
    # --- training ------------------------------------------------------------
    epochs: float = _f(3.0, "training")
    max_steps: int = _f(0, "training")
    batch_size: int = _f(4, "training")
    grad_accum: int = _f(1, "training")
    learning_rate: float = _f(2e-4, "training")
    scheduler: str = _f("cosine", "training", SCHEDULERS)
    warmup_ratio: float = _f(0.03, "training")
    weight_decay: float = _f(0.0, "training")
    max_grad_norm: float = _f(1.0, "training")
    optimizer: str = _f("adamw_torch", "training", OPTIMIZERS)
    gradient_checkpointing: bool = _f(False, "training")
    precision: str = _f("auto", "training", PRECISIONS)
    seed: int = _f(42, "training")
    logging_steps: int = _f(1, "training")
    eval_steps: int = _f(0, "training")
    save_steps: int = _f(0, "training")
    oom_retry: bool = _f(True, "training")
    stop_on_collapse: bool = _f(False, "training")  # a sudden loss collapse stops the run (else: a warning)
    probe_prompts: list = _f([], "training")
    # --- preference training (core/train/preference.py): DPO from a finished run's adapter ----------
    objective: str = _f("sft", "training", OBJECTIVES)
    from_run: str = _f("", "training")       # the run whose adapter a DPO run starts from (and is compared to)
    dpo_beta: float = _f(0.1, "training")     # how far DPO may move from the starting model: higher = closer
    dpo_sft_weight: float = _f(1.0, "training")  # DPO + this x the chosen answers' NLL (RPO): 0 = pure DPO
    # --- several GPUs / machines (core/train/distributed.py: accelerate launch) ---------
    num_processes: int = _f(1, "training")       # per machine; 1 = in the app process, 0 = one per visible GPU
    distributed: str = _f("ddp", "training", DISTRIBUTED)
    deepspeed_stage: int = _f(2, "training")
    deepspeed_offload: bool = _f(False, "training")
    num_machines: int = _f(1, "training")
    machine_rank: int = _f(0, "training")
    main_process_ip: str = _f("", "training")
    main_process_port: int = _f(0, "training")   # 0: a free port on this machine (one machine only)
    # --- output ------------------------------------------------------------
    run_name: str = _f("", "output")
    report_to: str = _f("none", "output", ("none", "tensorboard", "wandb", "mlflow", "trackio"))  # core/train/trackers.py

    # ------------------------------------------------------------------------
    @classmethod
    def field_names(cls) -> list[str]:
        return [f.name for f in dataclasses.fields(cls)]

    @classmethod
    def field_info(cls, name: str, lang: str = DEFAULT_LANG) -> dict:
        """The field's section, choices, label and help text (in `lang`)."""
        return {**_FIELDS[name].metadata, "label": text(f"field.{name}.label", lang),
                "help": text(f"field.{name}.help", lang)}

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)

    @classmethod
    def from_dict(cls, data: dict) -> RunConfig:
        unknown = [k for k in data if k not in _FIELDS]
        if unknown:
            raise ConfigError(_unknown_key_message(unknown))
        config = cls()
        for key, value in data.items():
            setattr(config, key, coerce(key, value))
        return config

    def replace(self, **changes) -> RunConfig:
        return RunConfig.from_dict({**self.to_dict(), **changes})

    def save_yaml(self, path: str | Path) -> None:
        Path(path).write_text(yaml.safe_dump(self.to_dict(), sort_keys=False, allow_unicode=True), encoding="utf-8")

    @classmethod
    def load_yaml(cls, path: str | Path) -> RunConfig:
        try:
            data = yaml.safe_load(Path(path).read_text(encoding="utf-8")) or {}
        except FileNotFoundError:
            raise ConfigError(msg("config.file_not_found", path=path)) from None
        except yaml.YAMLError as err:
            raise ConfigError(msg("config.bad_yaml", path=path, error=str(err))) from None
        if not isinstance(data, dict):
            raise ConfigError(msg("config.not_a_mapping", path=path, kind=type(data).__name__))
        return cls.from_dict(data)

    def with_overrides(self, pairs: list[str]) -> RunConfig:
        """Apply CLI-style `key=value` overrides."""
        changes = {}
        for pair in pairs:
            if "=" not in pair:
                raise ConfigError(msg("config.bad_override", pair=pair))
            key, value = pair.split("=", 1)
            changes[key.strip()] = override_value(key.strip(), value)
        return self.replace(**changes)

    @property
    def uses_lora(self) -> bool:
        return self.method in ("lora", "qlora")

    @property
    def effective_quantization(self) -> str:
        return "4bit" if self.method == "qlora" and self.quantization == "none" else self.quantization

    def validate(self) -> list[Msg]:
        """Plain-language problems with this config that hold on any machine; empty when it is fine.

        What depends on the hardware (bf16 on this CPU, bitsandbytes installed) is
        checked by core.plan.checks.check, which calls this first. A NaN, an infinity or
        an absurdly large number is refused by name first: every range check below
        would let NaN through (each comparison with NaN is False).
        """
        broken = _number_problems(self)
        if broken:
            return broken
        return _choice_problems(self) + _range_problems(self) + _combination_problems(self)


_FIELDS = {f.name: f for f in dataclasses.fields(RunConfig)}


def _unknown_key_message(unknown: list[str]) -> Msg:
    parts = []
    for key in unknown:
        close = difflib.get_close_matches(key, list(_FIELDS), n=1)
        parts.append(msg("config.unknown_key_close", name=key, close=close[0]) if close else msg("config.unknown_key", name=key))
    return msg("config.unknown_setting", keys=parts)


def coerce(key: str, value: Any) -> Any:
    """Convert a value (from YAML, the CLI or a form) to the field's type, or explain."""
    if key not in _FIELDS:
        raise ConfigError(_unknown_key_message([key]))
    default = getattr(RunConfig(), key)
    kind = type(default)
    if value is None:
        return default
    try:
        return _converted(kind, value)
    except OverflowError:  # int('1e400') is int(inf): a plain refusal, not a traceback
        raise ConfigError(msg("config.number_overflow", name=key, value=str(value)[:40])) from None
    except (TypeError, ValueError):
        raise ConfigError(msg("config.wrong_type", name=key, kind=_kind_words(kind), value=repr(value))) from None


def _converted(kind: type, value: Any) -> Any:
    """`value` as a `kind` (the field's type); ValueError/TypeError when it is not one."""
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


def override_value(key: str, value: str) -> Any:
    """A `--set key=value` value typed by the field: text fields keep the text exactly as written.

    Only numbers, switches and lists are read as YAML, so `system_prompt=Answer: briefly`,
    `user_marker=### Human:` and `prompt_column=yes` stay the strings the user typed.
    """
    kind = type(getattr(RunConfig(), key)) if key in _FIELDS else str
    if kind is str:
        return value
    if not value.strip():
        return ""
    if kind is list and not value.lstrip().startswith("["):
        return value  # one probe prompt per line
    try:
        return yaml.safe_load(value)
    except yaml.YAMLError:
        return value  # coerce() names the field and the expected kind


# Bounds that no real run comes near; past them a number is a typo or an attack (overflow, endless runs).
NUMBER_LIMITS = {"epochs": 10_000, "max_steps": 100_000_000, "batch_size": 65_536, "grad_accum": 65_536,
                 "lora_alpha": 100_000, "weight_decay": 10.0, "max_grad_norm": 1e6, "seed": 2**32 - 1,
                 "logging_steps": 100_000_000, "eval_steps": 100_000_000, "save_steps": 100_000_000,
                 "min_chars": 100_000_000, "max_chars": 100_000_000}


def _number_problems(c: RunConfig) -> list[Msg]:
    """Each numeric field that is NaN, infinite or past its bound, by name."""
    out = []
    for name in c.field_names():
        value = getattr(c, name)
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            continue
        if not math.isfinite(value):
            out.append(msg("config.not_finite", name=name, value=str(value)))
        elif name in NUMBER_LIMITS and abs(value) > NUMBER_LIMITS[name]:
            out.append(msg("config.number_too_big", name=name, value=value, limit=f"{NUMBER_LIMITS[name]:,}"))
    return out


def _kind_words(kind: type) -> Msg:
    names = {bool: "bool", int: "int", float: "float", list: "list"}
    return msg(f"config.kind.{names.get(kind, 'text')}")


# --- checks that hold on any machine ------------------------------------------------
def _choice_problems(c: RunConfig) -> list[Msg]:
    out = []
    for name in c.field_names():
        choices = c.field_info(name)["choices"]
        value = getattr(c, name)
        if choices and value not in choices:
            out.append(msg("config.not_a_choice", name=name, value=value, choices=list(choices)))
    return out


def _range_problems(c: RunConfig) -> list[Msg]:
    # (failed, catalogue key, its parameters): the message is built only for what failed
    checks = [
        (not c.model.strip(), "config.no_model", {}),
        (not c.dataset.strip(), "config.no_dataset", {}),
        (c.lora_r < 1 or c.lora_r > 1024, "config.lora_r_range", {"value": c.lora_r}),
        (c.lora_alpha < 1, "config.lora_alpha_range", {"value": c.lora_alpha}),
        (not 0 <= c.lora_dropout < 1, "config.lora_dropout_range", {"value": c.lora_dropout}),
        (not 0 <= c.loraplus_ratio <= 64, "config.loraplus_ratio_range", {"value": c.loraplus_ratio}),
        (c.max_length < 16 or c.max_length > 131072, "config.max_length_range", {"value": c.max_length}),
        (not 0 <= c.validation_share < 1, "config.validation_share_range", {"value": c.validation_share}),
        (not 0 < c.subset_share <= 1, "config.subset_share_range", {"value": c.subset_share}),
        (c.epochs <= 0 and c.max_steps <= 0, "config.no_length", {}),
        (c.max_steps < 0, "config.max_steps_negative", {"value": c.max_steps}),
        (c.batch_size < 1, "config.batch_size_range", {"value": c.batch_size}),
        (c.grad_accum < 1, "config.grad_accum_range", {"value": c.grad_accum}),
        (not 0 < c.learning_rate < 1, "config.learning_rate_range", {"value": c.learning_rate}),
        (not 0 <= c.warmup_ratio < 1, "config.warmup_ratio_range", {"value": c.warmup_ratio}),
        (c.weight_decay < 0, "config.weight_decay_negative", {"value": c.weight_decay}),
        (c.max_grad_norm < 0, "config.max_grad_norm_negative", {"value": c.max_grad_norm}),
        (c.logging_steps < 1, "config.logging_steps_range", {"value": c.logging_steps}),
        (c.eval_steps < 0 or c.save_steps < 0, "config.eval_save_steps_negative", {}),
        (c.min_chars < 0 or c.max_chars < 0, "config.length_filters_negative", {}),
        (bool(c.run_name) and not RUN_NAME_PATTERN.match(c.run_name), "config.bad_run_name", {"name": c.run_name}),
        (bool(c.from_run) and not RUN_NAME_PATTERN.match(c.from_run), "config.bad_run_name", {"name": c.from_run}),
        (not 0 < c.dpo_beta <= 10, "preference.beta_range", {"value": c.dpo_beta}),
        (not 0 <= c.dpo_sft_weight <= 100, "preference.sft_weight_range", {"value": c.dpo_sft_weight}),
    ]
    return [msg(key, **params) for failed, key, params in checks if failed]


def _combination_problems(c: RunConfig) -> list[Msg]:
    out = []
    if c.method == "full" and c.quantization != "none":
        out.append(msg("config.full_quantized"))
    if c.method == "qlora" and c.quantization == "8bit":
        out.append(msg("config.qlora_8bit"))
    return out + _distributed_problems(c) + _preference_problems(c)


def _preference_problems(c: RunConfig) -> list[Msg]:
    """DPO trains a LoRA adapter in one process (the reference is the starting adapter, see core/train/dpo.py)."""
    dpo = c.objective == "dpo"
    checks = [
        (dpo and not c.uses_lora, "preference.needs_lora", {"method": c.method}),
        (dpo and (c.num_processes != 1 or c.num_machines > 1), "preference.one_process", {}),
        (not dpo and bool(c.from_run), "preference.from_run_needs_dpo", {"run": c.from_run}),
    ]
    return [msg(key, **params) for failed, key, params in checks if failed]


def _distributed_problems(c: RunConfig) -> list[Msg]:
    """Several processes or machines: what accelerate cannot run, whatever the hardware."""
    several = c.num_processes != 1 or c.num_machines > 1
    checks = [
        (c.num_processes < 0 or c.num_processes > 1024, "config.num_processes_range", {"value": c.num_processes}),
        (c.num_machines < 1 or c.num_machines > 1024, "config.num_machines_range", {"value": c.num_machines}),
        (not 0 <= c.machine_rank < max(1, c.num_machines), "config.machine_rank_range",
         {"value": c.machine_rank, "machines": c.num_machines}),
        (c.num_machines > 1 and not c.main_process_ip.strip(), "config.needs_main_ip", {}),
        (c.num_machines > 1 and c.main_process_port == 0, "config.needs_main_port", {}),
        (not 0 <= c.main_process_port <= 65535, "config.main_port_range", {"value": c.main_process_port}),
        (c.deepspeed_stage not in (2, 3), "config.deepspeed_stage_range", {"value": c.deepspeed_stage}),
        # bitsandbytes' 4/8-bit weights can't be sharded as we load them: each rank holds a whole quantized copy
        (several and c.effective_quantization != "none" and c.distributed != "ddp", "config.quantized_needs_ddp",
         {"strategy": c.distributed}),
        # a strategy or DeepSpeed option that would change nothing is refused rather than ignored
        (not several and c.distributed != "ddp", "config.strategy_needs_processes", {"strategy": c.distributed}),
        (c.deepspeed_offload and c.distributed != "deepspeed", "config.offload_needs_deepspeed", {}),
    ]
    return [msg(key, **params) for failed, key, params in checks if failed]
