"""TuneLab's web interface: four tabs over the same core engine.

`build_app` reads as the table of contents: a header (with a red banner when
the app is open to the network without a login), then Data, Train, Chat and
Export. The Data and Train tabs share one form, keyed by RunConfig field name,
so the data checked is the data trained on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ui.strings import t

if TYPE_CHECKING:
    import gradio as gr

    from core.train.manager import JobManager


def build_app(manager: JobManager, lang: str = "en", banner: str = "") -> gr.Blocks:
    """The whole app; `banner` is a warning shown in red at the top of every page."""
    # gradio and torch load here, not on `import ui`, so a bad --auth is answered at once
    import gradio as gr  # noqa: PLC0415 - gradio takes seconds to import; ui.launch checks --auth before

    from ui import chat_tab, data_tab, export_tab, train_tab  # noqa: PLC0415 - the tabs import gradio and torch

    with gr.Blocks(title=t("title", lang), analytics_enabled=False) as app:
        header(lang, banner)
        form: dict[str, gr.components.Component] = {}  # RunConfig field -> widget, filled by Data and Train
        with gr.Tabs():
            with gr.Tab(t("tab_data", lang), id="data"):
                data = data_tab.build(form, lang)
            with gr.Tab(t("tab_train", lang), id="train"):
                train = train_tab.build(manager, form, lang, data.stats)
            with gr.Tab(t("tab_chat", lang), id="chat") as chat_page:
                chat = chat_tab.build(manager, lang, base_model=form["model"])
            with gr.Tab(t("tab_export", lang), id="export") as export_page:
                export = export_tab.build(manager, lang)
        data.wire(form, train.token)

        # Run lists change as runs finish: refresh them when their tab is opened.
        chat_page.select(*chat.refresh, show_progress="hidden")
        export_page.select(*export.refresh, show_progress="hidden")
        for fn, inputs, outputs in [*train.loaders, *data.loaders, chat.refresh, export.refresh]:
            app.load(fn, inputs, outputs, show_progress="hidden")
    return app


def header(lang: str, banner: str = "") -> None:
    import gradio as gr  # noqa: PLC0415 - see build_app: `import ui` stays light

    if banner:
        gr.HTML(f'<div class="tl-danger" role="alert">{banner}</div>', elem_id="security-banner")
    gr.HTML(f'<div class="tl-header"><h1>{t("title", lang)}</h1><p>{t("subtitle", lang)}</p></div>')
