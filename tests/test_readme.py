"""The README is the Space's card and the user's manual: its front matter makes the repo a Gradio Space as it is,
and what it tells people to set is what the code reads."""
from __future__ import annotations

import re

import gradio
import yaml

from tests.paths import ROOT

README = (ROOT / "README.md").read_text(encoding="utf-8")
# Hardware names a Space accepts for suggested_hardware (huggingface.co/docs/hub/spaces-config-reference)
SPACE_HARDWARE = {"cpu-basic", "cpu-upgrade", "t4-small", "t4-medium", "l4x1", "l4x4", "a10g-small", "a10g-large",
                  "a10g-largex2", "a10g-largex4", "a100-large", "h100", "h100x8"}


def _front_matter() -> dict:
    match = re.match(r"^---\n(.*?)\n---\n", README, re.S)
    assert match, "README.md must start with a YAML front matter block (the Space configuration)"
    return yaml.safe_load(match.group(1))


def test_front_matter_makes_the_repo_a_gradio_space():
    meta = _front_matter()
    assert meta["sdk"] == "gradio" and (ROOT / meta["app_file"]).is_file()
    assert meta["sdk_version"] == gradio.__version__  # the version the tests ran against
    pin = re.search(r"^gradio(?:\[oauth\])?==([\d.*]+)", (ROOT / "requirements.txt").read_text(), re.M).group(1)
    assert re.fullmatch(pin.replace(".", r"\.").replace("*", r"\d+"), meta["sdk_version"]), (pin, meta["sdk_version"])
    assert re.fullmatch(r"3\.\d+", str(meta["python_version"]))
    assert meta["suggested_hardware"] in SPACE_HARDWARE
    assert 0 < len(meta["short_description"]) <= 60 and meta["title"]


def test_the_readme_reads_as_a_readme_after_the_front_matter():
    body = README.split("\n---\n", 1)[1]
    assert body.lstrip().startswith("# TuneLab")


def test_hosting_sections_exist():
    for heading in ("## Run on a Hugging Face Space", "## Run on a GPU pod"):
        assert heading in README, heading


def test_every_variable_the_readme_names_is_read_by_the_code():
    named = set(re.findall(r"\b((?:TUNELAB|GRADIO_SERVER|RUNPOD|SPACE|HF|OAUTH)_[A-Z_]+|SPACE_ID)\b", README))
    files = [ROOT / "app.py", ROOT / "Dockerfile", ROOT / "Makefile", *ROOT.glob("core/**/*.py"), *ROOT.glob("ui/*.py"),
             *ROOT.glob("scripts/*.sh"), *ROOT.glob("tests/**/*.py")]
    code = "\n".join(p.read_text(encoding="utf-8", errors="replace") for p in files if p.is_file())
    unread = sorted(name for name in named if name not in code)
    assert len(named) >= 5 and not unread, unread
