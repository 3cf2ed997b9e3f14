"""Chat tab: ask once, see the base and the tuned answer side by side, streamed.

Both answers come from one loaded model (core.infer.generate.compare). The model's
lock makes questions from several browsers take turns; a per-browser stop
event ends generation within a token. While a run trains on this machine,
chat says so and waits for it instead of slowing training down.
"""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import gradio as gr
import pandas as pd

from core import runs
from core.config import RunConfig
from core.infer.chat import get_base_model, get_chat_model
from core.infer.evaluate import evaluate_run
from core.infer.generate import BASE, Sampling, build_messages, compare, stream
from core.train.manager import JobManager
from ui.strings import localize, t
from ui.widgets import busy_message, error_md, friendly, run_choices

_stops: dict[str, threading.Event] = {}   # browser session -> its stop button's event


@dataclass
class ChatTab:
    refresh: tuple  # (fn, inputs, outputs): refresh the run list (page load, tab select)


def build(manager: JobManager, lang: str, base_model: gr.components.Component) -> ChatTab:
    """`base_model` is the Train tab's model field: before any run, that model answers alone."""
    gr.Markdown(t("chat_intro", lang), elem_classes="tl-intro")
    with gr.Row():
        run = gr.Dropdown(run_choices(manager, lang, base_option=True), value="", label=t("chat_run", lang),
                          scale=4, elem_id="chat-run")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    system = gr.Textbox(label=t("system_prompt", lang), lines=1)
    with gr.Accordion(t("sampling", lang), open=False):
        with gr.Row():
            max_new = gr.Slider(8, 512, value=96, step=8, label=t("max_new_tokens", lang), elem_id="max-new-tokens")
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
    run.change(_system_of, run, system)

    def on_ask(name, system_prompt, text, base_hist, tuned_hist, model, max_new, temperature, top_p, top_k, rep,
               request: gr.Request):
        yield from answer(manager, lang, name or "", system_prompt, text, base_hist, tuned_hist,
                          Sampling(int(max_new), float(temperature), float(top_p), int(top_k), float(rep)),
                          request, base_model=model)

    for trigger in (ask.click, question.submit):
        trigger(on_ask, [run, system, question, base_chat, tuned_chat, base_model, *sampling],
                [base_chat, tuned_chat, note])
    stop.click(_stop, None, None, concurrency_limit=None)
    clear.click(lambda: ([], [], ""), None, [base_chat, tuned_chat, note], concurrency_limit=None)
    evaluate.click(lambda name, n, progress=gr.Progress(): run_eval(manager, lang, name, n, progress),
                   [run, limit], [eval_md, eval_table])
    refresh_fn = lambda current: _refresh(manager, lang, current)
    refresh.click(refresh_fn, run, run, concurrency_limit=None)
    return ChatTab(refresh=(refresh_fn, run, run))


def _refresh(manager: JobManager, lang: str, current: str | None):
    """New choices; moves to the newest usable run when showing the base alone (the demo's next step)."""
    choices = run_choices(manager, lang, base_option=True)
    names = [value for _, value in choices]
    value = current if current in names and current else (names[1] if len(names) > 1 else "")
    return gr.update(choices=choices, value=value)


def _system_of(name: str) -> str:
    try:
        return RunConfig.load_yaml(runs.run_dir(name) / "config.yaml").system_prompt if name else ""
    except Exception:
        return ""


def _stop(request: gr.Request) -> None:
    _stops.setdefault(request.session_hash, threading.Event()).set()


def _load(name: str, base_model: str = ""):
    """The chat model for a run, or the chosen base model alone (kept loaded between questions)."""
    return get_chat_model(name) if name else get_base_model(base_model or "")


def answer(manager: JobManager, lang: str, name: str, system: str, question: str, base_hist: list,
           tuned_hist: list, sampling: Sampling, request: gr.Request | None = None, base_model: str = ""):
    """Streams (base chat, tuned chat, note) while both models answer the question."""
    if not (question or "").strip():
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), t("empty_question", lang))
        return
    busy = busy_message(manager, lang)
    if busy:
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), busy)
        return
    stop = _stops.setdefault(request.session_hash if request else "", threading.Event())
    stop.clear()
    base_hist = list(base_hist or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
    tuned_hist = list(tuned_hist or []) + [{"role": "user", "content": question}, {"role": "assistant", "content": "…"}]
    yield base_hist, tuned_hist, f'<div class="tl-muted">{t("loading_model", lang)}</div>'
    began = time.time()
    try:
        chat = _load(name, base_model)
        messages = build_messages([], question, system or "")
        if not chat.lock.acquire(blocking=False):
            yield base_hist, tuned_hist, f'<div class="tl-muted">{t("waiting_lock", lang)}</div>'
            chat.lock.acquire()
        try:
            for base, tuned in _pairs(chat, name, messages, sampling, stop, lang):
                base_hist[-1]["content"], tuned_hist[-1]["content"] = base or "…", tuned or "…"
                yield base_hist, tuned_hist, ""
        finally:
            chat.lock.release()
    except Exception as err:  # a bad run or a missing package: a sentence in the page
        yield base_hist, tuned_hist, error_md(t("ask", lang), friendly(err, lang))
        return
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


def run_eval(manager: JobManager, lang: str, name: str, limit, progress) -> tuple:
    """Held-out questions, base vs tuned: a one-line result and a table; progress as a bar with the last line."""
    if not name:
        return error_md(t("evaluate", lang), t("eval_needs_run", lang)), None
    busy = busy_message(manager, lang)
    if busy:
        return error_md(t("evaluate", lang), busy), None

    def report(done: int, total: int, line: str) -> None:
        progress(done / total if total else None, desc=localize(line, lang))

    try:
        result = evaluate_run(name, limit=int(limit or 0), progress=report)
    except Exception as err:
        return error_md(t("evaluate", lang), friendly(err, lang)), None
    mark = lambda ok: "✓" if ok else "✗"
    rows = [[r["question"], ", ".join(r["expected"]), f'{mark(r["base_ok"])} {r["base"]}', f'{mark(r["tuned_ok"])} {r["tuned"]}']
            for r in result["rows"]]
    cols = [t(k, lang) for k in ("col_question", "col_expected", "col_base", "col_tuned")]
    summary = t("eval_result", lang, base_ok=result["base_correct"], tuned_ok=result["tuned_correct"],
                total=result["total"], base_share=f'{result["base_share"]:.0%}', tuned_share=f'{result["tuned_share"]:.0%}')
    return summary, pd.DataFrame(rows, columns=cols)
