"""Export tab: merge a run's adapter into its base, download it as a zip, push it to the Hub.

The merged folder is a plain transformers model (runs/<run>/merged). The Hub
token comes from the password field or HF_TOKEN and is never written down.
"""
from __future__ import annotations

import os
from dataclasses import dataclass

import gradio as gr

from core import runs
from core.infer import export
from core.train.manager import JobManager
from ui.strings import localize, t
from ui.widgets import busy_message, error_md, friendly, run_choices

LOAD_SNIPPET = """```python
from transformers import AutoModelForCausalLM, AutoTokenizer
model = AutoModelForCausalLM.from_pretrained("{path}")
tokenizer = AutoTokenizer.from_pretrained("{path}")
```"""


@dataclass
class ExportTab:
    refresh: tuple  # (fn, inputs, outputs): refresh the run list (page load, tab select)


def build(manager: JobManager, lang: str) -> ExportTab:
    gr.Markdown(t("export_intro", lang), elem_classes="tl-intro")
    with gr.Row():
        run = gr.Dropdown(run_choices(manager, lang), label=t("export_run", lang), scale=4, elem_id="export-run")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    merge = gr.Button(t("merge", lang), variant="primary", size="lg", elem_id="merge")
    merged_path = gr.Textbox(label=t("merged_at", lang), interactive=False, elem_id="merged-path")
    result = gr.Markdown(elem_id="export-result")
    with gr.Row():
        make_zip = gr.Button(t("make_zip", lang), size="lg", elem_id="make-zip")
        download = gr.File(label=t("download", lang), interactive=False, elem_id="download", height=120)
    with gr.Accordion(t("push_title", lang), open=False):
        with gr.Row():
            repo = gr.Textbox(label=t("repo_id", lang), placeholder=t("repo_id_ph", lang), scale=2)
            token = gr.Textbox(label=t("push_token", lang), type="password", scale=2)
            private = gr.Checkbox(value=True, label=t("private", lang), scale=1)
        push = gr.Button(t("push", lang), elem_id="push")
        pushed = gr.Markdown()

    merge.click(lambda name, progress=gr.Progress(): do_merge(manager, lang, name, progress), run, [merged_path, result])
    make_zip.click(lambda name: do_zip(manager, lang, name), run, [download, result])
    push.click(lambda name, r, tok, priv: do_push(manager, lang, name, r, tok, priv), [run, repo, token, private], pushed)
    run.change(lambda name: _merged_of(manager, name), run, merged_path, concurrency_limit=None)
    refresh_fn = lambda current: _refresh(manager, lang, current)
    refresh.click(refresh_fn, run, run, concurrency_limit=None)
    return ExportTab(refresh=(refresh_fn, run, run))


def _refresh(manager: JobManager, lang: str, current: str | None):
    choices = run_choices(manager, lang)
    names = [value for _, value in choices]
    return gr.update(choices=choices, value=current if current in names else (names[0] if names else None))


def _merged_of(manager: JobManager, name: str | None) -> str:
    """The merged folder's path when it exists already."""
    if not name:
        return ""
    merged = runs.run_dir(name, manager.root) / "merged"
    return str(merged) if (merged / "config.json").exists() else ""


def do_merge(manager: JobManager, lang: str, name: str | None, progress) -> tuple:
    """(merged folder, message): core.infer.export.merge with its steps shown as progress."""
    if not name:
        return "", error_md(t("merge", lang), t("pick_run", lang))
    busy = busy_message(manager, lang)
    if busy:
        return "", error_md(t("merge", lang), busy)
    steps = iter((0.1, 0.5, 0.8, 0.9))
    try:
        path = export.merge(runs.run_dir(name, manager.root),
                            progress=lambda message: progress(next(steps, 0.95), desc=localize(message, lang)))
    except Exception as err:  # missing adapter, out of memory, a missing package: one sentence
        return "", error_md(t("merge", lang), friendly(err, lang))
    return str(path), t("merge_done", lang) + "\n\n" + LOAD_SNIPPET.format(path=path)


def do_zip(manager: JobManager, lang: str, name: str | None):
    """(zip file for download, message); the zip sits next to the merged folder in the run."""
    merged = _merged_of(manager, name)
    if not merged:
        return None, error_md(t("make_zip", lang), t("merge_first", lang) if name else t("pick_run", lang))
    try:
        run = runs.run_dir(name, manager.root)
        archive = export.zip_folder(run / "merged", run / "merged.zip")
        # served in place: gradio would otherwise copy hundreds of MB into its cache first
        gr.set_static_paths([archive])
        return str(archive), gr.skip()
    except Exception as err:
        return None, error_md(t("make_zip", lang), friendly(err, lang))


def do_push(manager: JobManager, lang: str, name: str | None, repo: str, token: str, private: bool) -> str:
    """Push the merged model; the token is used for this call only."""
    merged = _merged_of(manager, name)
    if not merged:
        return error_md(t("push", lang), t("merge_first", lang) if name else t("pick_run", lang))
    if not (repo or "").strip() or "/" not in repo:
        return error_md(t("push", lang), t("repo_needed", lang))
    try:
        url = export.push_to_hub(runs.run_dir(name, manager.root) / "merged", repo.strip(),
                                 (token or "").strip() or os.environ.get("HF_TOKEN"), private=bool(private))
    except Exception as err:
        return error_md(t("push", lang), friendly(err, lang))
    return t("pushed", lang, url=url)
