"""Presenter mode: the demo story on one screen, in large type, for a projector; and the time & cost line.

Turned on by the header's "Presenter mode" switch (or `python app.py --presenter`,
the default for a browser that has not chosen; its choice is kept with
gr.BrowserState). It adds a panel above the tabs: the run's progress and time
left, the question, the base and the tuned answer, and the live loss curve,
laid out to fit 1280x720. ui/style.py makes the type larger and hides the
advanced settings (`.tl-advanced`) while the switch is on: pure CSS on the
switch's state, so nothing else in the page changes.

Nothing here trains or keeps lifecycle state: the panel draws the run the Train
tab shows (ui/live.py's curve, core.runs' summary), asks through the Chat tab's
own `answer` (its bounds, owner checks and device lock), and its Start/Stop
press the Train tab's buttons, so the form's checks apply unchanged.

`timing_box` is the line beside Start: the estimated training time
(core.plan.cost) and, with an hourly price (kept in this browser), its cost;
for the run shown, the real time and cost next to the estimate.
"""
from __future__ import annotations

import html
import time
from dataclasses import dataclass, field

import gradio as gr

from core.errors import AccessDenied
from core.infer import votes
from core.infer.generate import Sampling
from core.plan import cost
from core.runs import RunSummary
from core.train.batches import steps_per_epoch, total_steps
from core.train.manager import JobManager
from ui import chat_answers, live
from ui.form import config_from_values
from ui.identity import user_of
from ui.strings import localize, t
from ui.widgets import error_box, form_values

TICK_SECONDS = 1.5
PRICE_KEY, MODE_KEY = "tunelab-price", "tunelab-presenter"  # this browser's localStorage keys
# gradio encrypts a BrowserState with a key that is random per start unless given: a fixed one keeps the choice
# across restarts. Neither a price nor an on/off switch is a secret.
KEEP_ACROSS_RESTARTS = "tunelab-browser-preference"
SAMPLING = Sampling(max_new_tokens=96)  # the Chat tab's default: the model's own generation_config
TOGGLE_ID = "presenter-toggle"


@dataclass
class Timing:
    """The time & cost line beside Start: the price field, the run shown's line, what the page loads into them."""
    price: gr.Number
    after: gr.Markdown
    lang: str
    loaders: list = field(default_factory=list)


@dataclass
class Presenter:
    toggle: gr.Checkbox
    panel: gr.Column
    parts: dict  # name -> component, wired once the tabs exist (see wire)
    loaders: list = field(default_factory=list)


# -- time & cost beside Start ------------------------------------------------------------------------------
def timing_box(form: dict, data_stats: gr.State, lang: str) -> Timing:
    """The $/h field and the estimate line (before Start); the run shown's real time and cost below it
    (wired by `wire_timing` once the run picker exists)."""
    stored = gr.BrowserState("", storage_key=PRICE_KEY, secret=KEEP_ACROSS_RESTARTS)
    with gr.Row(equal_height=True):
        price = gr.Number(None, label=t("cost.price_label", lang), info=t("cost.price_info", lang), minimum=0,
                          maximum=cost.MAX_PRICE, step=0.01, elem_id="price", scale=1, min_width=200)
        with gr.Column(scale=3):
            before = gr.Markdown(elem_id="time-estimate", elem_classes="tl-big")
            after = gr.Markdown(elem_id="time-real", elem_classes="tl-big")
    fields = list(form.values())

    def on_estimate(data: dict):
        return estimate_line(form_values(form, data), data[data_stats], data[price], lang)

    gr.on([c.change for c in [*fields, data_stats, price]], on_estimate, inputs={*fields, data_stats, price},
          outputs=before, trigger_mode="always_last", show_progress="hidden")
    price.change(_remembered, price, stored, show_progress="hidden")
    return Timing(price=price, after=after, lang=lang, loaders=[(cost.price, stored, price)])


def _remembered(value) -> str:
    usable = cost.price(value)
    return "" if usable is None else str(usable)


def wire_timing(manager: JobManager, timing: Timing, run_shown: gr.Dropdown) -> None:
    """The run shown's real time and cost: when another run is shown, the price changes, or every few seconds."""
    lang = timing.lang

    def on_run(name: str | None, value, request: gr.Request, profile: gr.OAuthProfile | None = None):
        return run_line(_summary(manager, name, request, profile), cost.price(value), lang)

    timer = gr.Timer(4)
    gr.on([run_shown.change, timing.price.change, timer.tick], on_run, [run_shown, timing.price], timing.after,
          show_progress="hidden", concurrency_limit=None)


def estimate_line(values: dict, data_stats: dict | None, price, lang: str) -> str:
    """"Training takes about 3:40 · about $0.03 at $0.44/h" for the form's settings (or why there is none)."""
    try:
        config = config_from_values(values)
    except Exception:  # the settings check above says what is wrong with the form
        return ""
    stats = data_stats or {}
    examples = int(stats.get("examples") or 0)
    seconds = None
    if examples:
        seconds = cost.run_seconds(config, stats, total_steps(examples, config), steps_per_epoch(examples, config))
    return f"⏱ {localize(cost.before_start(seconds, cost.price(price)), lang)}"


def run_line(summary: RunSummary | None, hourly: float | None, lang: str) -> str:
    """The finished (or stopped) run's real time and cost next to its estimate; '' for none."""
    if summary is None or summary.status == "running":
        return ""
    line = cost.after_end(cost.timing(summary), hourly)
    return f"**{html.escape(summary.name)}** · {localize(line, lang)}" if line else ""


# -- the presenter panel -----------------------------------------------------------------------------------
def build(lang: str, on: bool = False) -> Presenter:
    """The switch and the panel (shown when the switch is on); call `wire` once the Train tab exists."""
    toggle = gr.Checkbox(on, label=t("presenter.toggle", lang), elem_id=TOGGLE_ID, container=False)
    with gr.Column(visible=on, elem_id="presenter", elem_classes="tl-presenter") as panel:
        progress = gr.HTML(progress_html(None, None, lang), elem_id="pm-progress")
        with gr.Row(equal_height=False):
            with gr.Column(scale=3, min_width=420):
                with gr.Row(equal_height=True):
                    question = gr.Textbox(label=t("presenter.question", lang), elem_id="pm-question", scale=4,
                                          placeholder=t("presenter.default_question", lang), lines=1, max_lines=2)
                    ask = gr.Button(t("presenter.ask", lang), variant="primary", size="lg", elem_id="pm-ask",
                                    scale=1, min_width=120)
                with gr.Row(equal_height=True):
                    base = gr.HTML(answer_html("base", t("presenter.waiting", lang), lang), elem_id="pm-base")
                    tuned = gr.HTML(answer_html("tuned", t("presenter.waiting", lang), lang), elem_id="pm-tuned")
                note = gr.HTML(elem_id="pm-note")
            with gr.Column(scale=2, min_width=320):
                colors = {t("series_train", lang): "#2563eb", t("series_val", lang): "#ea580c"}
                plot = gr.LinePlot(x="step", y="loss", color="series", color_map=colors, colors_in_legend=[],
                                   label=t("presenter.loss", lang), show_label=True, height=250, elem_id="pm-loss",
                                   x_title=t("m_step", lang), y_title=t("m_loss", lang))
                with gr.Row():
                    # they press the Train tab's own buttons: the same form, checks and messages
                    start = gr.Button(t("presenter.start", lang), variant="primary", size="lg", elem_id="pm-start")
                    stop = gr.Button(t("presenter.stop", lang), variant="stop", size="lg", elem_id="pm-stop")
    stored = gr.BrowserState("", storage_key=MODE_KEY, secret=KEEP_ACROSS_RESTARTS)
    timer = gr.Timer(TICK_SECONDS, active=on)
    parts = dict(progress=progress, question=question, ask=ask, base=base, tuned=tuned, note=note, plot=plot,
                 start=start, stop=stop, stored=stored, timer=timer, lang=lang, default=on)
    return Presenter(toggle=toggle, panel=panel, parts=parts)


def wire(p: Presenter, manager: JobManager, run_shown: gr.Dropdown, base_model, token, price: gr.Number) -> None:
    """Events: the switch, the redraw of the run shown, Ask, and Start/Stop through the Train tab's buttons."""
    c, lang = p.parts, p.parts["lang"]

    def on_toggle(on: bool):
        return gr.update(visible=on), gr.Timer(active=on), "on" if on else "off"

    p.toggle.change(on_toggle, p.toggle, [p.panel, c["timer"], c["stored"]], show_progress="hidden",
                    concurrency_limit=None)
    default = c["default"]
    p.loaders.append((lambda saved: saved == "on" if saved in ("on", "off") else default, c["stored"], p.toggle))

    def on_tick(name: str | None, value, request: gr.Request, profile: gr.OAuthProfile | None = None):
        summary = _summary(manager, name, request, profile)
        return progress_html(summary, cost.price(value), lang), live.loss_frame(summary, lang)

    redraw = dict(fn=on_tick, inputs=[run_shown, price], outputs=[c["progress"], c["plot"]],
                  show_progress="hidden", concurrency_limit=None)
    c["timer"].tick(**redraw)
    run_shown.change(**redraw)
    p.toggle.change(**redraw)

    def on_ask(name, text, model, tok, request: gr.Request, profile: gr.OAuthProfile | None = None):
        yield from ask(manager, name, text, model, tok, lang, request, profile)

    for trigger in (c["ask"].click, c["question"].submit):
        trigger(on_ask, [run_shown, c["question"], base_model, token], [c["base"], c["tuned"], c["note"]])
    c["start"].click(None, js=_press("start"))
    c["stop"].click(None, js=_press("stop"))


def _press(button: str) -> str:
    """JS pressing the Train tab's button `button`; gradio renders a tab's content only once it is opened,
    so the Train tab is opened first (its action line, e.g. why a run cannot start, is then in view)."""
    return f"""async () => {{
  if (!document.getElementById('{button}')) {{
    document.querySelector('[role=tab][data-tab-id=train]')?.click();
    for (let i = 0; i < 100 && !document.getElementById('{button}'); i++) await new Promise(r => setTimeout(r, 100));
  }}
  document.getElementById('{button}')?.click();
}}"""


def _summary(manager: JobManager, name: str | None, request, profile) -> RunSummary | None:
    if not name:
        return None
    try:
        return manager.summary(name, user_of(request, profile))
    except (AccessDenied, ValueError):
        return None


def ask(manager: JobManager, name: str | None, text: str, model: str, token: str, lang: str, request, profile):
    """Streams (base html, tuned html, note) through the Chat tab's `answer`: the run shown when it has a
    trained model, else the base model alone; an empty box asks the demo question."""
    try:
        user = user_of(request, profile)
    except AccessDenied as err:
        yield gr.skip(), gr.skip(), error_box(t("presenter.ask", lang), err, lang)
        return
    question = (text or "").strip() or t("presenter.default_question", lang)
    summary = _summary(manager, name, request, profile)
    run = name if summary is not None and (summary.has_adapter or summary.has_merged) else ""
    if summary is not None and summary.status == "running":
        run = ""  # training holds the device: the Chat tab's answer says so in the note
    for _, turns, note in chat_answers.answer(manager, lang, run or "", "", question, [], SAMPLING, request,
                                              base_model=model or "", token=token or "", user=user):
        if not isinstance(turns, list) or not turns:
            yield gr.skip(), gr.skip(), note
            continue
        answers, notes = turns[-1].get("answers", {}), turns[-1].get("notes", {})
        base = answers.get(votes.BASE) or notes.get(votes.BASE) or "…"
        tuned = answers.get(votes.TUNED) or notes.get(votes.TUNED) or "…"
        if not run and votes.TUNED not in answers:
            tuned = t("presenter.training_now" if summary is not None and summary.status == "running"
                      else "presenter.no_tuned", lang)
        yield answer_html("base", base, lang, question), answer_html("tuned", tuned, lang, question), note


def answer_html(side: str, text: str, lang: str, question: str = "") -> str:
    """One model's answer, big, under its name (and the question it answers)."""
    title = t("presenter.base" if side == "base" else "presenter.tuned", lang)
    asked = f'<div class="pm-asked">{html.escape(question)}</div>' if question else ""
    return (f'<div class="pm-answer pm-{side}"><div class="pm-who">{title}</div>{asked}'
            f'<div class="pm-text">{html.escape(text)}</div></div>')


def progress_html(summary: RunSummary | None, hourly: float | None, lang: str, now: float | None = None) -> str:
    """Status, a progress bar with the step, time left, elapsed, and the estimate (with its cost)."""
    if summary is None:
        return f'<div class="pm-progress tl-muted">{t("presenter.no_run", lang)}</div>'
    state = live.display_status(summary)
    share = min(1.0, summary.step / summary.total_steps) if summary.total_steps else 0.0
    timing = cost.timing(summary, now or time.time())
    eta = summary.last_log.get("eta") if state in ("running", "elsewhere") else (0 if state == "finished" else None)
    estimate = cost.clock(timing.estimated)
    spent = cost.cost(timing.estimated, hourly)
    if spent is not None:
        estimate += f" · {cost.money(spent)}"
    cells = [(t("presenter.time_left", lang), live.duration(eta), "pm-left"),
             (t("presenter.elapsed", lang), cost.clock(timing.real), "pm-elapsed"),
             (t("presenter.estimate", lang), estimate, "pm-estimate")]
    body = "".join(f'<div class="pm-cell"><div class="pm-k">{k}</div><div class="pm-v" id="{i}">{html.escape(v)}'
                   f'</div></div>' for k, v, i in cells)
    real = cost.after_end(timing, hourly) if state in ("finished", "stopped", "failed") else None
    after = f'<div class="pm-after">{html.escape(localize(real, lang))}</div>' if real else ""
    step = t("step_of", lang, step=summary.step, total=summary.total_steps or "?")
    return (f'<div class="pm-progress" style="--c:{live.STATUS_COLORS[state]}" data-status="{state}">'
            f'<div class="pm-head"><span class="pm-badge">{live.STATUS_ICONS[state]} {t("status_" + state, lang)}'
            f'</span><div class="pm-track"><div class="pm-step">{step}</div>'
            f'<div class="pm-bar" id="pm-bar" role="progressbar" aria-valuenow="{share * 100:.0f}" aria-valuemin="0" '
            f'aria-valuemax="100"><div style="width:{share * 100:.1f}%"></div></div></div>{body}</div>{after}</div>')
