#!/usr/bin/env bash
# Start TuneLab on a GPU pod (RunPod or any Docker host): the Docker image's CMD, and the
# last step of scripts/pod-setup.sh for a pod without Docker.
#
# Everything TuneLab writes goes under the pod's volume ($WORKSPACE, RunPod mounts it at
# /workspace), so runs, uploads and downloaded models survive a pod restart:
#   TUNELAB_HOME  $WORKSPACE/tunelab               runs (runs/<run>/), uploads, converted models
#   HF_HOME       $WORKSPACE/.cache/huggingface    models and datasets from the Hub
# The app listens on 0.0.0.0:7860 (GRADIO_SERVER_NAME / GRADIO_SERVER_PORT) and needs a
# login: TUNELAB_AUTH=user:password, set in the pod's environment (RunPod: the template's
# environment variables). The password is never put on a command line (anyone on the machine
# can read those in ps): app.py reads TUNELAB_AUTH from the environment itself.
#
# The shell is replaced by python (exec), so a stop (docker stop, RunPod's Stop, Ctrl-C)
# reaches app.py directly, and app.py stops a running training so its adapter is saved.
set -euo pipefail

APP_DIR="$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)"
WORKSPACE="${WORKSPACE:-/workspace}"

say() { printf 'pod-start: %s\n' "$*" >&2; }

# A folder we can write into (created when missing), or nothing.
writable_dir() {
  mkdir -p "$1" 2>/dev/null && [ -w "$1" ]
}

# RunPod mounts the volume root-owned; a non-root container (the Docker image runs as user
# tunelab) may then be unable to write it. Keep running in a folder of our own, loudly: runs
# made there are lost when the pod stops.
if ! writable_dir "${TUNELAB_HOME:-$WORKSPACE/tunelab}"; then
  fallback="${HOME:-/tmp}/tunelab-workspace"
  say "WARNING: cannot write to ${TUNELAB_HOME:-$WORKSPACE/tunelab} (uid $(id -u)): runs go to $fallback instead and are LOST when the pod stops."
  say "         To keep them on the volume, make it writable once as root: chown -R $(id -u):$(id -g) $WORKSPACE"
  WORKSPACE="$fallback"
  unset TUNELAB_HOME
fi

export TUNELAB_HOME="${TUNELAB_HOME:-$WORKSPACE/tunelab}"
export HF_HOME="${HF_HOME:-$WORKSPACE/.cache/huggingface}"
# app.py lets TUNELAB_HOST/TUNELAB_PORT win over GRADIO_SERVER_*; the same order here, so the
# login check below judges the address the app will really use.
export GRADIO_SERVER_NAME="${TUNELAB_HOST:-${GRADIO_SERVER_NAME:-0.0.0.0}}"
export GRADIO_SERVER_PORT="${TUNELAB_PORT:-${GRADIO_SERVER_PORT:-7860}}"
export PYTHONUNBUFFERED=1  # the pod's log shows each line as it is printed

for folder in "$TUNELAB_HOME" "$TUNELAB_HOME/runs" "$HF_HOME"; do
  writable_dir "$folder" || { say "cannot create or write $folder; set WORKSPACE or TUNELAB_HOME to a writable folder"; exit 1; }
done

# Listening on every address without a login lets anyone who finds the URL train, read the
# uploads and download the models. The app refuses too (ui/launch.py: a login, or --public-demo);
# this earlier check says so before the engine loads. TUNELAB_ALLOW_OPEN=1 skips only this check.
case "$GRADIO_SERVER_NAME" in
  127.0.0.1|localhost|::1) exposed=0 ;;
  *) exposed=1 ;;
esac
if [ "$exposed" = 1 ] && [ -z "${TUNELAB_AUTH:-}" ] && [ "${TUNELAB_ALLOW_OPEN:-0}" != 1 ]; then
  say "refusing to listen on $GRADIO_SERVER_NAME without a login: set TUNELAB_AUTH=user:password in the pod's environment (RunPod: Edit Template > Environment Variables), or TUNELAB_ALLOW_OPEN=1 to run open on purpose"
  exit 2
fi

# The python that has TuneLab's packages: chosen, this checkout's venv, or the system one.
if [ -n "${TUNELAB_PYTHON:-}" ]; then
  python="$TUNELAB_PYTHON"
elif [ -x "$APP_DIR/.venv/bin/python" ]; then
  python="$APP_DIR/.venv/bin/python"
else
  python="$(command -v python3 || true)"
fi
if [ -z "$python" ] || ! [ -x "$python" ]; then
  say "no python found (${python:-python3}): set TUNELAB_PYTHON, or run scripts/pod-setup.sh to install everything"
  exit 1
fi

say "runs in $TUNELAB_HOME/runs, Hugging Face cache in $HF_HOME, listening on $GRADIO_SERVER_NAME:$GRADIO_SERVER_PORT"
cd "$APP_DIR"
# host and port are passed as flags too, so they win over app.py's own defaults; the login stays in the environment.
exec "$python" app.py --host "$GRADIO_SERVER_NAME" --port "$GRADIO_SERVER_PORT" "$@"
