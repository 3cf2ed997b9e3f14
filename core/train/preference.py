"""DPO runs and the runs folder: the start run's adapter and settings, voted pairs, the data, the model.

A DPO run starts from a finished run's adapter (`from_run`) and trains on preference pairs. This module
says what the runs folder has against such a run, builds its config, freezes its votes, prepares its
pairs and loads the policy model; the DPO loss and the trainer are core/train/dpo.py.

`dataset: votes:RUN` trains on the preferences voted in RUN's Chat tab
(core.infer.votes.preference_rows); at Start they are written to the new run's folder
(`preferences.jsonl`) and the run's config names that file, so the run can be repeated.
"""
from __future__ import annotations

import json
from pathlib import Path

from core import runs
from core.config import RunConfig
from core.data.preference import blank_report, pairs_report, prepare_pairs
from core.errors import ConfigError, DataError
from core.infer import votes
from core.messages import Msg, msg

VOTES_PREFIX = "votes:"
PAIRS_FILE = "preferences.jsonl"
# What a DPO run takes from the run it starts from: the adapter is that run's, so these must be too.
ADAPTER_FIELDS = ("model", "method", "quantization", "lora_r", "lora_alpha", "lora_dropout", "target_modules",
                  "lora_bias", "chat_template")


def is_dpo(config: RunConfig) -> bool:
    return config.objective == "dpo"


def start_adapter(config: RunConfig, root: Path | None = None) -> Path | None:
    """The adapter folder the run starts from (None: a new adapter on the base)."""
    return runs.run_dir(config.from_run, root) / "adapter" if config.from_run else None


def problems(config: RunConfig, root: Path | None = None) -> list[Msg]:
    """What the runs folder says against this DPO run: a missing start run or adapter, other adapter settings."""
    if not is_dpo(config):
        return []
    out = []
    voted = config.dataset.strip()[len(VOTES_PREFIX):] if config.dataset.strip().startswith(VOTES_PREFIX) else ""
    if voted and not _exists(voted, root):
        out.append(msg("preference.no_such_run", run=voted))
    if not config.from_run:
        return out
    if not _exists(config.from_run, root) or not (start_adapter(config, root) / "adapter_config.json").exists():
        return out + [msg("preference.no_adapter", run=config.from_run)]
    source = RunConfig.load_yaml(runs.run_dir(config.from_run, root) / "config.yaml")
    differ = [f"{name}={getattr(source, name)}" for name in ADAPTER_FIELDS if getattr(source, name) != getattr(config, name)]
    if differ:
        out.append(msg("preference.settings_differ", run=config.from_run, settings=", ".join(differ)))
    return out


def source_runs(config: RunConfig) -> list[str]:
    """The other runs this run reads (the start adapter, the votes): a browser user must own them."""
    if not is_dpo(config):
        return []
    voted = config.dataset.strip()[len(VOTES_PREFIX):] if config.dataset.strip().startswith(VOTES_PREFIX) else ""
    return sorted({name for name in (config.from_run, voted) if name})


def _exists(name: str, root: Path | None) -> bool:
    try:
        return (runs.run_dir(name, root) / "config.yaml").exists()
    except ValueError:
        return False


def dpo_config(source: RunConfig, from_run: str, **changes) -> RunConfig:
    """A DPO run's config that starts from `from_run` (whose config is `source`) and trains on its votes."""
    base = {name: getattr(source, name) for name in ADAPTER_FIELDS}
    defaults = {"objective": "dpo", "from_run": from_run, "dataset": VOTES_PREFIX + from_run, "data_format": "auto",
                "dataset_config": "", "dataset_split": "train", "prompt_column": "", "response_column": "",
                # lr 1e-3 with the SFT term (dpo_sft_weight 1): bench/preference_demo.py's best, style 0% -> 100%,
                # facts 97% -> 100% (2e-4: 97% style, 93% facts; pure DPO at 1e-3: no style, 77% facts)
                "epochs": 2.0, "max_steps": 0, "learning_rate": 1e-3, "batch_size": 4, "grad_accum": 1,
                "validation_share": 0.0, "probe_prompts": list(source.probe_prompts),
                "system_prompt": source.system_prompt, "max_length": source.max_length, "run_name": "",
                "loraplus_ratio": 0.0}
    return RunConfig().replace(**{**base, **defaults, **changes})


# --- data ------------------------------------------------------------------------------
def vote_rows(config: RunConfig, root: Path | None = None) -> list[dict] | None:
    """The voted pairs when the dataset is `votes:RUN` (None for any other dataset); DataError when none."""
    source = config.dataset.strip()
    if not source.startswith(VOTES_PREFIX):
        return None
    name = source[len(VOTES_PREFIX):]
    try:
        folder = runs.run_dir(name, root)
    except ValueError:
        raise DataError(msg("preference.no_such_run", run=name)) from None
    rows = votes.preference_rows(folder)
    if not rows:
        raise DataError(msg("preference.no_votes", run=name))
    return rows


def freeze_votes(config: RunConfig, run_dir: Path, root: Path | None = None) -> RunConfig:
    """`votes:RUN` written to the new run's folder as a dataset file, and the config naming it."""
    rows = vote_rows(config, root)
    if rows is None:
        return config
    path = run_dir / PAIRS_FILE
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    return config.replace(dataset=str(path.resolve()))


def prepare(config: RunConfig, tokenizer, token: str | None = None, progress=None):
    """The job's data step for a DPO run (core.data.preference.prepare_pairs, votes included)."""
    return prepare_pairs(config, tokenizer, token, progress, rows=vote_rows(config))


def report(config: RunConfig, tokenizer, token: str | None = None, root: Path | None = None) -> dict:
    """The pre-flight report of preference data (the Data tab, `app.py train`); problems instead of raising."""
    try:
        rows = vote_rows(config, root)
    except DataError as err:
        return {**blank_report(config), "problems": [err.message]}
    return pairs_report(config, tokenizer, token, rows=rows)


# --- the model ---------------------------------------------------------------------------
def policy_model(base, tokenizer, config: RunConfig, root: Path | None = None):
    """The base with the start run's adapter, trainable; or, without one, a new LoRA adapter."""
    from core.models import prepare_for_training  # noqa: PLC0415 - peft, loaded by the job already; keeps imports light

    folder = start_adapter(config, root)
    if folder is None:
        return prepare_for_training(base, tokenizer, config)
    from peft import PeftModel  # noqa: PLC0415 - see above

    if not (folder / "adapter_config.json").exists():
        raise ConfigError(msg("preference.no_adapter", run=config.from_run))
    if len(tokenizer) > base.get_input_embeddings().num_embeddings:
        base.resize_token_embeddings(len(tokenizer))
    model = PeftModel.from_pretrained(base, str(folder), is_trainable=True)
    if config.gradient_checkpointing:
        model.gradient_checkpointing_enable(gradient_checkpointing_kwargs={"use_reentrant": False})
        model.enable_input_require_grads()
    model.train()
    return model

