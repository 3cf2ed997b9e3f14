"""A run's summary (rebuilt from its events.jsonl) turned into what the Train tab shows.

Pure functions, no gradio: the loss curve as a DataFrame, the big status
line, the metric cards, the sample-answer strip and the past-runs table. The
Train tab's timer calls these on `manager.summary(name)`, so every browser
shows the same thing and nothing is drained from a queue.
"""
from __future__ import annotations

import html
import time

import numpy as np
import pandas as pd

from core.plan import cost
from core.runs import RunSummary
from ui.strings import localize, t
from ui.widgets import details_html

STATUS_COLORS = {"running": "#1d4ed8", "preparing": "#6d28d9", "finished": "#15803d", "stopped": "#b45309",
                 "failed": "#b91c1c", "interrupted": "#b45309", "unknown": "#475569", "elsewhere": "#0e7490"}
MAX_POINTS = 2000  # per curve sent to the page (min and max of each bucket kept: see downsample)
STATUS_ICONS = {"running": "●", "preparing": "◌", "finished": "✓", "stopped": "■", "failed": "✗",
                "interrupted": "⚠", "unknown": "·", "elsewhere": "◆"}


def display_status(summary: RunSummary | None) -> str:
    """The run's status as the page names it: a live run with no step yet is 'preparing' (core.runs decides)."""
    if summary is None:
        return "unknown"
    return "preparing" if summary.preparing else summary.status


def loss_frame(summary: RunSummary | None, lang: str = "en") -> pd.DataFrame | None:
    """Columns step, loss, series: one row per logged training loss and per validation loss; None (an
    empty plot) while there is no point to draw.

    gradio's LinePlot lays the chart out (axes, labels, titles) when it is first drawn and later values
    only swap the data (Vega's autosize is not recomputed): drawn first with no point, it kept the
    layout of empty axes, so the x axis, the y title and half the y labels stayed cut off. So nothing
    is drawn until a point exists, and a series with no points yet then gets one empty row (not
    drawn): the colours are fixed from the series present at that first drawing too.
    """
    train, val = t("series_train", lang), t("series_val", lang)
    rows = []
    if summary is not None:
        rows += [(step, loss, train) for step, loss in downsample(_points(summary.path, summary.logs, "loss"))]
        rows += [(step, loss, val) for step, loss in downsample(_points(summary.path, summary.evals, "val_loss"))]
    if not rows:
        return None
    present = {series for _, _, series in rows}
    rows += [(None, None, series) for series in (train, val) if series not in present]
    frame = pd.DataFrame(rows, columns=["step", "loss", "series"])
    return frame.astype({"step": "Int64", "loss": "Float64", "series": "string"})


_curves: dict = {}  # (run folder, field) -> (events seen, the last one seen, steps, values): a tick adds only new events


def _points(path, events: list, name: str) -> tuple[np.ndarray, np.ndarray]:
    """Steps and values of the events with `name`, extended from the last tick's when the events only grew."""
    seen, last, steps, values = _curves.get((path, name), (0, None, None, None))
    if not (0 < seen <= len(events) and events[seen - 1] is last):  # first call, or the curve was rewritten (resume)
        seen, steps, values = 0, np.zeros(0, np.int64), np.zeros(0, np.float64)
    new = [(e["step"], e[name]) for e in events[seen:] if e.get(name) is not None]
    if new:
        steps = np.concatenate([steps, np.fromiter((p[0] for p in new), np.int64, len(new))])
        values = np.concatenate([values, np.fromiter((p[1] for p in new), np.float64, len(new))])
    if len(_curves) > 64:
        _curves.clear()
    _curves[(path, name)] = (len(events), events[-1] if events else None, steps, values)
    return steps, values


def downsample(curve, limit: int = MAX_POINTS) -> list[tuple[int, float]]:
    """At most `limit` points of a curve ((step, value) pairs, or arrays of steps and values): per bucket
    of neighbouring steps its lowest and highest value (in step order), plus the first and last point,
    so spikes and collapses stay visible however long the run, and the page receives a few thousand
    points instead of every step."""
    if isinstance(curve, list):
        steps = np.array([p[0] for p in curve], np.int64)
        values = np.array([p[1] for p in curve], np.float64)
    else:
        steps, values = curve
    n = len(values)
    if n <= limit:
        return list(zip(steps.tolist(), values.tolist()))
    width = -(-n // max(1, limit // 2 - 1))  # points per bucket, so the buckets fit the limit
    buckets = -(-n // width)
    # padding and NaNs (an old run's) never win a bucket's lowest or highest, and never raise
    low, high = np.full(buckets * width, np.inf), np.full(buckets * width, -np.inf)
    low[:n], high[:n] = np.nan_to_num(values, nan=np.inf), np.nan_to_num(values, nan=-np.inf)
    base = np.arange(buckets) * width
    lows = base + low.reshape(buckets, width).argmin(axis=1)
    highs = base + high.reshape(buckets, width).argmax(axis=1)
    chosen = np.unique(np.concatenate([[0, n - 1], lows, highs]))
    return list(zip(steps[chosen].tolist(), values[chosen].tolist()))


def duration(seconds: float | None) -> str:
    """'1:05' or '1:02:03'; '–' when unknown."""
    if seconds is None or seconds < 0:
        return "–"
    seconds = int(round(seconds))
    h, rest = divmod(seconds, 3600)
    m, s = divmod(rest, 60)
    return f"{h}:{m:02d}:{s:02d}" if h else f"{m}:{s:02d}"


def status_html(summary: RunSummary | None, lang: str = "en") -> str:
    """One big, coloured line: status, run name, step counter, and the run's message."""
    state = display_status(summary)
    if summary is None:
        return f'<div class="tl-status" style="--c:{STATUS_COLORS[state]}">{t("status_unknown", lang)}</div>'
    step = t("step_of", lang, step=summary.step, total=summary.total_steps or "?")
    detail = summary.progress if state in ("preparing", "running") and summary.progress else summary.message
    detail = localize(detail, lang)  # core writes English plus a message key; the key picks our language
    notices = "".join(f'<div class="tl-notice">{t("notices", lang)}: {html.escape(localize(n, lang))}</div>'
                      for n in summary.notices[-2:] if n not in summary.warnings)
    notices += "".join(f'<div class="tl-notice tl-warning" style="color:#b91c1c">{html.escape(localize(w, lang))}</div>'
                       for w in summary.warnings[-1:])
    return (f'<div class="tl-status" style="--c:{STATUS_COLORS[state]}" data-status="{state}">'
            f'<span class="tl-badge">{STATUS_ICONS[state]} {t("status_" + state, lang)}</span>'
            f'<span class="tl-run">{html.escape(summary.name)}</span>'
            f'<span class="tl-step" id="tl-step">{step}</span>'
            f'<div class="tl-detail">{html.escape(detail)}</div>{notices}'
            f'{details_html(summary.detail, lang) if state == "failed" else ""}</div>')


def metrics_html(summary: RunSummary | None, lang: str = "en") -> str:
    """Metric cards: loss, validation loss, learning rate, tokens/s, memory, elapsed, time left."""
    log = summary.last_log if summary else {}
    val = summary.evals[-1]["val_loss"] if summary and summary.evals else None
    live = summary is not None and summary.status == "running"
    cards = [
        (t("m_loss", lang), _num(log.get("loss"), "{:.3f}")),
        (t("m_val", lang), _num(val, "{:.3f}")),
        (t("m_lr", lang), _num(log.get("lr"), "{:.2e}")),
        (t("m_tps", lang), _num(log.get("tokens_per_sec"), "{:,.0f}")),
        (t("m_mem", lang), _num(log.get("memory_mb") / 1024 if log.get("memory_mb") else None, "{:.1f} GB")),
        (t("m_elapsed", lang), duration(log.get("elapsed")) if log else "–"),
        (t("m_eta", lang), duration(log.get("eta")) if live else "–"),
        (t("cost.col_time", lang), time_vs_estimate(summary)),  # core/plan/cost.py: real vs estimated at Start
    ]
    body = "".join(f'<div class="tl-card"><div class="tl-k">{k}</div><div class="tl-v">{v}</div></div>' for k, v in cards)
    return f'<div class="tl-cards">{body}</div>'


def time_vs_estimate(summary: RunSummary | None) -> str:
    """'4:05 (3:40)': the time the run trained, and in brackets the estimate made at its Start."""
    if summary is None:
        return "–"
    timing = cost.timing(summary)
    if timing.real is None and timing.estimated is None:
        return "–"
    return f"{cost.clock(timing.real)} ({cost.clock(timing.estimated)})"


def _num(value, pattern: str) -> str:
    return pattern.format(value) if isinstance(value, (int, float)) else "–"


def samples_html(summary: RunSummary | None, lang: str = "en") -> str:
    """Per probe prompt: the latest answer with its step, and the first answer to compare."""
    if not summary or not summary.samples:
        return f'<div class="tl-samples tl-muted">{t("samples_none", lang)}</div>'
    first: dict[str, dict] = {}
    latest: dict[str, dict] = {}
    for sample in summary.samples:
        first.setdefault(sample["prompt"], sample)
        latest[sample["prompt"]] = sample
    parts = []
    for prompt, last in latest.items():
        start = first[prompt]
        before = "" if start is last else (f'<div class="tl-before">{t("sample_first", lang, step=start["step"])}: '
                                           f'{html.escape(start["answer"])}</div>')
        parts.append(f'<div class="tl-sample"><div class="tl-q">{html.escape(prompt)}</div>'
                     f'<div class="tl-a"><b>{t("sample_step", lang, step=last["step"])}:</b> {html.escape(last["answer"])}</div>'
                     f'{before}</div>')
    return f'<div class="tl-samples">{"".join(parts)}</div>'


def runs_frame(summaries: list[RunSummary], lang: str = "en") -> pd.DataFrame:
    """The past-runs table, newest first (each summary knows whether its run is live)."""
    cols = [t(k, lang) for k in ("col_run", "col_status", "col_steps", "col_loss", "col_model", "col_started",
                                 "access.col_owner", "cost.col_time")]
    rows = []
    for s in summaries:
        loss = s.last_log.get("loss")
        started = time.strftime("%Y-%m-%d %H:%M", time.localtime(s.started_at)) if s.started_at else ""
        rows.append([s.name, t("status_" + display_status(s), lang),
                     f"{s.step}/{s.total_steps}", f"{loss:.3f}" if isinstance(loss, (int, float)) else "",
                     s.model, started, s.owner, time_vs_estimate(s)])
    return pd.DataFrame(rows, columns=cols)
