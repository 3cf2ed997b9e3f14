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
from core.messages import DEFAULT_LANG, Msg, join, localize, msg
from core.plan import precision as precisions
from core.plan import seq2seq as encoder_decoder
from core.plan.model_shape import Shape, read_model_config, shape_of
from core.plan.speed import ANSWER_SHARE, seconds_per_epoch
from core.plan.targets import ALL_LINEAR, requested

GB = 1e9
GIB = 2**30
# Fitted on the embedded model on CPU (bench/planner_accuracy.py):
CPU_FRAMEWORK_BYTES = 420e6      # python + torch + transformers + peft + tokenizers after import, resident
GPU_FRAMEWORK_BYTES = 0.6e9      # CUDA context is outside torch's count; allocator rounding/fragmentation
ACTIVATION_SLACK = 1.10          # allocator rounding and short-lived copies around the saved tensors



@dataclass
class Estimate:
    """Peak memory (bytes) of a run and whether it fits; `fits` is None when the model's size is unknown.

    Its words come from the catalogue (core/catalog/<lang>/plan.yaml): `advice`, `reason` and
    `assumptions` are Msgs (English strings that localize), `summary()` the one line the form shows.
    """
    peak_bytes: int | None
    available_bytes: int
    fits: bool | None
    breakdown: dict = field(default_factory=dict)
    seconds_per_epoch: float | None = None
    advice: list = field(default_factory=list)  # Msgs: what to change, each with its own estimate, best first
    device: str = ""
    reason: str = ""             # why the estimate is unknown (a Msg where the planner wrote it)
    assumptions: list = field(default_factory=list)

    def summary(self) -> Msg:
        """"Fits / fits tightly / does not fit — try: ..." (with the time per epoch when known), as a Msg."""
        if self.peak_bytes is None:
            return msg("plan.unknown", reason=self.reason)
        words = dict(device=self.device, peak=_gb(self.peak_bytes), avail=_gb(self.available_bytes))
        if not self.fits:
            if self.advice:
                return msg("plan.no_fit_try", **words, tips=join(self.advice, sep="; "))
            return msg("plan.no_fit", **words)
        line = msg("plan.tight" if self.peak_bytes > 0.85 * self.available_bytes else "plan.fits", **words)
        if self.seconds_per_epoch:
            return msg("plan.with_epoch", summary=line, time=_duration(self.seconds_per_epoch))
        return line

    def summary_text(self, lang: str = DEFAULT_LANG) -> str:
        """The summary in `lang` (what ui/train_actions.py shows)."""
        return localize(self.summary(), lang)


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
        except Exception as err:  # offline, gated, no such model: the estimate says so instead of failing
            return Estimate(None, available, None, device=name, reason=_reason(err))
    try:
        shape = shape_of(model_config)
    except (ValueError, TypeError) as err:
        return Estimate(None, available, None, device=name, reason=msg("plan.unknown_shape", error=_reason(err)))
    breakdown, assumptions, tokens = _breakdown(config, shape, device, data_stats)
    peak = int(sum(breakdown.values()))
    if n_train_tokens is None and data_stats:
        n_train_tokens = data_stats.get("tokens")
    seconds = seconds_per_epoch(config, shape, device, n_train_tokens, data_stats)
    fits = peak <= available
    result = Estimate(peak, available, fits, breakdown, seconds, device=name, assumptions=assumptions)
    if not fits:
        result.advice = _advice(config, shape, device, data_stats, available)
    return result


def _reason(err: BaseException) -> str:
    """The error's message, kept as a Msg when it is one (so it localizes with the summary)."""
    first = err.args[0] if err.args else None
    return first if isinstance(first, Msg) else str(err)


def _precision(config: RunConfig, device: str, s: Shape | None = None) -> str:
    if config.precision != "auto":
        return config.precision
    if s is not None and device == hardware.device_type() and (measured := precisions.planned(config, s)):
        return measured  # what the run will train in here (core/plan/precision.py), once it has been measured
    if device == "cuda":
        return "bf16" if (device != hardware.device_type() or hardware.cuda_bf16()) else "fp16"
    return "fp32"


def _breakdown(config: RunConfig, s: Shape, device: str, stats: dict | None) -> tuple[dict, list, int]:
    precision = _precision(config, device, s)
    w = 4 if precision == "fp32" else 2       # bytes of a full-precision weight
    quant = config.effective_quantization
    lora = config.uses_lora
    assumptions = []

    # weights
    linear = s.linear_params
    rest = s.rest_params if s.modules else s.embed_params + s.head_params + s.other_params
    if quant == "4bit":
        constants = (1 + 4 / 256) / 64 if config.double_quant else 4 / 64   # per weight
        weights = linear * (0.5 + constants) + rest * (4 if device == "cpu" else w)
    elif quant == "8bit":
        weights = linear * 1 + s.linear_outputs * 4 + rest * (4 if device == "cpu" else w)
    else:
        weights = (linear + rest) * w

    # trainable weights, gradients, optimizer states
    if lora:
        targets = _lora_targets(config, s)  # every targeted layer of the whole model
        trainable = config.lora_r * sum(a + b for a, b in targets)
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
        assumptions.append(msg("plan.assume.max_length", n=config.max_length))
    tokens = config.batch_size * longest
    if stats and stats.get("trained_share") is not None:
        share = float(stats["trained_share"])
    else:
        share = 1.0 if config.train_on == "all" else ANSWER_SHARE
        if config.train_on != "all" and not s.seq2seq:  # an encoder-decoder trains on every target token
            assumptions.append(msg("plan.assume.answer_share", share=f"{ANSWER_SHARE:.0%}"))
    # Padded batches run the head over every position, but those full logits are freed before backward,
    # where the peak is (measured: padded and packed rows of the same shape peak within 1%).
    kept = tokens * share

    a = 4 if precision == "fp32" else 2   # activation bytes
    if s.seq2seq:  # two token streams, source and target, and cross-attention (core/plan/seq2seq.py)
        parts = encoder_decoder.parts(config, s, a, _lora_target_modules(config, s) if lora else {}, stats,
                                      ACTIVATION_SLACK)
        activations, logits, workspace, one_layer = (parts[k] for k in ("activations", "logits", "workspace",
                                                                        "one_layer"))
    else:
        per_layer = _layer_activation_bytes(config, s, a, device, lora, longest)
        one_layer = tokens * per_layer
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
        recomputed = 2 * one_layer if config.gradient_checkpointing else 0.0
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
        assumptions.append(msg("plan.assume.checkpoint_cache"))
    return {k: int(v) for k, v in breakdown.items()}, assumptions, tokens


def _checkpoint_bytes(s: Shape) -> int:
    return 4 if s.dtype in ("float32", "fp32") else 2


def _lora_target_modules(config: RunConfig, s: Shape) -> dict[str, tuple[int, int]]:
    """{full name: (in, out)} of the layers LoRA will wrap, from the empty model's real layers (empty when
    the model could not be built empty: the formula's Llama layers have no names)."""
    if not s.modules:
        return {}
    wanted = config.target_modules.strip()
    if wanted.lower() in ALL_LINEAR:
        return {n: s.modules[n] for n in s.all_linear if n in s.modules}
    return {name: shape for name, shape in s.modules.items()
            if any(name == w or name.endswith("." + w) for w in requested(wanted))}


def _lora_targets(config: RunConfig, s: Shape) -> list[tuple[int, int]]:
    """(in, out) of every layer of the model LoRA will wrap: from the empty model's real layers where it
    was built (peft's all-linear, or peft's name matching), else Llama's seven projections in every layer."""
    wanted = config.target_modules.strip()
    if s.modules:
        return list(_lora_target_modules(config, s).values())
    names = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]
    shapes = dict(zip(names, s.linear_shapes()))
    if wanted in ALL_LINEAR:
        return list(shapes.values()) * s.layers
    picked = [shapes[n.strip()] for n in wanted.split(",") if n.strip() in shapes]
    return (picked or list(shapes.values())) * s.layers


def _layer_activation_bytes(config: RunConfig, s: Shape, a: int, device: str, lora: bool, longest: int) -> float:
    """Bytes autograd keeps per token in one decoder layer (the engine's kernels; see module doc)."""
    h, i = s.hidden, s.intermediate
    floats = (
        2 * h            # layer input (norm) + normed input (shared by q/k/v)
        + s.q + 2 * s.kv  # rotated q, rotated k, v (attention inputs)
        + s.q            # attention output (its own tensor) ...
        + s.q            # ... and its transposed copy, o_proj's input
        + 2 * h          # residual after attention (norm input) + normed (shared by gate/up)
        + s.mlp_saved * i  # gated: gate, up, silu(gate), their product; plain: fc out, act(fc out) (model_shape)
    )
    extra = s.heads * 4  # attention logsumexp, fp32
    if s.attention_dropout > 0:  # SDPA with dropout: the math path keeps softmax(QK), its mask and the dropped copy
        extra += s.heads * longest * (2 * a + 1)  # per token: its row of every head's weights
    if device == "cuda" and a == 2:
        extra += 2 * h * 4  # RMSNorm computes in fp32 and keeps its fp32 input
    if lora:
        targets = _lora_targets(config, s)  # the whole model's: per layer is 1/layers of it
        extra += config.lora_r * len(targets) * 4 / s.layers  # the small (tokens x r) products, fp32
        if config.lora_dropout > 0:  # the engine's LoRA kernel keeps a 1-byte dropout mask per adapter
            extra += sum(n for n, _ in targets) / s.layers
    return floats * a + extra


def _advice(config: RunConfig, s: Shape, device: str, stats: dict | None, available: int) -> list[Msg]:
    """Changes that lower the peak, each with its own estimate, best first; when no single change is
    enough, the smallest combination that fits (or a plain 'choose a smaller model')."""
    def peak(c: RunConfig) -> int:
        return int(sum(_breakdown(c, s, device, stats)[0].values()))

    bnb = hardware.has_package("bitsandbytes")
    changes = []  # (what to change, its settings), strongest-first for the combination
    if not config.gradient_checkpointing:
        changes.append((msg("plan.change.checkpointing"), dict(gradient_checkpointing=True)))
    if config.method == "full":
        changes.append((msg("plan.change.lora"), dict(method="lora")))
    if config.effective_quantization != "4bit" and bnb:
        changes.append((msg("plan.change.qlora"), dict(method="qlora", quantization="4bit")))
    if config.optimizer in ("adamw_torch", "paged_adamw_32bit") and bnb and config.method == "full":
        changes.append((msg("plan.change.optimizer_8bit"), dict(optimizer="adamw_8bit")))

    def smaller_batch(c: RunConfig) -> tuple[Msg, dict]:
        b = max(1, c.batch_size // 2)
        while b > 1 and peak(c.replace(batch_size=b)) > available:
            b //= 2
        accum = c.grad_accum * max(1, c.batch_size // b)
        return msg("plan.change.batch", batch=b, accum=accum), dict(batch_size=b, grad_accum=accum)

    def shorter(c: RunConfig) -> tuple[Msg, dict]:
        n = max(256, c.max_length // 2)
        return msg("plan.change.max_length", n=n), dict(max_length=n)

    singles = list(changes)
    if config.batch_size > 1:
        singles.append(smaller_batch(config))
    if config.max_length > 256:
        singles.append(shorter(config))
    current = peak(config)
    scored = sorted(((peak(config.replace(**ch)), what) for what, ch in singles), key=lambda x: x[0])
    out = [msg("plan.advice", change=what, peak=_gb(p)) for p, what in scored if p < current * 0.98]
    if any(p <= available for p, _ in scored):
        return out
    combined, steps = config, []
    has_qlora = any(what.key == "plan.change.qlora" for what, _ in changes)
    for what, ch in changes:
        redundant = ((what.key == "plan.change.lora" and has_qlora)
                     or (what.key == "plan.change.optimizer_8bit" and combined.method != "full"))
        if redundant:
            continue  # QLoRA is LoRA too; an adapter's optimizer state is already small
        combined = combined.replace(**ch)
        steps.append(what)
        if peak(combined) <= available:
            break
    for key, change in (("plan.change.batch", smaller_batch), ("plan.change.max_length", shorter)):
        while peak(combined) > available and _can_shrink(combined, key):
            what, settings = change(combined)
            combined = combined.replace(**settings)
            steps = [x for x in steps if x.key != key] + [what]
    p = peak(combined)
    out.append(msg("plan.advice_all", steps=join(steps, sep=" + "), peak=_gb(p)) if p <= available else msg("plan.advice_none"))
    return out


def _can_shrink(c: RunConfig, key: str) -> bool:
    """Whether the batch (or the max length) can still be halved: down to 1 example (256 tokens)."""
    return c.batch_size > 1 if key == "plan.change.batch" else c.max_length > 256


def _gb(n: float) -> str:
    """Binary units, as `free -g`, Task Manager and nvidia-smi show them (labelled GB, as they do)."""
    if n >= 10 * GIB:
        return f"{n / GIB:.0f} GB"
    if n >= GIB:
        return f"{n / GIB:.1f} GB"
    return f"{n / 2**20:.0f} MB"


def _duration(seconds: float) -> Msg:
    if seconds < 90:
        return msg("plan.seconds", n=f"{seconds:.0f}")
    if seconds < 5400:
        return msg("plan.minutes", n=f"{seconds / 60:.0f}")
    return msg("plan.hours", n=f"{seconds / 3600:.1f}")
