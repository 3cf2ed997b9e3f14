"""Before Start: can this machine run this config, will it fit, and how long will it take.

- `checks`       the machine-dependent checks (precision this device can't run, bitsandbytes missing),
                 after RunConfig's own: `check(config)` is what Start, the CLI and the form ask
- `memory`       the memory planner for any architecture: `estimate(config)` -> fits / tight / doesn't fit,
                 with what to change
- `model_shape`  the model's sizes from its config alone (meta device: nothing is loaded or downloaded)
- `speed`        the time per epoch, from this machine's measured speed
"""
from core.plan.checks import check
from core.plan.memory import Estimate, estimate

__all__ = ["check", "estimate", "Estimate"]
