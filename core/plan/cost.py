"""How long a run will train and what that costs, before Start; at the end, the real figures next to the estimate.

The time is core/plan/speed.py's time per epoch (FLOPs per token over this machine's
measured speed, in the precision the run will train in) scaled to the run's steps.
It covers the training steps, not loading the model or the data. The price is the
visitor's hourly rate (a RunPod-style $/h), a preference of their browser and never
a RunConfig setting: cost = hours x price, worked out when shown, so changing the
price re-prices old runs too.

A job writes the estimate into its events at Start (an "estimate" event, see
`record`), and core.runs adds up the time it really trained (every started/resumed
stretch until it ended), so the comparison survives a restart of the app.
"""
from __future__ import annotations

import math
import time
from dataclasses import dataclass

from core import hardware
from core.config import RunConfig
from core.events import EventLog
from core.messages import Msg, msg
from core.plan.model_shape import read_model_config, shape_of
from core.plan.speed import seconds_per_epoch
from core.runs import open_stretch

MAX_PRICE = 10_000.0  # $/h: anything above is a typo, not a machine


@dataclass(frozen=True)
class Timing:
    """A run's estimated and real training time in seconds (None: unknown); `live` while it still trains."""
    estimated: float | None
    real: float | None
    live: bool = False


def run_seconds(config: RunConfig, data_stats: dict | None, total_steps: int, per_epoch: int,
                model_config=None, device: str | None = None) -> float | None:
    """Seconds the run's `total_steps` optimizer steps should take here; None without data statistics.

    `per_epoch` is the steps one epoch takes (core.train.batches.steps_per_epoch) and `data_stats`
    core.data.pipeline's token statistics of the training split (tokens, trained_share, length_p50).
    """
    if not data_stats or not data_stats.get("tokens") or total_steps <= 0 or per_epoch <= 0:
        return None
    try:
        shape = shape_of(model_config if model_config is not None else read_model_config(config.model))
        epoch = seconds_per_epoch(config, shape, device or hardware.device_type(), int(data_stats["tokens"]),
                                  data_stats)
    except Exception:  # offline, gated, unknown architecture: no estimate, never a failed run or form
        return None
    return None if epoch is None else epoch * total_steps / per_epoch


def price(value) -> float | None:
    """A usable hourly price from what was typed (None for empty, negative, absurd or not a number)."""
    try:
        number = float(value)
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) and 0 <= number <= MAX_PRICE else None


def cost(seconds: float | None, hourly: float | None) -> float | None:
    """Dollars for `seconds` at `hourly` $/h; None when either is unknown."""
    if seconds is None or hourly is None or seconds < 0:
        return None
    return seconds / 3600 * hourly


def money(dollars: float) -> str:
    """'$0.42'; a run too short to cost a cent says so instead of '$0.00'."""
    return "<$0.01" if 0 < dollars < 0.005 else f"${dollars:,.2f}"


def clock(seconds: float | None) -> str:
    """'0:45', '12:05' or '1:02:03'; '–' when unknown."""
    if seconds is None or seconds < 0:
        return "–"
    h, rest = divmod(int(round(seconds)), 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def record(log: EventLog, seconds: float | None) -> None:
    """Write the estimate made at Start into the run's events (nothing when there is none)."""
    if seconds is not None and math.isfinite(seconds) and seconds > 0:
        log.append("estimate", seconds=round(float(seconds), 3))


def timing(summary, now: float | None = None) -> Timing:
    """Estimated vs real training time of a core.runs.RunSummary (a live run's real time counts up to `now`)."""
    real = summary.trained_seconds or 0.0
    live = summary.status == "running" and summary.segment_start > 0
    if live:
        real += max(0.0, (now or time.time()) - summary.segment_start)
    else:  # interrupted (the app died while it trained): up to its last logged step
        real += open_stretch(summary)
    # a run whose start and last step share a clock tick trained ~0 s, which is known, not "unknown"
    began = live or real > 0 or bool(summary.started_at and (summary.logs or summary.status == "finished"))
    return Timing(summary.estimated_seconds, real if began else None, live)


def before_start(seconds: float | None, hourly: float | None) -> Msg:
    """The line shown before Start: about how long, and with a price what it will cost."""
    if seconds is None:
        return msg("cost.no_estimate")
    spent = cost(seconds, hourly)
    if spent is None:
        return msg("cost.estimate", time=clock(seconds))
    return msg("cost.estimate_price", time=clock(seconds), cost=money(spent), price=money(hourly))


def after_end(t: Timing, hourly: float | None) -> Msg | None:
    """The real time (and cost) next to the estimate; None while nothing was trained."""
    if t.real is None:
        return None
    real_cost, est_cost = cost(t.real, hourly), cost(t.estimated, hourly)
    if t.estimated is None:
        if real_cost is None:
            return msg("cost.took", real=clock(t.real))
        return msg("cost.took_price", real=clock(t.real), cost=money(real_cost))
    ratio = f"{t.real / t.estimated:.0%}" if t.estimated else "–"
    if real_cost is None:
        return msg("cost.took_vs", real=clock(t.real), estimated=clock(t.estimated), ratio=ratio)
    return msg("cost.took_vs_price", real=clock(t.real), estimated=clock(t.estimated), ratio=ratio,
               cost=money(real_cost), est_cost=money(est_cost))
