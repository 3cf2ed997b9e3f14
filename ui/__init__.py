"""TuneLab's web interface: four tabs over the same core engine.

`build_app` reads as the table of contents: a header (a calm note when a Space will lose its runs on restart, the
"demo mode" note in a public demo, and "Sign in with Hugging Face" when the Space
turned it on), then Data, Train, Chat and Export. The Data and Train tabs share
one form, keyed by RunConfig field name, so the data checked is the data trained on.
Every action asks ui.identity.user_of who is behind it; the Hub token typed in the
Train tab lives in that browser's page only and is passed to every Hub call the
same browser makes (Data check, training, Chat, Evaluate, Merge, Push).
"""
from __future__ import annotations

from typing import TYPE_CHECKING

from ui.strings import t

if TYPE_CHECKING:
    import gradio as gr

    from core.train.manager import JobManager


def build_app(manager: JobManager, lang: str = "en", notice: str = "",
              sign_in: bool = False, demo: str = "") -> gr.Blocks:
    """The whole app; `notice` is a calm note at the top of every page (HTML-escaped by the caller), `demo`
    the public demo's note; `sign_in` adds gradio's Hugging Face login button."""
    # gradio and torch load here, not on `import ui`, so a bad --auth is answered at once
    import gradio as gr  # noqa: PLC0415 - gradio takes seconds to import; ui.launch checks --auth before

    from ui import chat_tab, data_tab, export_tab, train_tab  # noqa: PLC0415 - the tabs import gradio and torch

    # Gradio keeps its own copy of every upload until restart; ours is kept under the run's uploads folder
    # (ui.data_tab.save_upload copies it at once), so gradio's copies older than a day are removed every hour.
    with gr.Blocks(title=t("title", lang), analytics_enabled=False, delete_cache=(3600, 86400)) as app:
        header(lang, notice, sign_in, demo)
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

        # Run lists change as runs finish: refresh them when their tab is opened.
        chat_page.select(*chat.refresh, show_progress="hidden")
        export_page.select(*export.refresh, show_progress="hidden")
        for fn, inputs, outputs in [*train.loaders, *data.loaders, chat.refresh, export.refresh]:
            app.load(fn, inputs, outputs, show_progress="hidden")
    return app


def header(lang: str, notice: str = "", sign_in: bool = False, demo: str = "") -> None:
    import gradio as gr  # noqa: PLC0415 - see build_app: `import ui` stays light

    if demo:
        gr.HTML(f'<div class="tl-storage" role="status" style="border: 2px solid #0e7490; border-radius: 8px; '
                f'padding: 0.6rem 1rem; margin-top: 0.4rem;">🛈 {demo}</div>', elem_id="demo-note")
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
        # the signed-in name becomes the owner of the runs started from this browser (ui.identity.user_of),
        # which lets in only the names in TUNELAB_HF_USERS / TUNELAB_ADMINS
        gr.LoginButton(value=t("host.sign_in", lang), logout_value=t("host.sign_out", lang), size="sm", scale=0,
                       min_width=240, elem_id="hf-sign-in")
