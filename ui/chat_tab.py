"""Chat tab: ask once, see the base and the tuned answer side by side, streamed.

Both answers come from one loaded model (core.infer.generate.compare). Each answer
holds the device lock (core.devicelock) while it is generated: a question behind
another chat answer waits its turn with a note, one behind training, evaluation,
merging or another process's work is refused with who holds the device and since
when, and a Start during an answer is refused the same way. A per-browser stop
event ends generation within a token. A user chats with and evaluates their own
runs only (an admin with all); the question, system prompt and max new tokens are
bounded; the Hub token typed in the Train tab is used to load gated base models.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from core import access, devicelock, runs
from core.access import User
from core.config import RunConfig
from core.errors import AccessDenied, Busy
from core.infer.chat import get_base_model, get_chat_model
from core.infer.evaluate import evaluate_run
from core.infer.generate import BASE, Sampling, build_messages, compare, stream
from core.messages import join, msg
from core.train.manager import JobManager
from ui.identity import user_of
from ui.strings import localize, t
from ui.widgets import busy_message, error_md, friendly, run_choices

CHAT_WAIT_SECONDS = 300  # a question behind another chat answer waits this long for the device
NOBODY = User("")

_stops: dict[str, threading.Event] = {}   # browser session -> its stop button's event


@dataclass
class ChatTab:
    refresh: tuple  # (fn, inputs, outputs): refresh the run list (page load, tab select)


def build(manager: JobManager, lang: str, base_model: gr.components.Component,
          token: gr.components.Component | None = None) -> ChatTab:
    """`base_model` is the Train tab's model field: before any run, that model answers alone; `token` its Hub
    token box (this browser's token, used to load the models)."""
    gr.Markdown(t("chat_intro", lang), elem_classes="tl-intro")
    limits = access.current().limits
    token = token if token is not None else gr.State("")
    with gr.Row():
        # filled per user on page load: the page as built is the same for everyone, so it lists no run
        run = gr.Dropdown([(t("base_only", lang), "")], value="", label=t("chat_run", lang),
                          scale=4, elem_id="chat-run")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    system = gr.Textbox(label=t("system_prompt", lang), lines=1)
    with gr.Accordion(t("sampling", lang), open=False):
        with gr.Row():
            max_new = gr.Slider(8, limits.max_new_tokens, value=96, step=8, label=t("max_new_tokens", lang),
                                elem_id="max-new-tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.05, label=t("temperature", lang))
            top_p = gr.Slider(0.05, 1, value=0.9, step=0.05, label=t("top_p", lang))
            top_k = gr.Slider(0, 200, value=50, step=1, label=t("top_k", lang))
            rep = gr.Slider(1, 2, value=1.1, step=0.05, label=t("repetition_penalty", lang))
    with gr.Row():
        base_chat = gr.Chatbot(label=t("base_answer", lang), height=360, elem_id="base-chat", buttons=["copy"])
        tuned_chat = gr.Chatbot(label=t("tuned_answer", lang), height=360, elem_id="tuned-chat", buttons=["copy"])
    question = gr.Textbox(label=t("question", lang), placeholder=t("question_ph", lang), elem_id="question")
    with gr.Row():
        ask = gr.Button(t("ask", lang), variant="primary", size="lg", elem_id="ask", scale=2)
        stop = gr.Button(t("stop", lang), variant="stop", size="lg", elem_id="chat-stop")
        clear = gr.Button(t("clear", lang), size="lg", elem_id="chat-clear")
    note = gr.HTML(elem_id="chat-note")
    with gr.Accordion(t("evaluate", lang), open=False):
        with gr.Row():
            limit = gr.Number(value=0, precision=0, label=t("eval_limit", lang))
            evaluate = gr.Button(t("evaluate", lang), variant="secondary", elem_id="evaluate")
        eval_md = gr.Markdown(elem_id="eval-result", elem_classes="tl-big")
        eval_table = gr.Dataframe(interactive=False, wrap=True, column_widths=["28%", "12%", "30%", "30%"])

    sampling = [max_new, temperature, top_p, top_k, rep]

    def on_run(name: str, request: gr.Request, profile: gr.OAuthProfile | None):
        return _system_of(manager, name, _viewer(request, profile))

    def on_ask(name, system_prompt, text, base_hist, tuned_hist, model, tok, max_new, temperature, top_p, top_k,
               rep, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            yield gr.skip(), gr.skip(), error_md(t("ask", lang), friendly(err, lang))
            return
        yield from answer(manager, lang, name or "", system_prompt, text, base_hist, tuned_hist,
                          Sampling(int(max_new), float(temperature), float(top_p), int(top_k), float(rep)),
                          request, base_model=model, token=tok or "", user=user)

    def on_eval(name, n, tok, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            return error_md(t("evaluate", lang), friendly(err, lang)), None
        return run_eval(manager, lang, name, n, progress, token=tok or "", user=user)

    def refresh_fn(current: str | None, request: gr.Request, profile: gr.OAuthProfile | None):
        return _refresh(manager, lang, current, _viewer(request, profile))

    run.change(on_run, run, system)
    for trigger in (ask.click, question.submit):
        trigger(on_ask, [run, system, question, base_chat, tuned_chat, base_model, token, *sampling],
                [base_chat, tuned_chat, note])
    stop.click(_stop, None, None, concurrency_limit=None)
    clear.click(lambda: ([], [], ""), None, [base_chat, tuned_chat, note], concurrency_limit=None)
    evaluate.click(on_eval, [run, limit, token], [eval_md, eval_table])
    refresh.click(refresh_fn, run, run, concurrency_limit=None)
    return ChatTab(refresh=(refresh_fn, run, run))


def _viewer(request, profile=None) -> User:
    try:
        return user_of(request, profile)
    except AccessDenied:
        return NOBODY


def _refresh(manager: JobManager, lang: str, current: str | None, user: User | None = None):
    """New choices; moves to the newest usable run when showing the base alone (the demo's next step)."""
    choices = run_choices(manager, lang, base_option=True, who=user)
    names = [value for _, value in choices]
    value = current if current in names and current else (names[1] if len(names) > 1 else "")
    return gr.update(choices=choices, value=value)


def _system_of(manager: JobManager, name: str, user: User | None = None) -> str:
    try:
        if not name:
            return ""
        manager.summary(name, user)  # AccessDenied for someone else's run
        return RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml").system_prompt
    except Exception:
        return ""


def _stop(request: gr.Request) -> None:
    _stops.setdefault(request.session_hash, threading.Event()).set()


def _load(name: str, base_model: str = "", token: str = ""):
    """The chat model for a run, or the chosen base model alone (kept loaded between questions)."""
    return get_chat_model(name, token=token or None) if name else get_base_model(base_model or "", token=token or None)


def refusal(manager: JobManager, name: str, system: str, question: str, sampling: Sampling, base_model: str,
            user: User | None) -> str | None:
    """Why this question may not be asked here (bounds, someone else's run, a path, remote code), or None."""
    limits = access.current().limits
    problems = []
    if len(question) > limits.question_chars:
        problems.append(msg("access.too_long", what=msg("access.what_question"), chars=len(question),
                            limit=limits.question_chars))
    if len(system or "") > limits.system_chars:
        problems.append(msg("access.too_long", what=msg("access.what_system"), chars=len(system),
                            limit=limits.system_chars))
    if not 1 <= sampling.max_new_tokens <= limits.max_new_tokens:
        problems.append(msg("access.max_new_tokens", value=sampling.max_new_tokens, limit=limits.max_new_tokens))
    if problems:
        return join(problems)
    if user is None:
        return None
    try:
        if name:
            manager.summary(name, user)  # AccessDenied for someone else's run
            config = RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml")
            problems = access.check_config(config)
        else:
            config = RunConfig(model=(base_model or "").strip()) if (base_model or "").strip() else RunConfig()
            problems = [p for p in access.check_config(config) if p.key.startswith(("access.remote", "access.demo_m"))]
            problems += access.check_local_paths(config.replace(dataset="builtin:demo"), user)
    except (AccessDenied, ValueError) as err:
        return err.args[0]
    return join(problems) if problems else None


def _device(manager: JobManager, user: User | None, name: str):
    """Yields None while waiting behind another chat answer, then the held lease; Busy for anything else."""
    who = user.name if user else ""
    got = devicelock.try_acquire("chat", run=name, user=who, root=manager.root)
    if isinstance(got, devicelock.Lease):
        yield got
        return
    if got.action != "chat":  # training, evaluation, merging, another process: say who, do not wait
        raise Busy(got.busy_message())
    yield None  # the caller shows "waiting"
    yield devicelock.acquire("chat", run=name, user=who, root=manager.root, wait=CHAT_WAIT_SECONDS)


def answer(manager: JobManager, lang: str, name: str, system: str, question: str, base_hist: list,
           tuned_hist: list, sampling: Sampling, request: gr.Request | None = None, base_model: str = "",
           token: str = "", user: User | None = None):
    """Streams (base chat, tuned chat, note) while both models answer the question.

    `user` None is the owner's own call (no ownership or path checks); the page always passes one."""
    if not (question or "").strip():
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), t("empty_question", lang))
        return
    busy = busy_message(manager, lang) or refusal(manager, name, system, question, sampling, base_model, user)
    if busy:
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), localize(busy, lang))
        return
    stop = _stops.setdefault(request.session_hash if request else "", threading.Event())
    stop.clear()
    base_hist = list(base_hist or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
    tuned_hist = list(tuned_hist or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
    began, lease = time.time(), None
    try:
        for lease in _device(manager, user, name):
            if lease is None:
                yield base_hist, tuned_hist, f'<div class="tl-muted">{t("waiting_lock", lang)}</div>'
        yield base_hist, tuned_hist, f'<div class="tl-muted">{t("loading_model", lang)}</div>'
        chat = _load(name, base_model, token)
        messages = build_messages([], question, system or "")
        with chat.lock:  # the device lock already keeps other answers out; this guards the model object
            for base, tuned in _pairs(chat, name, messages, sampling, stop, lang):
                base_hist[-1]["content"], tuned_hist[-1]["content"] = base or "…", tuned or "…"
                yield base_hist, tuned_hist, ""
    except Exception as err:  # a bad run, a busy device or a missing package: a sentence in the page
        yield base_hist, tuned_hist, error_md(t("ask", lang), friendly(err, lang))
        return
    finally:
        if lease is not None:
            lease.release()
    done = t("stopped_gen", lang) if stop.is_set() else t("answered_in", lang, seconds=f"{time.time() - began:.1f}")
    yield base_hist, tuned_hist, f'<div class="tl-muted" data-done="1">{done}</div>'


def _pairs(chat, name: str, messages: list, sampling: Sampling, stop: threading.Event, lang: str):
    """(base, tuned) text pairs: both from one model, or one side with a note for the other."""
    if name and chat.has_base:
        yield from compare(chat.model, chat.tokenizer, messages, sampling, stop)
    elif name:  # full fine-tuning: the saved model is the tuned one
        for (tuned,) in stream(chat.model, chat.tokenizer, messages, sampling, ["default"], stop):
            yield t("full_no_base", lang), tuned
    else:
        for (base,) in stream(chat.model, chat.tokenizer, messages, sampling, [BASE], stop):
            yield base, t("no_tuned", lang)


def run_eval(manager: JobManager, lang: str, name: str, limit, progress, token: str = "",
             user: User | None = None) -> tuple:
    """Held-out questions, base vs tuned: a one-line result and a table; progress as a bar with the last line.

    Holds the device lock while it asks; someone else's run (for a non-admin user) is refused."""
    if not name:
        return error_md(t("evaluate", lang), t("eval_needs_run", lang)), None
    busy = busy_message(manager, lang)
    if busy:
        return error_md(t("evaluate", lang), busy), None

    def report(done: int, total: int, line: str) -> None:
        progress(done / total if total else None, desc=localize(line, lang))

    try:
        if user is not None:
            manager.summary(name, user)
            problems = access.check_config(RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml"))
            if problems:
                raise AccessDenied(join(problems))
        with devicelock.hold("evaluate", run=name, user=user.name if user else "", root=manager.root):
            result = evaluate_run(name, limit=int(limit or 0), progress=report, token=token or None)
    except Exception as err:
        return error_md(t("evaluate", lang), friendly(err, lang)), None
    mark = lambda ok: "✓" if ok else "✗"
    rows = [[r["question"], ", ".join(r["expected"]), f'{mark(r["base_ok"])} {r["base"]}', f'{mark(r["tuned_ok"])} {r["tuned"]}']
            for r in result["rows"]]
    cols = [t(k, lang) for k in ("col_question", "col_expected", "col_base", "col_tuned")]
    summary = t("eval_result", lang, base_ok=result["base_correct"], tuned_ok=result["tuned_correct"],
                total=result["total"], base_share=f'{result["base_share"]:.0%}', tuned_share=f'{result["tuned_share"]:.0%}')
    return summary, pd.DataFrame(rows, columns=cols)
