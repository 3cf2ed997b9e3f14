#!/usr/bin/env bash
# The Docker image's entrypoint: make the pod's volume usable by the app's own user, then run
# the command (scripts/pod-start.sh) as that user, never as root.
#
# RunPod (and `docker run -v /host/dir:/workspace`) mounts the volume owned by root, so a
# container that starts as the unprivileged user could not write its runs there and would lose
# them when the pod stops. The container therefore starts as root, gives the app user its two
# folders on the volume (not the whole volume: other tools may share it), and drops to that
# user with setpriv (util-linux, in the base image) before anything of TuneLab runs.
# Started with --user already (`docker run --user 1000`), it skips straight to the command.
set -euo pipefail

APP_UID="${TUNELAB_UID:-1000}"
APP_GID="${TUNELAB_GID:-1000}"
WORKSPACE="${WORKSPACE:-/workspace}"

if [ "$(id -u)" = 0 ]; then
  for folder in "${TUNELAB_HOME:-$WORKSPACE/tunelab}" "$(dirname "${HF_HOME:-$WORKSPACE/.cache/huggingface}")"; do
    mkdir -p "$folder"
    chown "$APP_UID:$APP_GID" "$folder"
  done
  exec setpriv --reuid="$APP_UID" --regid="$APP_GID" --init-groups -- "$@"
fi
exec "$@"
