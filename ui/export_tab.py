"""Export tab: the merged model (half precision, size shown first), GGUF + Ollama Modelfile with the parity
check's result, a zip, or a Hub push of the adapter / merged model / GGUF.

The work is core.infer.export's; this file shows it. The Hub token comes from
the password field, else this browser's Train-tab token (else HF_TOKEN, for an
admin only) and is never written down. A user exports only their own runs (an
admin any); merge, GGUF, zip and push hold the device lock; the zip is handed
out by a per-request link (ui.identity.private_download); a public demo does
not push. An existing public repo is named in a confirmation, never kept
public silently.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core import access, devicelock, runs
from core.access import User
from core.errors import AccessDenied, TuneLabError
from core.infer import export, gguf
from core.infer.chat import model_class  # the class a merged folder loads with (seq2seq or causal)
from core.train.manager import JobManager
from ui import identity
from ui.strings import localize, t
from ui.widgets import busy_message, error_box, error_md, friendly, run_choices

LOAD_SNIPPET = """```python
from transformers import {auto}, AutoTokenizer
model = {auto}.from_pretrained("{path}")
tokenizer = AutoTokenizer.from_pretrained("{path}")
```"""
OLLAMA_SNIPPET = "```bash\ncd {path}\nollama create {name} -f Modelfile\nollama run {name}\n```"


@dataclass
class ExportTab:
    refresh: tuple  # (fn, inputs, outputs): refresh the run list (page load, tab select)


def build(manager: JobManager, lang: str, hub_token: gr.components.Component | None = None) -> ExportTab:
    """`hub_token`: the Train tab's token box (this browser's Hub token)."""
    gr.Markdown(t("xp.intro", lang), elem_classes="tl-intro")
    hub_token = hub_token if hub_token is not None else gr.State("")
    with gr.Row():  # the runs are filled per user on page load
        run = gr.Dropdown([], label=t("export_run", lang), scale=4, elem_id="export-run")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    with gr.Row():
        dtypes = [(t("choice.auto", lang), d) if d == "auto" else d for d in export.DTYPES]
        dtype = gr.Dropdown(dtypes, value="auto", label=t("xp.dtype", lang), info=t("xp.dtype_info", lang))
        quants = gr.CheckboxGroup(list(gguf.QUANTS), value=list(export.DEFAULT_QUANTS), label=t("xp.quants", lang),
                                  info=t("xp.quants_info", lang), elem_id="export-quants")
    size = gr.Markdown(elem_id="export-sizes")
    with gr.Row():
        merge = gr.Button(t("merge", lang), variant="primary", size="lg", elem_id="merge")
        make_gguf = gr.Button(t("xp.export_gguf", lang), variant="primary", size="lg", elem_id="export-gguf")
    merged_path = gr.Textbox(label=t("merged_at", lang), interactive=False, elem_id="merged-path")
    result = gr.Markdown(elem_id="export-result")
    gguf_result = gr.Markdown(elem_id="gguf-result")
    kinds = [(t(f"xp.kind_{k}", lang), k) for k in export.KINDS]
    kind = gr.Radio(kinds, value="merged", label=t("xp.zip_kind", lang), elem_id="export-kind")
    with gr.Row():
        make_zip = gr.Button(t("make_zip", lang), size="lg", elem_id="make-zip")
        download = gr.File(label=t("download", lang), interactive=False, elem_id="download", height=120)
    with gr.Accordion(t("push_title", lang), open=False):
        with gr.Row():
            repo = gr.Textbox(label=t("repo_id", lang), placeholder=t("repo_id_ph", lang), scale=2)
            token = gr.Textbox(label=t("xp.push_token", lang), type="password", scale=2)
            private = gr.Checkbox(value=True, label=t("private", lang), scale=1)
        push = gr.Button(t("push", lang), elem_id="push")
        with gr.Row(visible=False, elem_id="push-confirm") as confirm:
            keep = gr.Button(t("xp.keep_public", lang), variant="stop", elem_id="keep-public")
            make_private = gr.Button(t("xp.make_private", lang), variant="primary", elem_id="make-private")
        pushed = gr.Markdown(elem_id="pushed")

    def owner(name, request, profile) -> tuple[User | None, str]:
        """(the user, '') when they may act on run `name`, else (None, the refusal)."""
        try:
            return identity.own_run(manager, name, request, profile), ""
        except AccessDenied as err:
            return None, friendly(err, lang)

    def on_merge(name, d, session, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        user, refused = owner(name, request, profile)
        if refused:
            return "", error_md(t("merge", lang), refused)
        return do_merge(manager, lang, name, progress, identity.hub_token("", session, user), user, d)

    def on_gguf(name, q, session, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        user, refused = owner(name, request, profile)
        if refused:
            return "", error_md(t("xp.export_gguf", lang), refused)
        report = do_gguf(manager, lang, name, q, progress, identity.hub_token("", session, user), user)
        return _merged_of(manager, name), report

    def on_zip(name, k, request: gr.Request, profile: gr.OAuthProfile | None):
        user, refused = owner(name, request, profile)
        if refused:
            return None, error_md(t("make_zip", lang), refused)
        return do_zip(manager, lang, name, k, user)

    def pusher(choice: str):
        def on_push(name, k, r, tok, p, session, request: gr.Request, profile: gr.OAuthProfile | None,
                    progress=gr.Progress()):
            user, refused = owner(name, request, profile)
            if refused:
                return gr.update(visible=False), error_md(t("push", lang), refused)
            return do_push(manager, lang, name, k, r, identity.hub_token(tok, session, user), p, user, choice, progress)
        return on_push

    merge.click(on_merge, [run, dtype, hub_token], [merged_path, result])
    make_gguf.click(on_gguf, [run, quants, hub_token], [merged_path, gguf_result])
    make_zip.click(on_zip, [run, kind], [download, result])
    for button, choice in ((push, ""), (keep, "keep"), (make_private, "make_private")):
        button.click(pusher(choice), [run, kind, repo, token, private, hub_token], [confirm, pushed])
    def on_run(name, d, q, request: gr.Request, profile: gr.OAuthProfile | None):
        """The merged folder (if any) and the sizes, for a run this user may see."""
        _, refused = owner(name, request, profile)
        return ("", "") if refused else (_merged_of(manager, name), do_sizes(manager, lang, name, d, q))

    for trigger in (run.change, dtype.change, quants.change):
        trigger(on_run, [run, dtype, quants], [merged_path, size], concurrency_limit=None, show_progress="hidden")

    def refresh_fn(current, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = identity.user_of(request, profile)
        except AccessDenied:
            user = User("")
        return _refresh(manager, lang, current, user)

    refresh.click(refresh_fn, run, run, concurrency_limit=None)
    return ExportTab(refresh=(refresh_fn, run, run))


def _refresh(manager: JobManager, lang: str, current: str | None, user: User | None = None):
    choices = run_choices(manager, lang, who=user)
    names = [value for _, value in choices]
    return gr.update(choices=choices, value=current if current in names else (names[0] if names else None))


def _merged_of(manager: JobManager, name: str | None) -> str:
    """The merged folder's path when it exists already."""
    if not name:
        return ""
    merged = runs.run_dir(name, manager.root) / "merged"
    return str(merged) if (merged / "config.json").exists() else ""


def do_sizes(manager: JobManager, lang: str, name: str | None, dtype: str, quants: list[str]) -> str:
    """One line with what the merged model and each GGUF type will weigh, before anything is written."""
    if not name:
        return ""
    try:
        found = export.sizes(runs.run_dir(name, manager.root), dtype or "auto", tuple(quants or ()))
    except (TuneLabError, OSError) as err:
        return error_box(t("xp.dtype", lang), err, lang)
    shown = lambda n: _mb(n) if n else t("xp.size_unknown", lang)  # noqa: E731
    files = "".join(f" · GGUF {q} {shown(n)}" for q, n in found["gguf"].items())
    return t("xp.sizes", lang, dtype=found["dtype"], merged=shown(found["merged"]), gguf=files)


def do_merge(manager: JobManager, lang: str, name: str | None, progress, token: str | None = None,
             user: User | None = None, dtype: str = "auto") -> tuple:
    """(merged folder, message): core.infer.export.merge with its steps shown as progress."""
    if not name:
        return "", error_md(t("merge", lang), t("pick_run", lang))
    busy = busy_message(manager, lang)
    if busy:
        return "", error_md(t("merge", lang), busy)
    steps = iter((0.1, 0.5, 0.8, 0.9))
    try:
        with devicelock.hold("merge", run=name, user=user.name if user else "", root=manager.root):
            path = export.merge(runs.run_dir(name, manager.root), token=token or None, dtype=dtype or "auto",
                                progress=lambda message: progress(next(steps, 0.95), desc=localize(message, lang)))
    except Exception as err:  # missing adapter, out of memory, a missing package: one sentence
        return "", error_box(t("merge", lang), err, lang)
    return str(path), t("merge_done", lang) + "\n\n" + LOAD_SNIPPET.format(path=path, auto=model_class(path).__name__)


def do_gguf(manager: JobManager, lang: str, name: str | None, quants: list[str], progress,
            token: str | None = None, user: User | None = None) -> str:
    """The GGUF export's report: files, metadata, the parity table, warnings, and how to run it in Ollama."""
    title = t("xp.export_gguf", lang)
    if not name:
        return error_md(title, t("pick_run", lang))
    busy = busy_message(manager, lang)
    if busy:
        return error_md(title, busy)
    steps = iter((0.05, 0.2, 0.35, 0.5, 0.6, 0.7))
    try:
        with devicelock.hold("gguf", run=name, user=user.name if user else "", root=manager.root):
            report = export.export_gguf(runs.run_dir(name, manager.root), tuple(quants or ()), token=token,
                                        progress=lambda m: progress(next(steps, 0.8), desc=localize(m, lang)))
    except Exception as err:
        return error_box(title, err, lang)
    return report_markdown(report, runs.run_dir(name, manager.root) / "gguf", name, lang)


def report_markdown(report: dict, folder, name: str, lang: str) -> str:
    """The GGUF report for the page: a red warning for each file that answers differently."""
    checks = {c["file"]: c for c in report.get("parity", [])}
    lines = [t("xp.gguf_done", lang, path=folder), "", t("xp.file_head", lang), "| --- | --- | --- | --- | --- |"]
    warnings = []
    for f in report["files"]:
        c = checks.get(f["file"])
        lines.append(t("xp.file_row", lang, file=f["file"], size=_mb(f["bytes"]), types=", ".join(
            f["metadata"]["tensor_types"]), identical=(t("xp.yes" if c["identical"] else "xp.no", lang) if c else
                                                       t("xp.not_checked", lang)),
            agreement=f"{c['agreement']:.1%}" if c else "-"))
        if c and not c["ok"]:
            row = next(r for r in c["rows"] if not r["identical"])
            diff = row["first_difference"]
            warnings.append(error_md(f["file"], t("xp.mismatch", lang, file=f["file"], prompt=row["prompt"],
                                                  position=diff["position"], expected=repr(diff["expected"]),
                                                  got=repr(diff["got"]))))
    first = report["files"][0]["metadata"]
    lines += ["", t("xp.metadata", lang, template="✓" if first["chat_template"] else "✗", eos=first.get("eos_token_id")), ""]
    model = report["modelfile"]
    if model["template_matches_tokenizer"]:
        lines += [t("xp.template_ok", lang, stops=", ".join(f"`{s}`" for s in model["stops"])), ""]
    else:
        warnings.append(error_md("Modelfile", localize(model["template_problem"], lang) or t("xp.template_bad", lang)))
    if checks:
        lines.append(t("xp.checked_with", lang, tools=", ".join(next(iter(checks.values()))["checked_with"])))
    lines += ["", t("xp.ollama_run", lang), OLLAMA_SNIPPET.format(path=folder, name=name.lower())]
    return "\n".join(warnings + [""] + lines)


def do_zip(manager: JobManager, lang: str, name: str | None, kind: str = "merged", user: User | None = None):
    """(zip file for download, message): exactly what a push of `kind` would upload, as runs/<run>/<kind>.zip."""
    if not name:
        return None, error_md(t("make_zip", lang), t("pick_run", lang))
    try:
        run = runs.run_dir(name, manager.root)
        with devicelock.hold("zip", run=name, user=user.name if user else "", root=manager.root):
            archive = export.zip_files(run, kind or "merged")
        # a link for this request only, served in place (no copy of hundreds of MB into gradio's cache)
        return identity.private_download(archive, manager.root or runs.runs_root()), gr.skip()
    except Exception as err:
        return None, error_box(t("make_zip", lang), err, lang)


def do_push(manager: JobManager, lang: str, name: str | None, kind: str, repo: str, token: str | None,
            private: bool, user: User | None = None, existing_public: str = "", progress=None) -> tuple:
    """(confirmation row update, message): push one kind with this user's token; a public repo asks first."""
    hide = gr.update(visible=False)
    if access.current().public_demo:
        return hide, error_md(t("push", lang), t("access.demo_no_push", lang))
    if not name:
        return hide, error_md(t("push", lang), t("pick_run", lang))
    if not (repo or "").strip() or "/" not in repo:
        return hide, error_md(t("push", lang), t("repo_needed", lang))
    shown = (lambda m: progress(m.params.get("done", 0) / max(m.params.get("total", 1), 1),
                                desc=localize(m, lang))) if progress else None
    try:
        with devicelock.hold("push", run=name, user=user.name if user else "", root=manager.root):
            url = export.push(runs.run_dir(name, manager.root), kind or "merged", repo.strip(), token,
                              private=bool(private), existing_public=existing_public, progress=shown)
    except TuneLabError as err:
        if getattr(err.message, "key", "") == "export.repo_is_public":
            return gr.update(visible=True), t("xp.public_confirm", lang, repo=repo.strip())
        return hide, error_box(t("push", lang), err, lang)
    except Exception as err:
        return hide, error_box(t("push", lang), err, lang)
    return hide, t("pushed", lang, url=url)


def _mb(n: int) -> str:
    return f"{n / 1e6:.0f} MB" if n >= 1e6 else f"{n / 1e3:.0f} kB"
