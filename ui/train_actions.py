"""What the Train tab's buttons and timer do: start, stop, resume, and redraw a run; what it opens on.

Every redraw reads `manager.summary(name)` (the run's events.jsonl on disk),
so a reloaded page, a second browser or a restarted app shows the same run,
curve included. A cheap signature of the events file lets the timer skip
redraws when nothing changed. The page opens on the preset core.plan.presets
suggests for this machine, and says where the embedded model comes from.

`who` is the core.access.User behind the request (ui.identity.user_of): the run
list, the run shown, Stop, Resume and "use these settings" cover that user's
own runs only unless they are an admin; None (or a plain name) is the owner.
"""
from __future__ import annotations

import gradio as gr

from core import access, runs
from core.access import User
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import AccessDenied, Busy
from core.messages import join
from core.models import EMBEDDED, embedded_source
from core.plan.checks import check
from core.plan.memory import estimate
from core.plan.presets import suggest_here
from core.train.manager import JobManager
from ui import live
from ui.form import PRESETS_DIR, config_from_values, problems_of, values_from_config
from ui.strings import localize, page_lang, t
from ui.widgets import error_box, error_md, friendly


def opening_preset(lang: str) -> tuple[str, str]:
    """(preset file stem, note in `lang`) the Train tab opens on: core.plan.presets' choice for this machine."""
    try:
        chosen = suggest_here(PRESETS_DIR)
    except Exception:  # a broken preset folder must not stop the page: it opens on "(no preset)"
        return "", ""
    return chosen.name, localize(chosen.note, lang) if chosen.note else ""


def model_source(model: str | None, lang: str) -> str:
    """The line under the model choice: where the embedded model comes from here; '' for any other model."""
    ref = (model or "").strip() or DEFAULT_MODEL
    if ref not in EMBEDDED:
        return ""
    try:
        return f"ℹ {localize(embedded_source(ref), lang)}"
    except Exception as err:  # a line of information must never block the form
        return f"({friendly(err, lang)})"


def settings_check(values: dict, lang: str, data_stats: dict | None = None) -> str:
    """Plain-language problems of the form, or OK, plus the memory/time estimate."""
    problems = problems_of(values)
    lines = [f"**{t('check_title', lang)}**"]
    lines += [f"⚠ {localize(p, lang)}" for p in problems] or [t("check_ok", lang)]
    if not problems:
        lines.append(estimate_text(config_from_values(values), lang, data_stats))
    return "\n\n".join(lines)


def estimate_text(config: RunConfig, lang: str, data_stats: dict | None = None) -> str:
    """core.plan.memory's "fits / does not fit" line (in `lang`), sized by the Data tab's last check."""
    try:
        result = estimate(config, n_train_tokens=(data_stats or {}).get("tokens"), data_stats=data_stats or None)
        # plain symbols: projector PCs and headless browsers often lack a colour-emoji font
        mark = {True: "✓", False: "✗"}.get(getattr(result, "fits", None), "ℹ")
        return f"{mark} **{result.summary_text(page_lang(lang))}**"  # core can't see the browser: say which
    except Exception as err:  # an estimate must never block the form
        return f"({friendly(err, lang)})"


def start(manager: JobManager, values: dict, token: str, who: User | str, lang: str):
    """(action html, run picker update): a new job, or the reason it cannot start."""
    try:
        config = config_from_values(values)
        problems = check(config)
        if problems:
            return error_md(t("cannot_start", lang), localize(join(problems), lang)), gr.skip()
        job = manager.start(config, token=token or None, who=who)  # a User: the owner's policy is checked
    except Busy as err:  # someone else's run: also a toast, since the action line may be scrolled away
        gr.Warning(friendly(err, lang))
        return error_box(t("cannot_start", lang), err, lang), gr.skip()
    except Exception as err:
        return error_box(t("cannot_start", lang), err, lang), gr.skip()
    return _ok(t("started", lang, run=job.name)), run_picker(manager, lang, job.name, who)


def stop(manager: JobManager, lang: str, who: User | str = "") -> str:
    """Ask the live run to stop after its current step (it saves what it learned); only its owner or an admin."""
    try:
        name = manager.stop(who)
    except AccessDenied as err:
        return error_box(t("stop", lang), err, lang)
    return _ok(t("stopping", lang, run=name)) if name else _ok(t("nothing_running", lang))


def resume(manager: JobManager, name: str, token: str, who: User | str, lang: str):
    """(action html, run picker update): the shown run continues from its last checkpoint."""
    try:
        if not name:
            return error_md(t("cannot_start", lang), t("resume_which", lang)), gr.skip()
        summary = manager.summary(name, who)  # AccessDenied for someone else's run
        if summary.status == "elsewhere":
            return error_md(t("cannot_start", lang), localize(summary.message, lang)), gr.skip()
        if not summary.resumable:
            return error_md(t("cannot_start", lang), t("resume_which", lang)), gr.skip()
        job = manager.resume(name, token=token or None, who=who)
    except Busy as err:
        gr.Warning(friendly(err, lang))
        return error_box(t("cannot_start", lang), err, lang), gr.skip()
    except Exception as err:
        return error_box(t("cannot_start", lang), err, lang), gr.skip()
    return _ok(t("resumed", lang, run=job.name)), run_picker(manager, lang, job.name, who)


def _ok(message: str) -> str:
    return f'<div class="tl-ok">{message}</div>'


def run_picker(manager: JobManager, lang: str, value: str | None = None, who: User | str | None = None) -> dict:
    """The 'run shown' dropdown: every run this user may see, newest first; keeps `value` when given."""
    # names only: the status would go stale in the list; it is shown big below instead
    choices = [s.name for s in manager.list_runs(who)]
    if value and value not in choices:
        choices.insert(0, value)  # a run that has just started has no events file yet
    return gr.update(choices=choices, value=value) if value is not None else gr.update(choices=choices)


def initial_run(manager: JobManager, who: User | str | None = None) -> str | None:
    """On page load: the training run if one is live (and this user's), else their newest run."""
    live_job = manager.current
    if live_job and _may_see(manager, live_job.name, who):
        return live_job.name
    found = manager.list_runs(who)
    return found[0].name if found else None


def _may_see(manager: JobManager, name: str, who: User | str | None) -> bool:
    if who is None:
        return True
    try:
        folder = runs.run_dir(name, manager.root)
    except ValueError:
        return False
    user = who if isinstance(who, User) else User(who, admin=True)
    return access.can_act(user, access.owner_of(folder))


def signature(manager: JobManager, name: str | None, who: User | str | None = None) -> str:
    """Changes whenever the run's event log or saved outputs change."""
    if not name:
        return ""
    if not _may_see(manager, name, who):
        return "hidden"
    try:
        path = runs.run_dir(name, manager.root)
        stat = (path / "events.jsonl").stat()
    except (OSError, ValueError):
        return "missing"
    return f"{name}:{stat.st_size}:{stat.st_mtime_ns}:{name in manager.active_names()}:{(path / 'adapter').exists()}"


def render(manager: JobManager, name: str | None, lang: str, who: User | str | None = None) -> tuple:
    """(status, metrics, loss frame, samples, settings yaml) for one run; nothing for someone else's."""
    summary = None
    if name:
        try:
            summary = manager.summary(name, who)
        except (ValueError, AccessDenied):
            summary = None
    config_text = ""
    if summary is not None and (summary.path / "config.yaml").exists():
        config_text = (summary.path / "config.yaml").read_text(encoding="utf-8")
    return (live.status_html(summary, lang), live.metrics_html(summary, lang),
            live.loss_frame(summary, lang), live.samples_html(summary, lang), config_text)


def run_names(manager: JobManager, who: User | str | None = None) -> list[str]:
    """Names of the runs on disk this user may see, without reading their logs (cheap enough for a timer)."""
    root = manager.root or runs.runs_root()
    if not root.exists():
        return []
    return sorted(p.name for p in root.iterdir()
                  if (p / "events.jsonl").exists() and (who is None or _may_see(manager, p.name, who)))


def tick(manager: JobManager, name: str | None, last: str, known: str, lang: str,
         who: User | str | None = None) -> tuple:
    """The timer: redraw only when the run's files changed; refresh the picker when runs appear.

    When this user starts a run elsewhere (another browser of theirs), this page switches to it.
    """
    names = ",".join(run_names(manager, who))
    picker, follow = gr.skip(), name
    if names != known:
        live_job = manager.current
        if live_job and live_job.name not in known.split(",") and _may_see(manager, live_job.name, who):
            follow = live_job.name
        picker = run_picker(manager, lang, follow, who)
    sig = signature(manager, follow, who)
    if sig == last:
        return (*(gr.skip(),) * 5, sig, names, picker)
    return (*render(manager, follow, lang, who), sig, names, picker)


def settings_of(manager: JobManager, name: str | None, lang: str, names: list[str],
                who: User | str | None = None) -> list:
    """Form values from a past run's config.yaml (run name cleared: a new run gets a new one)."""
    if not name:
        return [gr.skip()] * (len(names) + 1)
    try:
        manager.summary(name, who)  # AccessDenied for someone else's run
        values = values_from_config(RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml"))
    except Exception as err:
        return [gr.skip()] * len(names) + [error_box(t("cannot_start", lang), err, lang)]
    values["run_name"] = ""
    return [values[n] for n in names] + [_ok(t("settings_loaded", lang, run=name))]
