"""Where TuneLab keeps its files: runs, uploads and caches, moved together by one variable.

`TUNELAB_HOME` puts everything under one folder (a pod's `/workspace/tunelab`,
a Space's persistent `/data/tunelab`). On a Hugging Face Space (`SPACE_ID` set)
with persistent storage (a writable `/data`) that folder is chosen by itself,
because a Space wipes its own disk on every restart. Without either, the
defaults are the ones a laptop user expects: `./runs` (uploads inside it) and
`~/.cache/tunelab`. `TUNELAB_RUNS_DIR` and `TUNELAB_CACHE` still move one part
alone (the tests give every test its own runs folder this way).
"""
from __future__ import annotations

import os
from pathlib import Path

SPACE_DATA = Path("/data")  # where a Space mounts its persistent storage


def on_space() -> bool:
    """True inside a Hugging Face Space (the platform sets SPACE_ID)."""
    return bool(os.environ.get("SPACE_ID"))


def _writable(folder: Path) -> bool:
    return folder.is_dir() and os.access(folder, os.W_OK)


def home() -> Path | None:
    """The one folder holding runs, uploads and caches, or None for the laptop defaults."""
    chosen = os.environ.get("TUNELAB_HOME", "").strip()
    if chosen:
        return Path(chosen).expanduser().resolve()
    if on_space() and _writable(SPACE_DATA):
        return SPACE_DATA / "tunelab"
    return None


def runs_root() -> Path:
    """The runs folder: runs/<run>/ and the uploads (runs/uploads/)."""
    if os.environ.get("TUNELAB_RUNS_DIR"):
        return Path(os.environ["TUNELAB_RUNS_DIR"]).resolve()
    base = home()
    return (base / "runs") if base else Path("runs").resolve()


def cache_root() -> Path:
    """The cache of converted models (the embedded GGUF as safetensors)."""
    if os.environ.get("TUNELAB_CACHE"):
        return Path(os.environ["TUNELAB_CACHE"]).expanduser()
    base = home()
    return (base / "cache") if base else Path.home() / ".cache" / "tunelab"


def hf_home() -> Path | None:
    """Where the Hugging Face cache (downloaded models and datasets) belongs, when TuneLab has a home."""
    base = home()
    return (base / "huggingface") if base else None


def use_home_for_hf_cache() -> None:
    """Point the Hugging Face cache into the home folder, unless the user set HF_HOME themselves.

    Must run before huggingface_hub is imported: it reads HF_HOME once, at import.
    """
    target = hf_home()
    if target is not None and not os.environ.get("HF_HOME"):
        os.environ["HF_HOME"] = str(target)


def storage_is_lost_on_restart() -> bool:
    """True on a Space whose runs folder is not on its persistent storage: the Space wipes it when it restarts.

    Asked of the runs folder itself, so a TUNELAB_HOME or TUNELAB_RUNS_DIR pointed elsewhere than /data
    counts as lost too: only the persistent storage outlives a restart (or a Space going to sleep).
    """
    if not on_space():
        return False
    return not (_writable(SPACE_DATA) and runs_root().resolve().is_relative_to(SPACE_DATA.resolve()))
