"""RunConfig: round trips, overrides, plain-language validation (in every language), presets."""
import re
from pathlib import Path

import pytest

from core.config import RunConfig
from core.errors import ConfigError
from core.messages import Msg, join, localize
from core.plan.checks import check

HANGUL = re.compile("[가-힣]")

PRESETS = sorted((Path(__file__).resolve().parents[2] / "presets").glob("*.yaml"))


def test_yaml_round_trip(tmp_path):
    config = RunConfig(lora_r=8, learning_rate=3e-4, probe_prompts=["Hi?", "안녕?"], run_name="a-b")
    config.save_yaml(tmp_path / "c.yaml")
    assert RunConfig.load_yaml(tmp_path / "c.yaml") == config


def test_unknown_key_is_named_with_suggestion(tmp_path):
    (tmp_path / "c.yaml").write_text("lora_rank: 8\n")
    with pytest.raises(ConfigError, match="'lora_rank'.*did you mean 'lora_r'"):
        RunConfig.load_yaml(tmp_path / "c.yaml")


def test_overrides_are_typed():
    config = RunConfig().with_overrides(["max_steps=3", "learning_rate=1e-3", "packing=false", "model=foo/bar"])
    assert (config.max_steps, config.learning_rate, config.packing, config.model) == (3, 1e-3, False, "foo/bar")


@pytest.mark.parametrize("pair, words", [("max_steps=abc", "whole number"), ("packing=maybe", "true or false"),
                                         ("oops", "key=value"), ("epochz=1", "epochs")])
def test_bad_overrides_explain(pair, words):
    with pytest.raises(ConfigError, match=words):
        RunConfig().with_overrides([pair])


@pytest.mark.parametrize("changes, words", [
    ({"lora_r": 0}, "LoRA rank"),
    ({"learning_rate": 5.0}, "Learning rate"),
    ({"method": "full", "quantization": "4bit"}, "Full fine-tuning can't"),
    ({"method": "magic"}, "must be one of"),
    ({"run_name": "../etc"}, "Run name"),
    ({"validation_share": 1.5}, "Validation share"),
    ({"epochs": 0, "max_steps": 0}, "epochs above 0"),
])
def test_validation_messages_are_plain(changes, words):
    problems = RunConfig(**changes).validate()
    assert any(words in p for p in problems), problems


def test_validation_problems_speak_korean():
    problems = RunConfig(lora_r=0, method="magic", run_name="../etc", epochs=0, max_steps=0).validate()
    assert len(problems) == 4 and all(isinstance(p, Msg) and p.key.startswith("config.") for p in problems)
    assert HANGUL.search(localize(RunConfig(lora_r=0).validate()[0], "ko"))
    for problem in problems:
        korean = localize(problem, "ko")
        assert HANGUL.search(korean) and korean != problem, problem
        assert localize(problem, "en") == problem  # English stays the text the CLI prints
    both = join(problems)
    assert both == " ".join(problems) and "LoRA rank" not in localize(both, "ko")


@pytest.mark.parametrize("pair", ["max_steps=abc", "packing=maybe", "oops", "epochz=1"])
def test_bad_overrides_explain_in_korean(pair):
    with pytest.raises(ConfigError) as caught:
        RunConfig().with_overrides([pair])
    message = caught.value.message
    assert isinstance(message, Msg) and HANGUL.search(localize(message, "ko"))
    assert not re.search(r"\b(must|should|Unknown|mean)\b", localize(message, "ko"))


def test_bad_config_files_explain(tmp_path):
    (tmp_path / "broken.yaml").write_text("lora_r: [8\n")
    (tmp_path / "list.yaml").write_text("- lora_r\n")
    for name, words in (("missing.yaml", "not found"), ("broken.yaml", "not valid YAML"), ("list.yaml", "'key: value'")):
        with pytest.raises(ConfigError, match=words) as caught:
            RunConfig.load_yaml(tmp_path / name)
        assert HANGUL.search(localize(caught.value.message, "ko")), name


def test_bf16_refused_on_a_cpu_only_where_it_measures_unusable(monkeypatch):
    import torch

    from core.plan import probe
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    probe.generic_speed.cache_clear()
    # the timing boundary only: bf16 measured 50x slower than fp32, as on CPUs without bf16 kernels
    monkeypatch.setattr(probe, "time_modes", lambda w, rounds=7, device="cpu", budget_s=None:
                        {m: [0.5 if m != "fp32" else 0.01] * rounds for m in w})
    problems = check(RunConfig(precision="bf16"))
    probe.generic_speed.cache_clear()
    assert any("50x slower than fp32" in p and "auto" in p for p in problems)
    assert all(HANGUL.search(localize(p, "ko")) for p in problems)


def test_every_field_has_help_and_section():
    for name in RunConfig.field_names():
        info = RunConfig.field_info(name)
        assert info["help"] and info["section"] in {"model", "quantization", "lora", "data", "training", "output"}


@pytest.mark.parametrize("preset", PRESETS, ids=lambda p: p.stem)
def test_presets_load_and_validate(preset):
    assert not RunConfig.load_yaml(preset).validate()
    assert preset.read_text().startswith("#"), "each preset starts with a header saying what it is for"


def test_expected_presets_exist():
    names = {p.stem for p in PRESETS}
    assert {"cpu-demo", "qlora-7b-24gb", "qlora-13b-24gb", "lora-1b-16gb", "full-small"} <= names
