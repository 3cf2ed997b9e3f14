"""Before Start: can this machine run this config, will it fit, and how long will it take.

- `checks`       the machine-dependent checks (precision this device can't run, bitsandbytes missing),
                 after RunConfig's own: `check(config)` is what Start, the CLI and the form ask
- `memory`       the memory planner for any architecture: `estimate(config)` -> fits / tight / doesn't fit,
                 with what to change
- `model_shape`  the model's sizes from its config alone (meta device: nothing is loaded or downloaded)
- `seq2seq`      what an encoder-decoder (T5, BART) keeps for backward: source and target streams, cross-attention
- `speed`        the time per epoch, from this machine's measured speed; `cost`: the run's time and price
- `precision`    which precision a run trains in (fp32, bf16 autocast, bf16 weights), measured on this machine
                 with the model's layer shapes and cached: `decide(config)`; whether an explicit bf16/fp16 can run
- `probe`        the timing behind both: each precision on the model's layer shapes, and the matmul FLOP/s
                 (best of many short samples, kept per process) the time estimate divides by
- `presets`      which preset fits this machine (the Train tab opens on it): `suggest(device, memory, folder)`
                 from each preset's `# fits:` line and the memory planner
"""
from core.plan.checks import check
from core.plan.memory import Estimate, estimate
from core.plan.presets import Suggestion, suggest

__all__ = ["check", "estimate", "Estimate", "suggest", "Suggestion"]
