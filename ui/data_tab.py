"""Data tab: pick the source, see the detected format, counts, tokens and a chat preview.

The dataset fields it shows (dataset, config, split, format, question/answer
columns) are RunConfig fields put into the shared form, so what is checked
here is exactly what the Train tab trains on.

Before core reads anything, the config passes core.access: a dataset path or
model folder typed here must lie inside the folders the owner allows
(TUNELAB_DATA_DIRS, the built-in data, this user's uploads; symlinks resolved),
remote code needs the owner's --allow-remote-code, and a public demo's limits
hold. Uploads are kept per user (uploads/<user>/), capped in size and count.
"""
from __future__ import annotations

import hashlib
import shutil
from dataclasses import dataclass, field
from pathlib import Path

import gradio as gr
import pandas as pd

from core import access, runs
from core.access import User
from core.config import DEFAULT_DATASET
from core.errors import AccessDenied
from core.messages import join, msg
from ui.form import config_from_values
from ui.identity import user_of
from ui.preview import bubbles_html, data_report, highlighted_value
from ui.strings import localize, t
from ui.widgets import details_html, error_box, field_widget, form_values, friendly

FILE_TYPES = [".json", ".jsonl", ".csv", ".tsv", ".parquet", ".txt"]
STAT_KEYS = ("examples", "tokens", "trained_tokens", "trained_share", "truncated", "length_min", "length_p50",
             "length_p90", "length_max")


@dataclass
class DataTab:
    check: gr.Button
    outputs: list
    lang: str
    source: gr.Radio
    upload: gr.File
    source_outputs: list
    stats: gr.State  # token statistics of the last check, for the Train tab's memory/time estimate
    loaders: list = field(default_factory=list)  # (fn, inputs, outputs) to run on page load

    def wire(self, form: dict, token: gr.Textbox) -> None:
        """Connect the check button once every form widget exists (the Train tab adds most)."""
        lang = self.lang

        def run_check(data: dict, request: gr.Request, profile: gr.OAuthProfile | None):
            try:
                user = user_of(request, profile)
            except AccessDenied as err:
                return error_box(t("data_problem", lang), err, lang), "", None, None, None
            return check_data(form_values(form, data), data[token], lang, user)

        def on_upload(path: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
            try:
                return save_upload(path, user_of(request, profile))
            except AccessDenied as err:
                gr.Warning(friendly(err, lang))
                return gr.skip()

        inputs = {*form.values(), token}
        self.check.click(run_check, inputs, self.outputs)
        # a new file or the demo again: check it straight away
        self.upload.upload(on_upload, self.upload, form["dataset"]).then(run_check, inputs, self.outputs)
        def after_source(data: dict, request: gr.Request, profile: gr.OAuthProfile | None):
            return run_check(data, request, profile) if data[self.source] == "demo" else (gr.skip(),) * 5

        self.source.input(_source_changed, self.source, self.source_outputs).then(
            after_source, {*inputs, self.source}, self.outputs)
        self.loaders.append((run_check, inputs, self.outputs))


def build(form: dict, lang: str) -> DataTab:
    gr.Markdown(t("data_intro", lang), elem_classes="tl-intro")
    source = gr.Radio([(t("source_demo", lang), "demo"), (t("source_hub", lang), "hub"),
                       (t("source_upload", lang), "upload")], value="demo", label=t("source", lang))
    with gr.Row():
        form["dataset"] = field_widget("dataset", lang, scale=3)
        form["dataset_config"] = field_widget("dataset_config", lang, visible=False)
        form["dataset_split"] = field_widget("dataset_split", lang, visible=False)
    upload = gr.File(label=t("upload", lang), file_types=FILE_TYPES, type="filepath", visible=False)
    with gr.Row():
        form["data_format"] = field_widget("data_format", lang, label=t("format_override", lang))
        form["prompt_column"] = field_widget("prompt_column", lang)
        form["response_column"] = field_widget("response_column", lang)
    check = gr.Button(t("check_data", lang), variant="primary", size="lg", elem_id="check-data")
    summary = gr.Markdown(elem_id="data-summary", elem_classes="tl-big")
    with gr.Row():
        with gr.Column(scale=3):
            gr.Markdown(f"**{t('preview', lang)}**")
            preview = gr.HTML(elem_id="data-preview")
        with gr.Column(scale=2):
            tokens = gr.HighlightedText(label=t("token_view", lang), show_legend=True, combine_adjacent=True,
                                        color_map={t("trained", lang): "green", t("context", lang): "#cbd5e1"})
            hist = gr.BarPlot(x="length", y="count", label=t("histogram", lang), show_label=True, height=260,
                              x_label_angle=-40)

    stats = gr.State(None)
    return DataTab(check=check, outputs=[summary, preview, tokens, hist, stats], lang=lang, source=source,
                   upload=upload, source_outputs=[form["dataset"], form["dataset_config"], form["dataset_split"], upload],
                   stats=stats)


def _source_changed(source: str):
    hub, up = source == "hub", source == "upload"
    dataset = DEFAULT_DATASET if source == "demo" else gr.update(value="")
    return (dataset, gr.update(visible=hub), gr.update(visible=hub), gr.update(visible=up))


def save_upload(path: str | None, user: User) -> str:
    """Keep the upload in this user's uploads folder (gradio's temp files vanish), named by its content.

    AccessDenied when the file is over the size limit or the user has uploaded the most files kept.
    """
    if not path:
        return gr.skip()
    src, limits = Path(path), access.current().limits
    size_mb = src.stat().st_size / 2**20
    if size_mb > limits.upload_mb:
        raise AccessDenied(msg("access.upload_too_big", size=f"{size_mb:.1f}", limit=limits.upload_mb))
    digest = hashlib.sha256(src.read_bytes()).hexdigest()[:8]
    folder = access.uploads_dir(user)
    folder.mkdir(parents=True, exist_ok=True)
    target = runs.same_upload(src, folder) or folder / f"{runs.safe_name(src.stem) or 'data'}-{digest}{src.suffix.lower()}"
    if not target.exists():
        if sum(1 for p in folder.iterdir() if p.is_file()) >= limits.uploads_per_user:
            raise AccessDenied(msg("access.upload_count", limit=limits.uploads_per_user))
        shutil.copyfile(src, target)
    return str(target)


def check_data(values: dict, token: str, lang: str, user: User | None = None) -> tuple:
    """(summary markdown, preview html, token view, histogram, token statistics); errors become one red box.

    `user` (from the browser; None only for the owner's own calls) must be allowed to read the paths typed.
    """
    try:
        config = config_from_values(values)
        # what reading the data depends on (the model's tokenizer, the paths); steps and batch matter at Start
        problems = [p for p in access.check_config(config) if p.key in ("access.remote_code_off", "access.demo_model")]
        problems += access.check_local_paths(config, user) if user else []
        if problems:
            raise AccessDenied(join(problems))
        report, examples = data_report(config, token or None)
    except Exception as err:  # any bad file or setting: a sentence, not a traceback
        return error_box(t("data_problem", lang), err, lang), "", None, None, None
    bars = [(localize(label, lang), count) for label, count in report.get("histogram") or []]  # labels may be Msgs
    frame = pd.DataFrame(bars, columns=["length", "count"])
    return (summary_markdown(report, lang), bubbles_html(examples, lang),
            highlighted_value(report.get("highlighted") or [], lang) or None,
            gr.BarPlot(value=frame, sort=[label for label, _ in bars]) if bars else None,
            {k: report[k] for k in STAT_KEYS if k in report} if report.get("tokens") else None)


def summary_markdown(report: dict, lang: str) -> str:
    """Format and counts, token statistics, what preprocessing did, and problems, in a few lines.

    Every text from core.data (format name, drop reasons, steps, notes, problems) may be a
    core.messages Msg: each is shown with `localize`, so it reads in the page's language.
    """
    lines = []
    if report.get("kept"):
        layout = report.get("layout") or report.get("format_name") or report.get("format")
        lines.append(t("data_summary", lang, format=localize(layout, lang), rows=report.get("rows", "?"),
                       kept=report.get("kept", "?"), examples=report.get("examples", "?")))
    if report.get("tokens"):
        lines.append(t("token_summary", lang, tokens=f"{report['tokens']:,}", trained=f"{report.get('trained_tokens', 0):,}",
                       share=f"{report.get('trained_share', 0):.0%}", lmin=report.get("length_min", 0),
                       p50=report.get("length_p50", 0), p90=report.get("length_p90", 0),
                       lmax=report.get("length_max", 0), truncated=report.get("truncated", 0)))
    dropped = report.get("dropped") or {}
    if dropped:
        lines.append(t("dropped", lang, what=", ".join(f"{n} {localize(why, lang)}" for why, n in dropped.items())))
    lines += [f"- {localize(step, lang)}" for step in [*(report.get("steps") or []), *(report.get("notes") or [])]]
    lines += [f"⚠ **{t('data_problem', lang)}:** {localize(p, lang)}" for p in report.get("problems") or []]
    if report.get("problem_detail"):  # the data could not be read: the library's words, folded (core.doctor)
        lines.append(details_html(report["problem_detail"], lang))
    if report.get("ok"):
        lines.append(t("data_ok", lang))
    return "\n\n".join(lines)
