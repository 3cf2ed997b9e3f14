"""The glue between form widgets and RunConfig (no gradio here, so it is unit-tested).

The form is generated from RunConfig's fields: their type picks the widget,
their metadata gives the section, help text and choices. `config_from_values`
is the only way form values become a RunConfig, and `values_from_config` the
only way back, so presets, a past run's settings and the form agree.
"""
from __future__ import annotations

from pathlib import Path

from core.config import RunConfig
from core.errors import ConfigError
from core.messages import DEFAULT_LANG, catalog, msg, text
from core.plan.checks import check

PRESETS_DIR = Path(__file__).resolve().parent.parent / "presets"

# Shown at the top of the Train tab and in its simple view.
TOP_FIELDS = ["model", "method"]
SIMPLE_FIELDS = ["epochs", "max_steps", "learning_rate", "batch_size", "grad_accum", "lora_r", "lora_alpha", "max_length"]
# Owned by the Data tab: presets leave them alone so a preset never undoes a data choice.
DATA_FIELDS = ["dataset", "dataset_config", "dataset_split", "data_format", "prompt_column", "response_column"]
SECTIONS = ["model", "quantization", "lora", "data", "training", "output"]


def advanced_fields() -> dict[str, list[str]]:
    """The remaining fields, grouped by section in dataclass order."""
    shown = set(TOP_FIELDS + SIMPLE_FIELDS + DATA_FIELDS)
    groups: dict[str, list[str]] = {s: [] for s in SECTIONS}
    for name in RunConfig.field_names():
        if name not in shown:
            groups[RunConfig.field_info(name)["section"]].append(name)
    return {s: names for s, names in groups.items() if names}


def widget_kind(name: str) -> str:
    """'dropdown', 'checkbox', 'int', 'float', 'lines' or 'text' for a field."""
    if RunConfig.field_info(name)["choices"]:
        return "dropdown"
    default = getattr(RunConfig(), name)
    if isinstance(default, bool):
        return "checkbox"
    if isinstance(default, int):
        return "int"
    if isinstance(default, float):
        return "float"
    if isinstance(default, list) or name == "system_prompt":
        return "lines"
    return "text"


def config_from_values(values: dict) -> RunConfig:
    """A RunConfig from form values; raises ConfigError with a plain sentence."""
    cleaned = {}
    for name, value in values.items():
        if name not in RunConfig.field_names():
            continue  # widgets that are not settings (token, preset) travel alongside
        if value is None and widget_kind(name) in ("int", "float"):
            raise ConfigError(msg("empty_number", name=name))
        cleaned[name] = value.strip() if isinstance(value, str) and widget_kind(name) != "lines" else value
    return RunConfig.from_dict(cleaned)


def values_from_config(config: RunConfig) -> dict:
    """Form values for every field (lists become one line per item)."""
    values = config.to_dict()
    for name, value in values.items():
        if isinstance(value, list):
            values[name] = "\n".join(str(v) for v in value)
    return values


def problems_of(values: dict) -> list[str]:
    """Everything wrong with the form, in plain words (empty when it can start); Msgs where core made them."""
    try:
        return check(config_from_values(values))
    except ConfigError as err:
        return [err.message]


# --- presets -------------------------------------------------------------------

def preset_choices(lang: str = "en") -> list[tuple[str, str]]:
    """(label, file stem) for every presets/*.yaml; the label is the catalogue's `preset.<stem>.title`
    (the file's first comment for a preset the catalogue does not know yet)."""
    choices = [(f"{preset_title(path.stem, lang)}  ({path.stem})", path.stem) for path in sorted(PRESETS_DIR.glob("*.yaml"))]
    # the CPU demo first: it is the one a presenter picks
    return sorted(choices, key=lambda c: c[1] != "cpu-demo")


def preset_title(stem: str, lang: str = "en") -> str:
    """A preset's name for people, in `lang`."""
    if f"preset.{stem}.title" in catalog(DEFAULT_LANG):
        return text(f"preset.{stem}.title", lang)
    path = PRESETS_DIR / f"{Path(stem).name}.yaml"
    first = path.read_text(encoding="utf-8").splitlines()[0] if path.exists() and path.stat().st_size else ""
    return first.lstrip("# ").split(" — ")[0].strip() if first.startswith("#") else stem


def preset_description(stem: str, lang: str = "en") -> str:
    """What a preset is for and what it needs, in `lang` ('' for no preset or one the catalogue lacks)."""
    key = f"preset.{stem}.description"
    return text(key, lang) if stem and key in catalog(DEFAULT_LANG) else ""


def initial_values(stem: str = "") -> dict:
    """The form the page opens with: the defaults, with preset `stem` applied as if the user had picked it."""
    values = values_from_config(RunConfig())
    return preset_values(stem, values) if stem else values


def preset_values(stem: str, current: dict) -> dict:
    """Form values for a preset: defaults + the preset, keeping the current data choice."""
    path = PRESETS_DIR / f"{Path(stem).name}.yaml"
    config = RunConfig.load_yaml(path)
    values = values_from_config(config)
    for name in DATA_FIELDS:
        if name in current:
            values[name] = current[name]
    values["run_name"] = ""
    return values
