"""Which preset fits this machine: the Train tab opens on it, so a newcomer's first Start is a good one.

A preset says where it is meant to run in one comment line of a fixed form (presets are RunConfig
YAML, which refuses unknown keys, so the hint cannot be a key; and a comment stays beside the
preset's own explanation of its hardware):

    # fits: cpu              a CPU is enough (then any GPU is too, when the planner says it fits)
    # fits: gpu >= 22 GB     a CUDA GPU with at least 22 GB, as nvidia-smi counts (GiB): a "24 GB"
                             L4 or A10G shows 22.5, a "16 GB" T4 shows 15, so hints sit below the
                             marketed size

A preset without the line is never suggested (full-small compares full fine-tuning with LoRA; it is
not a first run). A preset fits when the device meets its hint and, wherever the memory planner
(core.plan.memory.estimate) can size the model without downloading anything (the embedded model, a
local folder, a config already in the Hugging Face cache), the planner agrees: so the suggested
preset never shows "does not fit" under it. The planner may veto a hint but not stretch it: a preset
written for a 24 GB card stays off a 12 GB one even where the planner's sum would just squeeze in.

The choice (`suggest`): on a CPU (or Apple) host, the first `fits: cpu` preset that fits the RAM; on
a CUDA GPU, among the presets that fit its memory, the one written for the largest card (its hint;
`cpu` counts as 0), then the one needing the least memory, then by name. When nothing fits, the
preset needing the least memory, with a note that says so.
"""
from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from transformers import AutoConfig

from core import hardware
from core.config import DEFAULT_MODEL, RunConfig
from core.messages import Msg, msg
from core.models import EMBEDDED
from core.plan.memory import GIB, estimate
from core.plan.model_shape import EMBEDDED_CONFIG

HINT = re.compile(r"^#\s*fits:\s*(?:(?P<cpu>cpu)|gpu\s*>=\s*(?P<gb>\d+(?:\.\d+)?)\s*GB)\s*$", re.IGNORECASE)
HINT_START = re.compile(r"^#\s*fits:", re.IGNORECASE)
ModelConfigLookup = Callable[[str], object]


@dataclass(frozen=True)
class Hint:
    """A preset's `# fits:` line: a CPU is enough (min_bytes 0), or a GPU of at least min_bytes."""
    cpu: bool
    min_bytes: int


@dataclass(frozen=True)
class Suggestion:
    """The preset the Train tab opens on (a file stem; "" for none) and why, in a Msg."""
    name: str
    note: Msg | None = None


@dataclass(frozen=True)
class _Candidate:
    name: str
    hint: Hint
    need: int        # bytes: the planner's peak, or the hint's minimum when the planner can't size the model
    fits: bool


def fits_hint(path: Path) -> Hint | None:
    """The preset's `# fits:` comment, or None when it has none; a malformed one raises ValueError."""
    for line in path.read_text(encoding="utf-8").splitlines():
        line = line.strip()
        if not HINT_START.match(line):
            continue
        found = HINT.match(line)
        if not found:
            raise ValueError(f"{path.name}: '{line}' is not '# fits: cpu' or '# fits: gpu >= N GB'")
        return Hint(cpu=True, min_bytes=0) if found["cpu"] else Hint(cpu=False, min_bytes=int(float(found["gb"]) * GIB))
    return None


def local_model_config(ref: str):
    """The model's config when it can be read without downloading (embedded, a folder, the HF cache), else None."""
    ref = (ref or "").strip() or DEFAULT_MODEL
    if ref in EMBEDDED:
        return dict(EMBEDDED_CONFIG)
    if ref.startswith("embedded:"):
        return None
    path = Path(ref).expanduser()
    try:
        return AutoConfig.from_pretrained(str(path) if path.exists() else ref, local_files_only=True)
    except Exception:  # not cached, a custom architecture, a broken folder: the hint decides instead
        return None


def suggest(device: str, memory_bytes: int, presets_dir: Path, *,
            model_config: ModelConfigLookup = local_model_config) -> Suggestion:
    """The preset that fits a `device` ('cpu', 'mps' or 'cuda') with `memory_bytes`, from the presets in `presets_dir`."""
    gpu = device == "cuda"
    candidates = _candidates(presets_dir, gpu, memory_bytes, model_config)
    if not candidates:
        return Suggestion("")
    fitting = [c for c in candidates if c.fits]
    if not fitting:
        smallest = min(candidates, key=lambda c: (c.need, c.name))
        return Suggestion(smallest.name, msg("plan.preset_smallest", memory=_size(memory_bytes)))
    if not gpu:
        return Suggestion(min(fitting, key=lambda c: c.name).name, msg("plan.preset_for_cpu"))
    best = min(fitting, key=lambda c: (-c.hint.min_bytes, c.need, c.name))
    return Suggestion(best.name, msg("plan.preset_for_gpu", memory=_size(memory_bytes)))


def suggest_here(presets_dir: Path) -> Suggestion:
    """`suggest` for this machine: its device and that device's memory (GPU memory, or RAM)."""
    return suggest(hardware.device_type(), hardware.total_memory_bytes(), presets_dir)


def _candidates(presets_dir: Path, gpu: bool, memory: int, model_config: ModelConfigLookup) -> list[_Candidate]:
    """The presets this kind of host may run (all with a `# fits:` line on a GPU, the `cpu` ones elsewhere),
    each with the memory it needs and whether that fits: the hint says which card a preset was written for,
    and the planner, where it can size the model, must agree."""
    found = []
    for path in sorted(presets_dir.glob("*.yaml")):
        try:
            hint = fits_hint(path)
            config = RunConfig.load_yaml(path) if hint else None
        except Exception:  # a broken preset is not suggested; choosing it in the list still says why
            continue
        if hint is None or not (gpu or hint.cpu):
            continue
        if hint.min_bytes > memory:  # written for a larger card: no need to ask the planner
            found.append(_Candidate(path.stem, hint, hint.min_bytes, False))
            continue
        peak = _planner_peak(config, "cuda" if gpu else "cpu", memory, model_config)
        need = peak if peak is not None else hint.min_bytes
        found.append(_Candidate(path.stem, hint, need, need <= memory))
    return found


def _planner_peak(config: RunConfig, device: str, memory: int, model_config: ModelConfigLookup) -> int | None:
    """The planner's peak bytes for `config` on `device`, or None when the model can't be sized locally."""
    shape = model_config(config.model)
    if shape is None:
        return None
    result = estimate(config, model_config=shape, device=device, available_bytes=memory)
    return result.peak_bytes


def _size(n: int) -> str:
    """Whole GB (GiB, as nvidia-smi and Task Manager count): a 24 GB card reads "24 GB"."""
    return f"{max(1, round(n / GIB))} GB"
