"""Train tab: model, preset, the settings form, Start/Stop/Resume, and the live run.

It opens on the preset that fits this machine (core.plan.presets: cpu-demo on a CPU, the card's
preset on a GPU, with a note saying why) and says, under the model, where the embedded model
comes from (its package, or the Hugging Face Hub on a Space).

The simple view holds the settings most people change; every other RunConfig
field is generated into accordions by section. The live part (status, loss
curve, metrics, sample answers) is redrawn by a gr.Timer from the run's files.
Every handler asks ui.identity who is behind the request, so each user sees and
acts on their own runs only (an admin on all); "trust remote code" is in the
form only when the owner started the app with --allow-remote-code.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core import access
from core.access import User
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import AccessDenied
from core.train.manager import JobManager
from ui import presenter
from ui import train_actions as act
from ui.form import SIMPLE_FIELDS, advanced_fields, initial_values, preset_choices, preset_description, preset_values
from ui.identity import user_of
from ui.live import runs_frame
from ui.strings import field_label, page_lang, t
from ui.widgets import error_box, field_widget, form_values

TICK_SECONDS = 1.5
NOBODY = User("")  # not signed in: sees no run
MODEL_CHOICES = [DEFAULT_MODEL, "Qwen/Qwen2.5-0.5B-Instruct", "Qwen/Qwen2.5-1.5B-Instruct",
                 "meta-llama/Llama-2-7b-hf", "EleutherAI/polyglot-ko-12.8b"]


@dataclass
class TrainTab:
    token: gr.Textbox
    run_shown: gr.Dropdown
    loaders: list  # (fn, inputs, outputs) to run on page load
    timing: presenter.Timing | None = None  # the time & cost line beside Start (ui/presenter.py)


def build(manager: JobManager, form: dict, lang: str, data_stats: gr.State) -> TrainTab:
    # The page opens on the preset that fits this machine, its values in the form as if it had been picked.
    opening, note = act.opening_preset(lang)
    initial = demo_values(initial_values(opening))
    with gr.Row():
        with gr.Column(scale=2, min_width=240):
            preset = gr.Dropdown([(t("preset_none", lang), "")] + preset_choices(lang), value=opening,
                                 label=t("preset", lang), info=note or None, elem_id="preset")
            about = gr.Markdown(preset_description(opening, lang), elem_id="preset-about", elem_classes="tl-muted")
        with gr.Column(scale=2, min_width=240):
            form["model"] = gr.Dropdown(MODEL_CHOICES, value=initial["model"], allow_custom_value=True,
                                        label=field_label("model", lang), elem_id="f-model",
                                        info=RunConfig.field_info("model", lang)["help"])
            source_line = act.model_source(initial["model"], lang)
            source = gr.Markdown(source_line, visible=bool(source_line), elem_id="model-source", elem_classes="tl-muted")
        form["method"] = field_widget("method", lang, value=initial["method"], scale=1)
    gr.Markdown(f"**{t('simple_settings', lang)}**")
    for row in (SIMPLE_FIELDS[:4], SIMPLE_FIELDS[4:]):
        with gr.Row():
            for name in row:
                form[name] = field_widget(name, lang, value=initial[name])
    check = gr.Markdown(elem_id="settings-check", elem_classes="tl-check")
    token = _advanced(form, lang, initial)
    with gr.Row():
        start = gr.Button(t("start", lang), variant="primary", size="lg", elem_id="start", scale=2)
        stop = gr.Button(t("stop", lang), variant="stop", size="lg", elem_id="stop")
        resume = gr.Button(t("resume", lang), variant="secondary", size="lg", elem_id="resume")
    action = gr.HTML(elem_id="train-action")
    timing = presenter.timing_box(form, data_stats, lang)

    gr.Markdown(f"### {t('live_title', lang)}")
    with gr.Row():
        run_shown = gr.Dropdown([], label=t("run_shown", lang), scale=4, elem_id="run-shown")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    status = gr.HTML(elem_id="train-status")
    metrics = gr.HTML(elem_id="train-metrics")
    with gr.Row():
        with gr.Column(scale=3):
            colors = {t("series_train", lang): "#2563eb", t("series_val", lang): "#ea580c"}
            # our own legend: gradio's sits under the x axis and gets cut off
            gr.HTML(" ".join(f'<span class="tl-legend" style="color:{c}">━━ {name}</span>' for name, c in colors.items()))
            plot = gr.LinePlot(x="step", y="loss", color="series", color_map=colors, colors_in_legend=[],
                               label=t("loss_plot", lang), show_label=True, height=340, elem_id="loss-plot",
                               x_title=t("m_step", lang), y_title=t("m_loss", lang))
        with gr.Column(scale=2):
            gr.Markdown(f"**{t('samples', lang)}**")
            samples = gr.HTML(elem_id="samples")
    with gr.Accordion(t("past_runs", lang), open=False):
        table = gr.Dataframe(interactive=False, elem_id="runs-table", wrap=True)
    with gr.Accordion(t("run_settings", lang), open=False):
        settings = gr.Code(language="yaml", interactive=False, elem_id="run-settings")
        use_settings = gr.Button(t("use_settings", lang))
    timer = gr.Timer(TICK_SECONDS)
    last_sig, known = gr.State(""), gr.State("")

    # --- wiring ---------------------------------------------------------------
    names, fields = list(form), list(form.values())
    inputs = {*fields, token}
    shown = [status, metrics, plot, samples, settings]

    def on_preset(stem: str, data: dict):
        if not stem:
            return [gr.skip()] * len(names)
        values = preset_values(stem, form_values(form, data))
        return [values[n] for n in names]

    preset.change(lambda stem, *vals: on_preset(stem, dict(zip(fields, vals))), [preset, *fields], fields)
    preset.change(lambda stem: preset_description(stem, page_lang(lang)), preset, about, show_progress="hidden")
    form["model"].change(lambda model: _source_update(model, lang), form["model"], source, show_progress="hidden")
    check_settings = lambda data: act.settings_check(form_values(form, data), lang, data[data_stats])
    gr.on([c.change for c in [*fields, data_stats]], check_settings, inputs={*fields, data_stats}, outputs=check,
          trigger_mode="always_last", show_progress="hidden")

    def on_start(data: dict, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            return error_box(t("cannot_start", lang), err, lang), gr.skip()
        return act.start(manager, form_values(form, data), data[token], user, lang)

    def on_resume(name: str, tok: str, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            return error_box(t("cannot_start", lang), err, lang), gr.skip()
        return act.resume(manager, name, tok, user, lang)

    def on_stop(request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            return act.stop(manager, lang, user_of(request, profile))
        except AccessDenied as err:
            return error_box(t("stop", lang), err, lang)

    def on_show(name: str, request: gr.Request, profile: gr.OAuthProfile | None):
        user = viewer(request, profile)
        return (*act.render(manager, name, lang, user), act.signature(manager, name, user))

    def on_tick(name: str, sig: str, k: str, request: gr.Request, profile: gr.OAuthProfile | None):
        return act.tick(manager, name, sig, k, lang, viewer(request, profile))

    def on_refresh(name: str, request: gr.Request, profile: gr.OAuthProfile | None):
        user = viewer(request, profile)
        return act.run_picker(manager, lang, name, user), _table(manager, lang, user)

    def on_use(name: str, request: gr.Request, profile: gr.OAuthProfile | None):
        return act.settings_of(manager, name, lang, names, viewer(request, profile))

    def on_load(request: gr.Request, profile: gr.OAuthProfile | None):
        return _on_load(manager, lang, viewer(request, profile))

    start.click(on_start, inputs, [action, run_shown], concurrency_limit=None)
    stop.click(on_stop, None, action, concurrency_limit=None)
    resume.click(on_resume, [run_shown, token], [action, run_shown], concurrency_limit=None)
    run_shown.change(on_show, run_shown, [*shown, last_sig], show_progress="hidden", concurrency_limit=None)
    timer.tick(on_tick, [run_shown, last_sig, known], [*shown, last_sig, known, run_shown], show_progress="hidden",
               concurrency_limit=None)
    refresh.click(on_refresh, run_shown, [run_shown, table], concurrency_limit=None)
    table.select(_pick_row, None, run_shown)
    use_settings.click(on_use, run_shown, [*fields, action])

    loaders = [(on_load, None, [run_shown, table, known, *shown, last_sig]),
               (check_settings, {*fields, data_stats}, check), *timing.loaders,
               # lines under the preset and the model: redrawn in the page's language for what is chosen now
               (lambda stem: preset_description(stem, page_lang(lang)), preset, about),
               (lambda model: _source_update(model, lang), form["model"], source)]
    return TrainTab(token=token, run_shown=run_shown, loaders=loaders, timing=timing)


def _advanced(form: dict, lang: str, initial: dict) -> gr.Textbox:
    """Accordions with every other RunConfig field, three to a row, holding `initial`; returns the token box."""
    token = None
    for section, names in advanced_fields().items():
        with gr.Accordion(t("advanced", lang, section=t("section_" + section, lang)), open=False,
                          elem_classes="tl-advanced"):  # hidden in presenter mode (ui/style.py)
            if section == "model":
                token = gr.Textbox(label=t("hf_token", lang), type="password", elem_id="hf-token")
            for i in range(0, len(names), 3):
                with gr.Row():
                    for name in names[i:i + 3]:
                        form[name] = field_widget(name, lang, value=initial[name], **_hidden(name))
    return token


def demo_values(values: dict) -> dict:
    """In a public demo the page opens inside the demo's caps (steps, length, batch), so Start works as it is."""
    policy = access.current()
    if not policy.public_demo:
        return values
    steps = values.get("max_steps") or 0
    return {**values, "max_steps": steps if 0 < steps <= policy.demo_max_steps else policy.demo_max_steps,
            "max_length": min(values["max_length"], policy.demo_max_length),
            "batch_size": min(values["batch_size"], policy.demo_max_batch), "grad_accum": 1}


def _hidden(name: str) -> dict:
    """trust_remote_code is not offered (and stays False) unless the owner allowed remote code."""
    if name == "trust_remote_code" and not access.current().allow_remote_code:
        return {"visible": False, "interactive": False}
    return {}


def viewer(request: gr.Request, profile=None) -> User:
    """Who is looking: a signed-out visitor sees no run (actions say "sign in first")."""
    try:
        return user_of(request, profile)
    except AccessDenied:
        return NOBODY


def _source_update(model: str, lang: str):
    line = act.model_source(model, lang)
    return gr.update(value=line, visible=bool(line))



def _pick_row(evt: gr.SelectData):
    row = evt.row_value or []
    return row[0] if row else gr.skip()


def _table(manager: JobManager, lang: str, user: User | None = None):
    return runs_frame(manager.list_runs(user), lang)


def _on_load(manager: JobManager, lang: str, user: User | None = None) -> tuple:
    """Page load: show this user's live run (or their newest), fill the runs table with theirs."""
    name = act.initial_run(manager, user)
    return (act.run_picker(manager, lang, name, user), _table(manager, lang, user),
            ",".join(act.run_names(manager, user)), *act.render(manager, name, lang, user),
            act.signature(manager, name, user))
