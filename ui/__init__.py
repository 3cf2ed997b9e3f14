"""TuneLab's web interface: four tabs over the same core engine.

`build_app` reads as the table of contents: a header (with a red banner when
the app is open to the network without a login, a calm note when a Space will
lose its runs on restart, and "Sign in with Hugging Face" when the Space turned
it on), then Data, Train, Chat and Export. The Data and Train tabs share one form, keyed by RunConfig field name,
so the data checked is the data trained on.
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ui.strings import t

if TYPE_CHECKING:
    import gradio as gr

    from core.train.manager import JobManager


def build_app(manager: JobManager, lang: str = "en", banner: str = "", notice: str = "",
              sign_in: bool = False) -> gr.Blocks:
    """The whole app; `banner` is a warning shown in red at the top of every page, `notice` a calm note
    under it (HTML-escaped by the caller, like the banner); `sign_in` adds gradio's Hugging Face login button."""
    # gradio and torch load here, not on `import ui`, so a bad --auth is answered at once
    import gradio as gr  # noqa: PLC0415 - gradio takes seconds to import; ui.launch checks --auth before

    from ui import chat_tab, data_tab, export_tab, train_tab  # noqa: PLC0415 - the tabs import gradio and torch

    with gr.Blocks(title=t("title", lang), analytics_enabled=False) as app:
        header(lang, banner, notice, sign_in)
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


def header(lang: str, banner: str = "", notice: str = "", sign_in: bool = False) -> None:
    import gradio as gr  # noqa: PLC0415 - see build_app: `import ui` stays light

    if banner:
        gr.HTML(f'<div class="tl-danger" role="alert">{banner}</div>', elem_id="security-banner")
    if notice:  # information, not an alarm: a bordered note in the page's own colours
        gr.HTML(f'<div class="tl-storage" role="status" style="border: 1px solid var(--border-color-primary); '
                f'border-radius: 8px; padding: 0.6rem 1rem; margin-top: 0.4rem;">ℹ {notice}</div>',
                elem_id="storage-note")
    title = f'<div class="tl-header"><h1>{t("title", lang)}</h1><p>{t("subtitle", lang)}</p></div>'
    if not sign_in:
        gr.HTML(title)
        return
    with gr.Row(equal_height=False):  # the button stays its own size beside the title
        gr.HTML(title)
        # the signed-in name becomes the "who" of the runs started from this browser (ui.identity.who);
        # it names people, it does not keep anyone out (restricting accounts is a later, security issue)
        gr.LoginButton(value=t("host.sign_in", lang), logout_value=t("host.sign_out", lang), size="sm", scale=0,
                       min_width=240, elem_id="hf-sign-in")
