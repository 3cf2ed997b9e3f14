"""Which precision a run trains in, chosen by measuring this machine, and why.

Three ways to train, and which one is fastest depends on the chip, not on its
name: a CPU with AVX512-BF16 can run bf16 matmuls ~5x faster than fp32, another
one with the same flag slower than fp32, and one without it hundreds of times
slower. So `precision: auto` is decided by a probe:

  fp32           weights, activations and LoRA in fp32
  bf16-autocast  fp32 weights; matmuls run in bf16 under torch.autocast
                 (a cast of every frozen weight on every call)
  bf16-weights   the frozen base's linear layers stored in bf16 (no cast per call),
                 matmuls in bf16 under autocast; embeddings, norms and the
                 residual stream stay fp32 (a bf16 residual stream drifted the
                 loss by ~8% in 6 steps), and so do the LoRA weights, their
                 gradients and the optimizer state (peft keeps adapters in fp32)
  fp16           (explicit only) fp16 autocast with a gradient scaler

The probe (core/plan/probe.py's `mode_speeds`) times the model's own layer
shapes in each way, interleaved and repeated (median); it costs ~0.5-3 s and
its result is cached here, on disk, per CPU model (or GPU name), core count,
layer shape and torch version. A lower precision is picked only when it
is at least MARGIN faster than the device's default (fp32 on CPU, bf16 weights
on a GPU: its memory), so noise never flips a run to a less precise mode.

`decide(config)` is what a run asks (core.train.job, before loading the model);
`capability(precision)` is what the pre-Start check asks: whether this device
can run an explicit bf16/fp16 at all (refused only when it measures more than
UNUSABLE times slower than fp32, or fails), with the measured reason.
"""
from __future__ import annotations

import json
from dataclasses import dataclass, field

import torch

from core import hardware, home
from core.config import RunConfig
from core.messages import Msg, msg
from core.plan import probe as probes
from core.plan.model_shape import Shape, read_model_config, shape_of

MODES = ("fp32", "bf16-autocast", "bf16-weights", "fp16")
LABELS = {"fp32": "fp32", "bf16-autocast": "bf16 autocast", "bf16-weights": "bf16 weights", "fp16": "fp16"}
MARGIN = 1.10          # a lower precision must be this much faster than the default to be picked
UNUSABLE = 4.0         # an explicit bf16/fp16 more than this many times slower than fp32: refused
SMALL_MODEL = 10_000_000  # parameters: below this, per-op overheads dominate and fp32 is kept unmeasured
CACHE_VERSION = 2  # 2: bf16 weights keep the residual stream fp32


@dataclass(frozen=True)
class Decision:
    """The precision a run trains in, with the measured speeds behind it and the sentence saying why."""
    mode: str
    reason: Msg
    speed: dict = field(default_factory=dict)   # mode -> speed relative to fp32 (1.0), measured
    measured: bool = False

    @property
    def precision(self) -> str:
        """fp32 / bf16 / fp16: what the run's events and the planner call it."""
        return {"fp32": "fp32", "fp16": "fp16"}.get(self.mode, "bf16")

    @property
    def weights_dtype(self) -> torch.dtype:
        """The dtype to load the base model in (on CPU, `cast_linears` then stores the linears in bf16)."""
        if self.mode == "bf16-weights" and hardware.device_type() == "cuda":
            return torch.bfloat16
        if self.mode == "fp16" and hardware.device_type() == "cuda":
            return torch.float16
        return torch.float32

    @property
    def autocast_dtype(self) -> torch.dtype | None:
        """The autocast dtype of the forward pass, or None for none."""
        if self.mode in ("bf16-autocast", "bf16-weights"):
            return torch.bfloat16
        return torch.float16 if self.mode == "fp16" else None

    @property
    def label(self) -> str:
        return LABELS[self.mode]


# -- the cache -------------------------------------------------------------------
def _machine_key() -> str:
    if hardware.device_type() == "cuda":
        return f"cuda:{torch.cuda.get_device_name(0)}"
    return f"cpu:{hardware.cpu_model_name()}:{hardware.cpu_cores()} cores"


def _cache_file():
    return home.cache_root() / "precision.json"


def _cache_key(shape: Shape, modes: tuple[str, ...], lora: bool) -> str:
    dims = f"{shape.hidden}x{shape.intermediate}x{shape.heads}x{shape.kv_heads}x{shape.head_dim}"
    return f"v{CACHE_VERSION}|{_machine_key()}|torch {torch.__version__}|{dims}|{','.join(modes)}|lora={lora}"


def _read_cache() -> dict:
    try:
        return json.loads(_cache_file().read_text())
    except (OSError, ValueError):
        return {}


def _write_cache(key: str, speed: dict) -> None:
    data = _read_cache()
    data[key] = speed
    try:
        path = _cache_file()
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_suffix(".tmp")
        tmp.write_text(json.dumps(data, indent=1))
        tmp.replace(path)
    except OSError:
        pass  # a read-only cache only means measuring again next time


def measured_speed(shape: Shape, modes: tuple[str, ...], lora: bool = True) -> dict[str, float]:
    """The probe's `mode_speeds`, from the disk cache when this machine, thread count and layer shape were measured.

    The key holds the cores a run trains on; while probing, the thread count is tuned to the machine's
    load (as the trainer does), so a busy machine times its cores, not descheduled OpenMP threads.
    """
    key = _cache_key(shape, modes, lora)
    cached = _read_cache().get(key)
    if isinstance(cached, dict) and "fp32" in cached:
        return cached
    before = torch.get_num_threads()
    try:
        if hardware.device_type() == "cpu":
            hardware.tune_cpu_threads()
        speed = {mode: round(v, 3) for mode, v in probes.mode_speeds(shape, modes, lora).items()}
    finally:
        torch.set_num_threads(before)
    _write_cache(key, speed)
    return speed


# -- the decision ------------------------------------------------------------------
def candidates(config: RunConfig) -> tuple[str, ...]:
    """The modes `auto` chooses among for this config on this device."""
    if hardware.device_type() == "cuda" and not hardware.cuda_bf16():
        return ("fp32", "fp16")
    modes = ["fp32", "bf16-autocast"]
    # bf16 weights keep trainable weights out of bf16 only when the trainable ones are adapters (LoRA, QLoRA)
    if config.uses_lora or hardware.device_type() == "cuda":
        modes.append("bf16-weights")
    return tuple(modes)


def _default_mode(modes: tuple[str, ...]) -> str:
    """What a device trains in unless something else measures clearly faster."""
    if hardware.device_type() == "cuda":
        return "bf16-weights" if "bf16-weights" in modes else "fp16"
    return "fp32"


def _device_word() -> str:
    return "GPU" if hardware.device_type() == "cuda" else "CPU"


def _speeds_text(speed: dict, modes) -> str:
    return ", ".join(f"{LABELS[m]} {speed[m]:.2f}x" for m in modes if m in speed and m != "fp32")


def choose(speed: dict[str, float], modes: tuple[str, ...]) -> Decision:
    """The fastest mode, unless it is within MARGIN of the device's default; with the sentence why."""
    default = _default_mode(modes)
    usable = {m: v for m, v in speed.items() if m in modes}
    best = max(usable, key=usable.get)
    base = usable.get(default, usable.get("fp32", 1.0))
    mode = best if usable[best] >= base * MARGIN else (default if default in usable else "fp32")
    device = _device_word()
    if mode == "fp32":
        reason = msg("precision.kept_fp32", device=device, speeds=_speeds_text(speed, modes) or "-")
    else:
        reason = msg("precision.picked", mode=LABELS[mode], speedup=f"{usable[mode]:.1f}", device=device,
                     speeds=_speeds_text(speed, modes))
    return Decision(mode, reason, dict(speed), measured=True)


def shape_for(config: RunConfig, model=None) -> Shape | None:
    """The layer shape the probe times: from a loaded model, else from the model's config (nothing loaded)."""
    try:
        source = model.config if model is not None else read_model_config(config.model)
        return shape_of(source)
    except Exception:  # unknown or unreachable model: the decision falls back to the default without a probe
        return None


def decide(config: RunConfig, model=None) -> Decision:
    """The precision this run trains in here: `auto` measured, an explicit one honoured."""
    if config.precision == "fp32":
        return Decision("fp32", msg("precision.as_set", mode="fp32"))
    if config.precision == "fp16":
        return Decision("fp16", msg("precision.as_set", mode="fp16"))
    shape = shape_for(config, model)
    modes = candidates(config)
    if config.precision == "bf16":
        modes = tuple(m for m in modes if m.startswith("bf16"))
    if shape is None:
        mode = _default_mode(modes) if config.precision == "auto" else modes[-1]
        return Decision(mode, msg("precision.unmeasured", mode=LABELS[mode]))
    if config.precision == "auto" and shape.total_params < SMALL_MODEL:
        fallback = _default_mode(candidates(config))
        return Decision(fallback, msg("precision.small_model", mode=LABELS[fallback]))
    speed = measured_speed(shape, tuple(sorted(set(modes) | {"fp32"})), lora=config.uses_lora)
    if config.precision == "bf16":
        usable = {m: speed[m] for m in modes if m in speed} or {modes[-1]: 0.0}
        mode = max(usable, key=usable.get)
        return Decision(mode, msg("precision.as_set_measured", mode=LABELS[mode], speedup=f"{usable[mode]:.2f}",
                                  device=_device_word()), dict(speed), measured=True)
    return choose(speed, modes)


def cast_linears(model, decision: Decision) -> int:
    """bf16 weights on CPU: store the base's linear layers (not the output head) in bf16; returns how many.

    Called on the loaded base before LoRA wraps it. Embeddings, norms and the
    head stay fp32, so the residual stream and the loss stay fp32 (autocast runs
    the matmuls in bf16 without casting these weights on every call).
    """
    if decision.mode != "bf16-weights" or hardware.device_type() == "cuda":
        return 0  # a GPU loads the whole model in bf16 (weights_dtype)
    head = model.get_output_embeddings() if hasattr(model, "get_output_embeddings") else None
    count = 0
    for module in model.modules():
        if isinstance(module, torch.nn.Linear) and module is not head and module.weight.is_floating_point():
            module.to(torch.bfloat16)
            count += 1
    return count


def planned(config: RunConfig, shape: Shape) -> str | None:
    """fp32 / bf16 for the memory planner, from a measurement already cached (never probes); None: not known yet."""
    if config.precision != "auto":
        return config.precision
    if shape.total_params < SMALL_MODEL:
        return None
    modes = candidates(config)
    cached = _read_cache().get(_cache_key(shape, tuple(sorted(set(modes) | {"fp32"})), config.uses_lora))
    if not isinstance(cached, dict) or "fp32" not in cached:
        return None
    return choose(cached, modes).precision


def planned_speed(config: RunConfig, shape: Shape) -> float | None:
    """Speed of the mode this run will train in relative to fp32 (fp32 = 1.0), from the measurement `decide`
    cached (never probes); None when not measured yet. The time estimate (core/plan/speed.py) scales by it."""
    if config.precision == "fp32" or (config.precision == "auto" and shape.total_params < SMALL_MODEL):
        return 1.0
    if config.precision == "fp16":
        return None  # an explicit fp16 is never probed
    modes = candidates(config)
    if config.precision == "bf16":
        modes = tuple(m for m in modes if m.startswith("bf16"))
    cached = _read_cache().get(_cache_key(shape, tuple(sorted(set(modes) | {"fp32"})), config.uses_lora))
    usable = {m: cached[m] for m in modes if m in cached} if isinstance(cached, dict) and "fp32" in cached else {}
    if not usable:
        return None
    mode = choose(cached, modes).mode if config.precision == "auto" else max(usable, key=usable.get)
    return float(usable.get(mode, 1.0))


def for_model(model, config: RunConfig) -> Decision:
    """The decision for a model someone else loaded: what its weights are, else what `decide` says."""
    floats = [p for p in model.parameters() if p.is_floating_point()]
    frozen = [p for p in floats if not p.requires_grad] or floats  # full fine-tuning: every weight trains
    dtypes = {p.dtype for p in frozen}
    dtype = torch.bfloat16 if torch.bfloat16 in dtypes else torch.float16 if torch.float16 in dtypes else torch.float32
    if dtype == torch.bfloat16:
        return Decision("bf16-weights", msg("precision.as_loaded", mode=LABELS["bf16-weights"]))
    if dtype == torch.float16:
        return Decision("fp16", msg("precision.as_loaded", mode="fp16"))
    decision = decide(config, model)
    if decision.mode == "bf16-weights":  # the weights are fp32 already: the faster of what fp32 weights allow
        modes = [m for m in ("fp32", "bf16-autocast") if m in decision.speed]
        if config.precision == "bf16":
            modes = ["bf16-autocast"]
        return choose({m: decision.speed.get(m, 1.0) for m in modes}, tuple(modes)) if len(modes) > 1 else \
            Decision(modes[0] if modes else "fp32", decision.reason, decision.speed, decision.measured)
    return decision


# -- can this device run it at all ------------------------------------------------------
def capability(precision: str) -> Msg | None:
    """Why this device can't train in an explicit `precision`, with the measured figure; None when it can."""
    if precision not in ("bf16", "fp16"):
        return None
    if hardware.device_type() == "cuda":
        return msg("plan.no_bf16") if precision == "bf16" and not hardware.cuda_bf16() else None
    if hardware.device_type() != "cpu":
        return None
    speed = probes.generic_speed(precision)
    if speed is None:
        return msg("precision.cpu_cannot_run", precision=precision, cpu=hardware.cpu_model_name())
    if speed < 1 / UNUSABLE:
        return msg("precision.cpu_too_slow", precision=precision, slower=f"{1 / speed:.0f}",
                   cpu=hardware.cpu_model_name())
    return None
