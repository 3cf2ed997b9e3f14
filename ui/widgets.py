"""Small gradio helpers shared by the tabs: generated setting widgets, run pickers, errors.

Setting widgets are made from RunConfig's field metadata (type, help text,
choices) so the advanced form never drifts from the dataclass.
"""
from __future__ import annotations

import html

import gradio as gr

from core.config import RunConfig
from core.doctor import Diagnosis, diagnose
from core.messages import DEFAULT_LANG, catalog
from ui.form import widget_kind
from ui.strings import field_label, localize, t


def field_widget(name: str, lang: str, value=None, **kw) -> gr.components.Component:
    """The widget for one RunConfig field, labelled, with the field's help as its info text."""
    info = RunConfig.field_info(name, lang)
    value = getattr(RunConfig(), name) if value is None else value
    common = {"label": field_label(name, lang), "info": info["help"], "elem_id": f"f-{name}", **kw}
    kind = widget_kind(name)
    if kind == "dropdown":
        return gr.Dropdown(choices=[_choice(name, c, lang) for c in info["choices"]], value=value, **common)
    if kind == "checkbox":
        return gr.Checkbox(value=value, **common)
    if kind == "int":
        return gr.Number(value=value, precision=0, **common)
    if kind == "float":
        return gr.Number(value=value, **common)
    if kind == "lines":
        text = "\n".join(value) if isinstance(value, list) else value
        return gr.Textbox(value=text, lines=3, **common)
    return gr.Textbox(value=value, **common)


def _choice(name: str, value: str, lang: str):
    """A setting's choice as (words in `lang`, value) where the catalogue names it (`choice.<field>.<value>`,
    else `choice.<value>`); a technical name (adamw_8bit, nf4, ddp) is shown as it is."""
    for key in (f"choice.{name}.{value}", f"choice.{value}"):
        if key in catalog(DEFAULT_LANG):
            return t(key, lang), value
    return value


def friendly(err: BaseException, lang: str = "en") -> str:
    """What went wrong and what to do (core.doctor), never a traceback; in `lang`. For one line or a toast;
    a box in the page is error_box(), which also has the details."""
    return localize(diagnose(err).message, lang)


def error_md(title: str, message: str) -> str:
    """A red box for the page."""
    return f'<div class="tl-error"><b>{html.escape(title, quote=False)}:</b> {html.escape(message, quote=False)}</div>'


def error_box(title: str, err: BaseException, lang: str = "en", context: dict | None = None) -> str:
    """A red box for any error: what happened, what to do, and the technical text under "Show details"."""
    return diagnosis_html(diagnose(err, context), lang, title)


def diagnosis_html(diagnosis: Diagnosis, lang: str = "en", title: str = "") -> str:
    """A core.doctor Diagnosis as HTML (also fine inside gr.Markdown: one line, no blank lines)."""
    head = f"<b>{html.escape(title, quote=False)}:</b> " if title else ""
    todo = (f'<div class="tl-todo"><b>{html.escape(t("doctor.todo_label", lang))}:</b> '
            f'{html.escape(localize(diagnosis.todo, lang), quote=False)}</div>') if diagnosis.todo else ""
    return (f'<div class="tl-error" data-kind="{html.escape(diagnosis.kind)}">{head}'
            f'{html.escape(localize(diagnosis.what, lang), quote=False)}{todo}'
            f'{details_html(diagnosis.detail, lang)}</div>')


def details_html(detail: str, lang: str = "en") -> str:
    """The technical text, folded away behind "Show details" ('' when there is none)."""
    if not detail:
        return ""
    # newlines as character references: a blank line would end the HTML block inside gr.Markdown
    body = html.escape(detail, quote=False).replace("\n", "&#10;")
    return (f'<details class="tl-details"><summary>{html.escape(t("doctor.show_details", lang))}</summary>'
            f'<pre style="white-space: pre-wrap; font-size: 0.8rem">{body}</pre></details>')


def run_choices(manager, lang: str, usable_only: bool = True, base_option: bool = False,
                who=None) -> list[tuple[str, str]]:
    """(label, run name) for the run pickers; usable = has an adapter or a merged model, not training.

    `who` (a core.access.User) limits them to the runs that user may see; None lists every run."""
    choices = [(t("base_only", lang), "")] if base_option else []
    active = manager.active_names()
    for s in manager.list_runs(who):
        if usable_only and (s.name in active or not (s.has_adapter or s.has_merged)):
            continue
        choices.append((f"{s.name}  ·  {t('status_' + s.status, lang) if s.status != 'unknown' else ''}", s.name))
    return choices


def busy_message(manager, lang: str) -> str:
    """A sentence when a training job is using the machine, else ''."""
    job = manager.current
    return t("training_busy", lang, run=job.name) if job else ""


def form_values(form: dict, data: dict) -> dict:
    """Setting name -> value, from the {component: value} dict gradio passes for set inputs."""
    return {name: data[comp] for name, comp in form.items() if comp in data}
