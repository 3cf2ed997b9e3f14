"""Peak memory and time of a run, estimated before Start; real usage while it runs.

`estimate(config)` adds up what TuneLab's engine (core/train/trainer.py) keeps in
memory at its peak, from the model's config (sizes read with AutoConfig,
nothing loaded) and the run's settings:

  framework     the process before any model: Python + torch + transformers (CPU),
                or the CUDA context and allocator slack (GPU)
  weights       every parameter in its stored precision: fp32 4 B, bf16/fp16 2 B,
                8-bit 1 B (+ a scale per row), 4-bit 0.5 B (+ 1 absmax per 64
                weights: fp32, or 8-bit with double quantisation); embeddings,
                norms and the head stay in full precision
  trainable     LoRA adapters (fp32) or, for full fine-tuning, nothing extra
  gradients     one per trainable weight, in its precision; for full fine-tuning only
                the part alive at the peak (backward frees activations as it makes them;
                with accumulation the earlier micro-batches' gradients stay alive)
  optimizer     adamw_torch / paged_adamw_32bit: 2 states of the weight's precision;
                adamw_8bit / paged_adamw_8bit: 2 x 1 B (+ block scales); sgd: 1 (momentum)
  activations   what autograd keeps for backward per token and layer, counted from
                the engine's own kernels (LoRA keeps its layer input once and a
                1-byte dropout mask; attention keeps q, k, v, out, logsumexp; the
                MLP keeps gate, up, silu(gate), their product), for the largest
                micro-batch (batch_size x the longest example); with gradient
                checkpointing only each layer's input plus one layer being recomputed
  logits        the output head and loss, only over trained positions (x3: logits,
                log-softmax, gradient)
  workspace     backward's temporaries for one layer
  checkpoint_cache  (CPU, 4/8-bit) the full-precision checkpoint's pages, read to quantize
                and still mapped: resident, though the OS may reclaim them
Constants were fitted once on this CPU against measured peaks
(bench/planner_accuracy.py prints the comparison).

The time per epoch comes from core/plan/speed.py, the model's sizes from
core/plan/model_shape.py.
"""
from __future__ import annotations

from dataclasses import dataclass, field

from core import hardware
from core.config import RunConfig
from core.plan.model_shape import Shape, read_model_config, shape_of
from core.plan.speed import ANSWER_SHARE, seconds_per_epoch

GB = 1e9
GIB = 2**30
# Fitted on the embedded model on CPU (bench/planner_accuracy.py):
CPU_FRAMEWORK_BYTES = 420e6      # python + torch + transformers + peft + tokenizers after import, resident
GPU_FRAMEWORK_BYTES = 0.6e9      # CUDA context is outside torch's count; allocator rounding/fragmentation
ACTIVATION_SLACK = 1.10          # allocator rounding and short-lived copies around the saved tensors

_TEXT = {
    "en": {
        "fits": "Fits on {device}: ~{peak} of {avail}",
        "tight": "Fits on {device}, but tightly: ~{peak} of {avail}",
        "no": "Does not fit on {device}: ~{peak} of {avail}",
        "try": " — try: ",
        "unknown": "Memory estimate not available: {reason}",
        "epoch": " · ~{time} per epoch",
        "advice_batch": "batch size {b} with gradient accumulation {a} (same effective batch): ~{peak}",
        "advice_gc": "gradient checkpointing: ~{peak}",
        "advice_qlora": "QLoRA (4-bit base model): ~{peak}",
        "advice_8bit": "8-bit optimizer (adamw_8bit): ~{peak}",
        "advice_len": "max length {n}: ~{peak}",
        "advice_lora": "LoRA instead of full fine-tuning: ~{peak}",
        "advice_all": "together, {steps}: ~{peak}",
        "advice_none": "no setting here makes it fit; choose a smaller model",
    },
    "ko": {
        "fits": "{device}에 들어갑니다: 약 {peak} / {avail}",
        "tight": "{device}에 들어가지만 빠듯합니다: 약 {peak} / {avail}",
        "no": "{device}에 들어가지 않습니다: 약 {peak} / {avail}",
        "try": " — 다음을 시도해 보세요: ",
        "unknown": "메모리 예상치를 낼 수 없습니다: {reason}",
        "epoch": " · 에폭당 약 {time}",
        "advice_batch": "배치 크기 {b}, 그래디언트 누적 {a} (실질 배치는 같음): 약 {peak}",
        "advice_gc": "그래디언트 체크포인팅: 약 {peak}",
        "advice_qlora": "QLoRA (4비트 기본 모델): 약 {peak}",
        "advice_8bit": "8비트 옵티마이저 (adamw_8bit): 약 {peak}",
        "advice_len": "최대 길이 {n}: 약 {peak}",
        "advice_lora": "전체 미세조정 대신 LoRA: 약 {peak}",
        "advice_all": "함께 적용: {steps}: 약 {peak}",
        "advice_none": "여기 있는 설정으로는 들어가지 않습니다. 더 작은 모델을 고르세요",
    },
}


@dataclass
class Estimate:
    """Peak memory (bytes) of a run and whether it fits; `fits` is None when the model's size is unknown."""
    peak_bytes: int | None
    available_bytes: int
    fits: bool | None
    breakdown: dict = field(default_factory=dict)
    seconds_per_epoch: float | None = None
    advice: list = field(default_factory=list)
    device: str = ""
    reason: str = ""             # why the estimate is unknown
    assumptions: list = field(default_factory=list)
    advice_keys: list = field(default_factory=list)  # (key, params) behind `advice`, for other languages

    def summary_text(self, lang: str = "en") -> str:
        t = _TEXT.get(lang, _TEXT["en"])
        if self.peak_bytes is None:
            return t["unknown"].format(reason=self.reason)
        words = dict(device=self.device, peak=_gb(self.peak_bytes), avail=_gb(self.available_bytes))
        if not self.fits:
            text = t["no"].format(**words)
            tips = [_advice_text(k, p, lang) for k, p in self.advice_keys]
            return text + (t["try"] + "; ".join(tips) if tips else "")
        text = (t["tight"] if self.peak_bytes > 0.85 * self.available_bytes else t["fits"]).format(**words)
        if self.seconds_per_epoch:
            text += t["epoch"].format(time=_duration(self.seconds_per_epoch, lang))
        return text


# -- the estimate ---------------------------------------------------------------
def estimate(config: RunConfig, n_train_tokens: int | None = None, model_config=None, *,
             data_stats: dict | None = None, device: str | None = None,
             available_bytes: int | None = None) -> Estimate:
    """Peak memory and time per epoch of `config` on this machine (or on `device`: 'cpu'/'cuda').

    n_train_tokens: tokens in one epoch of training data (for the time); data_stats:
    core.data.pipeline's token statistics (length_max, trained_share, tokens) when known, which
    replace the worst-case assumption (every example max_length long).
    """
    device = device or hardware.device_type()
    available = available_bytes if available_bytes is not None else hardware.total_memory_bytes()
    name = hardware.device_name() if device == hardware.device_type() else device.upper()
    if model_config is None:
        try:
            model_config = read_model_config(config.model)
        except Exception as err:
            return Estimate(None, available, None, device=name, reason=str(err))
    try:
        shape = shape_of(model_config)
    except (ValueError, TypeError) as err:
        return Estimate(None, available, None, device=name, reason=f"unknown model shape ({err})")
    breakdown, assumptions, tokens = _breakdown(config, shape, device, data_stats)
    peak = int(sum(breakdown.values()))
    if n_train_tokens is None and data_stats:
        n_train_tokens = data_stats.get("tokens")
    seconds = seconds_per_epoch(config, shape, device, n_train_tokens, data_stats)
    fits = peak <= available
    result = Estimate(peak, available, fits, breakdown, seconds, device=name, assumptions=assumptions)
    if not fits:
        result.advice_keys = _advice(config, shape, device, data_stats, available)
        result.advice = [_advice_text(k, p, "en") for k, p in result.advice_keys]
    return result


def _precision(config: RunConfig, device: str) -> str:
    if config.precision != "auto":
        return config.precision
    if device == "cuda":
        return "bf16" if (device != hardware.device_type() or hardware.cuda_bf16()) else "fp16"
    return "fp32"


def _breakdown(config: RunConfig, s: Shape, device: str, stats: dict | None) -> tuple[dict, list, int]:
    precision = _precision(config, device)
    w = 4 if precision == "fp32" else 2       # bytes of a full-precision weight
    quant = config.effective_quantization
    lora = config.uses_lora
    assumptions = []

    # weights
    linear = s.layers * s.layer_linear_params
    rest = s.embed_params + s.head_params + s.other_params
    if quant == "4bit":
        constants = (1 + 4 / 256) / 64 if config.double_quant else 4 / 64   # per weight
        weights = linear * (0.5 + constants) + rest * (4 if device == "cpu" else w)
    elif quant == "8bit":
        weights = linear * 1 + s.layers * sum(o for _, o in s.linear_shapes()) * 4 + rest * (4 if device == "cpu" else w)
    else:
        weights = (linear + rest) * w

    # trainable weights, gradients, optimizer states
    if lora:
        targets = _lora_targets(config, s)
        trainable = config.lora_r * sum(a + b for a, b in targets) * s.layers
        tw = 4  # peft keeps adapters in fp32
        trainable_bytes = trainable * tw
    else:
        trainable, tw, trainable_bytes = s.total_params, w, 0
    gradients = trainable * tw
    opt = config.optimizer
    if opt in ("adamw_8bit", "paged_adamw_8bit"):
        optimizer = trainable * (2 + 2 * 4 / 256)  # two 8-bit states + a fp32 scale per 256-block each
    elif opt == "sgd":
        optimizer = trainable * tw
    else:
        optimizer = trainable * tw * 2

    # the largest micro-batch
    longest = config.max_length
    if stats and stats.get("length_max"):
        longest = min(longest, int(stats["length_max"]))
    else:
        assumptions.append(f"every example {config.max_length} tokens long (max length)")
    tokens = config.batch_size * longest
    if stats and stats.get("trained_share") is not None:
        share = float(stats["trained_share"])
    else:
        share = 1.0 if config.train_on == "all" else ANSWER_SHARE
        if config.train_on != "all":
            assumptions.append(f"{ANSWER_SHARE:.0%} of tokens are answers (trained on)")
    # Padded batches run the head over every position, but those full logits are freed before backward,
    # where the peak is (measured: padded and packed rows of the same shape peak within 1%).
    kept = tokens * share

    a = 4 if precision == "fp32" else 2   # activation bytes
    per_layer = _layer_activation_bytes(config, s, a, device, lora)
    if config.gradient_checkpointing:
        activations = tokens * (s.layers * s.hidden * a + per_layer)
    else:
        activations = tokens * s.layers * per_layer
    activations *= ACTIVATION_SLACK
    logits = kept * s.vocab * 4 * 3           # fp32 logits, log-softmax, gradient
    workspace = tokens * (3 * s.intermediate + 4 * s.hidden) * a
    if not lora:
        # Backward frees activations as it makes gradients. Its start holds every activation, the logits'
        # gradients and the head's gradient; its end holds every gradient (a tied embedding's twice,
        # briefly) and, with checkpointing, the last recomputed layer and its gradients. The peak is the
        # larger; `gradients` is what it adds on top of activations + logits + workspace.
        head = s.vocab * s.hidden * tw
        recomputed = 2 * tokens * per_layer if config.gradient_checkpointing else 0.0
        # with accumulation, the previous micro-batches' gradients stay alive through the next forward
        carried = gradients if config.grad_accum > 1 else 0.0
        start = activations + logits + workspace + head + carried
        end = gradients + head + recomputed + workspace
        gradients = max(start, end) - (activations + logits + workspace)
    framework = CPU_FRAMEWORK_BYTES if device == "cpu" else GPU_FRAMEWORK_BYTES
    breakdown = {"framework": framework, "weights": weights, "trainable": trainable_bytes, "gradients": gradients,
                 "optimizer": optimizer, "activations": activations, "logits": logits, "workspace": workspace}
    if quant != "none" and device == "cpu":
        # The full-precision checkpoint is read to quantize it and its pages stay mapped (file cache the OS
        # can reclaim under pressure, but counted in the process's resident memory).
        breakdown["checkpoint_cache"] = linear * _checkpoint_bytes(s)
        assumptions.append("the quantized layers' checkpoint pages stay in the file cache after loading")
    return {k: int(v) for k, v in breakdown.items()}, assumptions, tokens


def _checkpoint_bytes(s: Shape) -> int:
    return 4 if s.dtype in ("float32", "fp32") else 2


def _lora_targets(config: RunConfig, s: Shape) -> list[tuple[int, int]]:
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    shapes = dict(zip(names, s.linear_shapes()))
    wanted = config.target_modules.strip()
    if wanted in ("all-linear", "all", ""):
        return list(shapes.values())
    picked = [shapes[n.strip()] for n in wanted.split(",") if n.strip() in shapes]
    return picked or list(shapes.values())


def _layer_activation_bytes(config: RunConfig, s: Shape, a: int, device: str, lora: bool) -> float:
    """Bytes autograd keeps per token in one decoder layer (the engine's kernels; see module doc)."""
    h, i = s.hidden, s.intermediate
    floats = (
        2 * h            # layer input (norm) + normed input (shared by q/k/v)
        + s.q + 2 * s.kv  # rotated q, rotated k, v (attention inputs)
        + s.q            # attention output (its own tensor) ...
        + s.q            # ... and its transposed copy, o_proj's input
        + 2 * h          # residual after attention (norm input) + normed (shared by gate/up)
        + 4 * i          # gate, up, silu(gate), silu(gate) * up (down_proj's input)
    )
    extra = s.heads * 4  # attention logsumexp, fp32
    if device == "cuda" and a == 2:
        extra += 2 * h * 4  # RMSNorm computes in fp32 and keeps its fp32 input
    if lora:
        targets = _lora_targets(config, s)
        extra += config.lora_r * len(targets) * 4  # the small (tokens x r) products, fp32
        if config.lora_dropout > 0:  # the engine's LoRA kernel keeps a 1-byte dropout mask per adapter
            extra += sum(n for n, _ in targets)
    return floats * a + extra


def _advice(config: RunConfig, s: Shape, device: str, stats: dict | None, available: int) -> list:
    """(key, params) for changes that lower the peak, each with its own estimate, best first; when no
    single change is enough, the smallest combination that fits (or a plain 'choose a smaller model')."""
    def peak(c: RunConfig) -> int:
        return int(sum(_breakdown(c, s, device, stats)[0].values()))

    bnb = hardware.has_package("bitsandbytes")
    changes = []  # (key, params, settings), strongest-first for the combination
    if not config.gradient_checkpointing:
        changes.append(("advice_gc", {}, dict(gradient_checkpointing=True)))
    if config.method == "full":
        changes.append(("advice_lora", {}, dict(method="lora")))
    if config.effective_quantization != "4bit" and bnb:
        changes.append(("advice_qlora", {}, dict(method="qlora", quantization="4bit")))
    if config.optimizer in ("adamw_torch", "paged_adamw_32bit") and bnb and config.method == "full":
        changes.append(("advice_8bit", {}, dict(optimizer="adamw_8bit")))

    def smaller_batch(c: RunConfig) -> tuple[dict, dict]:
        b = max(1, c.batch_size // 2)
        while b > 1 and peak(c.replace(batch_size=b)) > available:
            b //= 2
        accum = c.grad_accum * max(1, c.batch_size // b)
        return dict(b=b, a=accum), dict(batch_size=b, grad_accum=accum)

    singles = list(changes)
    if config.batch_size > 1:
        params, settings = smaller_batch(config)
        singles.append(("advice_batch", params, settings))
    if config.max_length > 256:
        n = max(256, config.max_length // 2)
        singles.append(("advice_len", dict(n=n), dict(max_length=n)))
    current = peak(config)
    scored = sorted(((peak(config.replace(**ch)), key, params) for key, params, ch in singles), key=lambda x: x[0])
    out = [(key, {**params, "peak": p}) for p, key, params in scored if p < current * 0.98]
    if any(p <= available for p, _, _ in scored):
        return out
    combined, names = config, []
    has_qlora = any(key == "advice_qlora" for key, _, _ in changes)
    for key, params, ch in changes:
        if (key == "advice_lora" and has_qlora) or (key == "advice_8bit" and combined.method != "full"):
            continue  # QLoRA is LoRA too; an adapter's optimizer state is already small
        combined = combined.replace(**ch)
        names.append((key, params))
        if peak(combined) <= available:
            break
    while peak(combined) > available and combined.batch_size > 1:
        params, settings = smaller_batch(combined)
        combined = combined.replace(**settings)
        names = [n for n in names if n[0] != "advice_batch"] + [("advice_batch", params)]
    while peak(combined) > available and combined.max_length > 256:
        n = max(256, combined.max_length // 2)
        combined = combined.replace(max_length=n)
        names = [x for x in names if x[0] != "advice_len"] + [("advice_len", dict(n=n))]
    p = peak(combined)
    out.append(("advice_all", {"steps": names, "peak": p}) if p <= available else ("advice_none", {}))
    return out


def _advice_text(key: str, params: dict, lang: str) -> str:
    t = _TEXT.get(lang, _TEXT["en"])
    if key == "advice_all":
        steps = " + ".join(_advice_text(k, {**p, "peak": 0}, lang).split(":")[0] for k, p in params["steps"])
        return t[key].format(steps=steps, peak=_gb(params["peak"]))
    params = {k: (_gb(v) if k == "peak" else v) for k, v in params.items()}
    return t[key].format(**params)


def _gb(n: float) -> str:
    """Binary units, as `free -g`, Task Manager and nvidia-smi show them (labelled GB, as they do)."""
    if n >= 10 * GIB:
        return f"{n / GIB:.0f} GB"
    if n >= GIB:
        return f"{n / GIB:.1f} GB"
    return f"{n / 2**20:.0f} MB"


def _duration(seconds: float, lang: str) -> str:
    if lang == "ko":
        if seconds < 90:
            return f"{seconds:.0f}초"
        if seconds < 5400:
            return f"{seconds / 60:.0f}분"
        return f"{seconds / 3600:.1f}시간"
    if seconds < 90:
        return f"{seconds:.0f} s"
    if seconds < 5400:
        return f"{seconds / 60:.0f} min"
    return f"{seconds / 3600:.1f} h"
