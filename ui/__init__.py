"""TuneLab's web interface: four tabs over the same core engine.

`build_app` reads as the table of contents: a header (a calm note when a Space will lose its runs on restart, the
"demo mode" note in a public demo, the English / 한국어 switch, and "Sign in with Hugging Face" when the
Space turned it on), then Data, Train, Chat and Export. Every text is the catalogue's, in each browser's
language (ui.language: the page is built once per language and relabelled in the browser's). The Data and Train tabs share
one form, keyed by RunConfig field name, so the data checked is the data trained on.
Every action asks ui.identity.user_of who is behind it; the Hub token typed in the
Train tab lives in that browser's page only and is passed to every Hub call the
same browser makes (Data check, training, Chat, Evaluate, Merge, Push).
"""
from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from ui.strings import LANGS, t

if TYPE_CHECKING:
    import gradio as gr

    from core.train.manager import JobManager

Text = str | Callable[[str], str]  # a note given as is, or per language


def build_app(manager: JobManager, lang: str | None = "en", notice: Text = "",
              sign_in: bool = False, demo: Text = "", presenter: bool = False) -> gr.Blocks:
    """The whole app; `notice` is a calm note at the top of every page (HTML-escaped by the caller), `demo`
    the public demo's note (each a text, or a function of the language giving it); `sign_in` adds gradio's
    Hugging Face login button. `lang` is the language of a browser that made no choice on the header's
    switch; None lets each browser start in its own language (see ui.language). `presenter` (--presenter) turns
    presenter mode on for a browser that has not chosen (ui/presenter.py)."""
    # gradio loads here, not on `import ui`, so a bad --auth is answered at once
    from ui import language  # noqa: PLC0415 - imports gradio, which takes seconds; ui.launch checks --auth before

    first = lang if lang in LANGS else "en"
    # the same page in each language, component for component: what differs is what the switch relabels
    others = {code: _page(manager, code, notice, sign_in, demo, presenter)[0] for code in LANGS if code != first}
    app, switch, loaders = _page(manager, first, notice, sign_in, demo, presenter)
    pages = {first: list(app.blocks.values()), **{code: list(page.blocks.values()) for code, page in others.items()}}
    written = {block._id for fn in app.fns.values() for block in fn.outputs}  # what events redraw
    with app:
        language.wire(app, switch, language.Relabel(pages, written), loaders, lang if lang in LANGS else None)
    return app


def _page(manager: JobManager, lang: str, notice: Text, sign_in: bool, demo: Text, presenter: bool = False) -> tuple:
    """(the Blocks in `lang`, its language switch, the loaders to run when a page opens)."""
    import gradio as gr  # noqa: PLC0415 - see build_app

    from ui import chat_tab, data_tab, export_tab, train_tab  # noqa: PLC0415 - the tabs import gradio and torch
    from ui import presenter as stage  # noqa: PLC0415 - imports gradio and torch, like the tabs

    # Gradio keeps its own copy of every upload until restart; ours is kept under the run's uploads folder
    # (ui.data_tab.save_upload copies it at once), so gradio's copies older than a day are removed every hour.
    with gr.Blocks(title=t("title", lang), analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        switch = header(lang, _text(notice, lang), sign_in, _text(demo, lang))
        show = stage.build(lang, presenter)  # the presenter switch and its one-screen panel
        form: dict[str, gr.components.Component] = {}  # RunConfig field -> widget, filled by Data and Train
        with gr.Tabs():
            with gr.Tab(t("tab_data", lang), id="data"):
                data = data_tab.build(form, lang)
            with gr.Tab(t("tab_train", lang), id="train"):
                train = train_tab.build(manager, form, lang, data.stats)
            with gr.Tab(t("tab_chat", lang), id="chat") as chat_page:
                chat = chat_tab.build(manager, lang, base_model=form["model"], token=train.token)
            with gr.Tab(t("tab_export", lang), id="export") as export_page:
                export = export_tab.build(manager, lang, hub_token=train.token)
        data.wire(form, train.token)
        stage.wire(show, manager, train.run_shown, form["model"], train.token, train.timing.price)
        stage.wire_timing(manager, train.timing, train.run_shown)

        # Run lists change as runs finish: refresh them when their tab is opened.
        chat_page.select(*chat.refresh, show_progress="hidden")
        export_page.select(*export.refresh, show_progress="hidden")
    # run on page load, after the page is relabelled in the browser's language (ui.language.wire)
    return app, switch, [*train.loaders, *data.loaders, chat.refresh, export.refresh, *show.loaders]


def _text(value: Text, lang: str) -> str:
    return value(lang) if callable(value) else value


def header(lang: str, notice: str = "", sign_in: bool = False, demo: str = "") -> gr.Radio:
    """The notes, the title, the language switch and (on a Space) the sign-in button; returns the switch."""
    import gradio as gr  # noqa: PLC0415 - see build_app: `import ui` stays light

    from ui.language import switch  # noqa: PLC0415 - imports gradio

    if demo:
        gr.HTML(f'<div class="tl-storage" role="status" style="border: 2px solid #0e7490; border-radius: 8px; '
                f'padding: 0.6rem 1rem; margin-top: 0.4rem;">🛈 {demo}</div>', elem_id="demo-note")
    if notice:  # information, not an alarm: a bordered note in the page's own colours
        gr.HTML(f'<div class="tl-storage" role="status" style="border: 1px solid var(--border-color-primary); '
                f'border-radius: 8px; padding: 0.6rem 1rem; margin-top: 0.4rem;">ℹ {notice}</div>',
                elem_id="storage-note")
    title = f'<div class="tl-header"><h1>{t("title", lang)}</h1><p>{t("subtitle", lang)}</p></div>'
    with gr.Row(equal_height=False):  # the switch and the button stay their own size beside the title
        gr.HTML(title)
        chooser = switch(lang)
        if sign_in:
            # the signed-in name becomes the owner of the runs started from this browser (ui.identity.user_of),
            # which lets in only the names in TUNELAB_HF_USERS / TUNELAB_ADMINS
            gr.LoginButton(value=t("host.sign_in", lang), logout_value=t("host.sign_out", lang), size="sm",
                           scale=0, min_width=240, elem_id="hf-sign-in")
    return chooser
