"""Chat tab: ask once, see two answers side by side in one row per question, streamed; vote on them.

The transcript (ui.transcript) shows each question once with both answers beneath it in the same row, so a
room can follow which answer belongs to which question. What the run is compared with: its base model (both
answers from one loaded model, core.infer.generate.compare) or another of this user's runs (answered one after
the other). Blind mode shows the answers as A and B in random order and asks which is better; the normal mode
takes a thumb per answer (ui.chat_votes; saved in the run's votes.jsonl by core.infer.votes, with the scores,
the download and "Train on my votes" in the Votes part). The held-out evaluation, on the built-in questions or
a person's own file, is ui.chat_eval.

The answers themselves (the device lock, the checks before a question, streaming both models) are
ui.chat_answers. A user chats with, votes on and evaluates their own runs only (an admin with all); the Hub
token typed in the Train tab is used to load gated base models.
"""
from __future__ import annotations

from dataclasses import dataclass

import gradio as gr

from core import access, runs
from core.access import User
from core.config import RunConfig
from core.errors import AccessDenied
from core.infer import votes
from core.infer.generate import Sampling
from core.train.manager import JobManager
from ui import chat_votes
from ui.chat_answers import BASE_SIDE, RUN_PREFIX, answer, stop_answer
from ui.chat_eval import run_eval
from ui.data_tab import save_upload
from ui.identity import user_of
from ui.preference import train_on_votes
from ui.strings import t
from ui.transcript import CSS, render
from ui.widgets import error_box, run_choices

NOBODY = User("")


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
                          scale=3, elem_id="chat-run")
        against = gr.Dropdown([(t("votes.model_base", lang), BASE_SIDE)], value=BASE_SIDE, scale=3,
                              label=t("votes.against", lang), elem_id="chat-against")
        refresh = gr.Button(t("refresh", lang), scale=1, size="lg")
    mode = gr.Radio([(t("votes.mode_side", lang), "side"), (t("votes.mode_blind", lang), "blind")], value="side",
                    label=t("votes.mode", lang), elem_id="chat-mode")
    system = gr.Textbox(label=t("system_prompt", lang), lines=1)
    with gr.Accordion(t("sampling", lang), open=False):
        own_sampling = gr.Checkbox(True, label=t("chat_sampling.model_defaults", lang),
                                   info=t("chat_sampling.model_defaults_info", lang), elem_id="model-sampling")
        with gr.Row():
            max_new = gr.Slider(8, limits.max_new_tokens, value=96, step=8, label=t("max_new_tokens", lang),
                                elem_id="max-new-tokens")
            temperature = gr.Slider(0, 1.5, value=0, step=0.05, label=t("temperature", lang))
            top_p = gr.Slider(0.05, 1, value=0.9, step=0.05, label=t("top_p", lang))
            top_k = gr.Slider(0, 200, value=50, step=1, label=t("top_k", lang))
            rep = gr.Slider(1, 2, value=1.1, step=0.05, label=t("repetition_penalty", lang))
    turns = gr.State([])
    transcript = gr.HTML(render([], lang), css_template=CSS, max_height=620, autoscroll=True,
                         elem_id="chat-transcript")
    question = gr.Textbox(label=t("question", lang), placeholder=t("question_ph", lang), elem_id="question")
    with gr.Row():
        ask = gr.Button(t("ask", lang), variant="primary", size="lg", elem_id="ask", scale=2)
        stop = gr.Button(t("stop", lang), variant="stop", size="lg", elem_id="chat-stop")
        clear = gr.Button(t("clear", lang), size="lg", elem_id="chat-clear")
    note = gr.HTML(elem_id="chat-note")
    with gr.Row(visible=True) as thumbs_row:
        thumbs = [gr.Button(t(f"votes.thumb_{side}_{kind}", lang), size="sm", elem_id=f"thumb-{side}-{kind}")
                  for side in ("left", "right") for kind in ("up", "down")]
    with gr.Row(visible=False) as blind_row:
        choices = [gr.Button(t("votes.choice_" + w, lang), size="sm", elem_id=f"vote-{w}",
                             variant="primary" if w in ("A", "B") else "secondary") for w in votes.WINNERS]
    with gr.Accordion(t("votes.title", lang), open=False):
        score = gr.Markdown(t("votes.score_needs_run", lang), elem_id="vote-score")
        with gr.Row():
            download = gr.Button(t("votes.download", lang), size="sm", elem_id="votes-download")
            votes_file = gr.File(label="votes.jsonl", interactive=False, elem_id="votes-file")
        votes_note = gr.HTML()
        train_votes = gr.Button(t("preference.train_on_votes", lang), variant="primary", elem_id="train-on-votes")
        train_votes_note = gr.HTML(elem_id="train-on-votes-note")
    with gr.Accordion(t("evaluate", lang), open=False):
        with gr.Row():
            limit = gr.Number(value=0, precision=0, label=t("eval_limit", lang))
            own = gr.File(label=t("votes.q_upload", lang), file_types=[".jsonl", ".csv"], type="filepath",
                          elem_id="eval-questions")
            evaluate = gr.Button(t("evaluate", lang), variant="secondary", elem_id="evaluate")
        gr.Markdown(t("votes.q_help", lang), elem_classes="tl-muted")
        eval_md = gr.Markdown(elem_id="eval-result", elem_classes="tl-big")
        eval_table = gr.Dataframe(interactive=False, wrap=True, column_widths=["28%", "12%", "30%", "30%"])

    sampling = [max_new, own_sampling, temperature, top_p, top_k, rep]

    def on_run(name: str, other: str, request: gr.Request, profile: gr.OAuthProfile | None):
        user = _viewer(request, profile)
        return (_system_of(manager, name, user), _against(manager, lang, name, other, user),
                chat_votes.score_md(manager, lang, name, user) if name else t("votes.score_needs_run", lang))

    def on_ask(name, other, how, system_prompt, text, history, model, tok, max_new, own, temperature, top_p, top_k,
               rep, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            yield gr.skip(), gr.skip(), error_box(t("ask", lang), err, lang)
            return
        yield from answer(manager, lang, name or "", system_prompt, text, history,
                          chosen_sampling(max_new, own, temperature, top_p, top_k, rep),
                          request, base_model=model, token=tok or "", user=user, against=other or BASE_SIDE,
                          blind=how == "blind")

    def on_eval(name, n, path, tok, request: gr.Request, profile: gr.OAuthProfile | None, progress=gr.Progress()):
        try:
            user = user_of(request, profile)
            kept = save_upload(path, user) if path else None  # the upload rules: size, count, this user's folder
        except Exception as err:
            return error_box(t("evaluate", lang), err, lang), None
        return run_eval(manager, lang, name, n, progress, token=tok or "", user=user, questions=kept)

    def refresh_fn(current: str | None, other: str | None, request: gr.Request,
                   profile: gr.OAuthProfile | None):
        user = _viewer(request, profile)
        picked = _refresh(manager, lang, current, user)
        return picked, _against(manager, lang, picked["value"], other, user)

    def on_vote(winner):
        def handler(history, request: gr.Request, profile: gr.OAuthProfile | None):
            try:
                user = user_of(request, profile)
            except AccessDenied as err:
                return gr.skip(), gr.skip(), error_box(t("votes.title", lang), err, lang), gr.skip()
            return chat_votes.vote(manager, lang, winner, history, user)
        return handler

    def on_thumb(side: int, up: bool):
        def handler(history, request: gr.Request, profile: gr.OAuthProfile | None):
            try:
                user = user_of(request, profile)
            except AccessDenied as err:
                return gr.skip(), gr.skip(), error_box(t("votes.title", lang), err, lang), gr.skip()
            return chat_votes.thumb(manager, lang, side, up, history, user)
        return handler

    def on_download(name, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            return None, error_box(t("votes.download", lang), err, lang)
        return chat_votes.export(manager, lang, name, user)

    def on_train_votes(name, tok, request: gr.Request, profile: gr.OAuthProfile | None):
        try:
            user = user_of(request, profile)
        except AccessDenied as err:
            return error_box(t("preference.train_on_votes", lang), err, lang)
        return train_on_votes(manager, name or "", tok or "", user, lang)  # checks the run is this user's

    run.change(on_run, [run, against], [system, against, score])
    mode.change(lambda how: (gr.update(visible=how != "blind"), gr.update(visible=how == "blind")), mode,
                [thumbs_row, blind_row], concurrency_limit=None)
    for trigger in (ask.click, question.submit):
        trigger(on_ask, [run, against, mode, system, question, turns, base_model, token, *sampling],
                [transcript, turns, note])
    for winner, button in zip(votes.WINNERS, choices):
        button.click(on_vote(winner), turns, [transcript, turns, note, score], concurrency_limit=None)
    for index, button in enumerate(thumbs):
        button.click(on_thumb(index // 2, index % 2 == 0), turns, [transcript, turns, note, score],
                     concurrency_limit=None)
    download.click(on_download, run, [votes_file, votes_note], concurrency_limit=None)
    train_votes.click(on_train_votes, [run, token], train_votes_note)
    stop.click(stop_answer, None, None, concurrency_limit=None)
    clear.click(lambda: (render([], lang), [], ""), None, [transcript, turns, note], concurrency_limit=None)
    evaluate.click(on_eval, [run, limit, own, token], [eval_md, eval_table])
    refresh.click(refresh_fn, [run, against], [run, against], concurrency_limit=None)
    return ChatTab(refresh=(refresh_fn, [run, against], [run, against]))


def chosen_sampling(max_new, own: bool, temperature, top_p, top_k, rep) -> Sampling:
    """The form's sampling: with "the model's own settings" ticked only the length is the person's, the rest
    stays None so the model's generation_config decides (core.infer.generate.Sampling)."""
    if own:
        return Sampling(int(max_new))
    return Sampling(int(max_new), float(temperature), float(top_p), int(top_k), float(rep))


def _against(manager: JobManager, lang: str, name: str | None, current: str | None, user: User | None):
    """What the run's answers are compared with: its base model, or another usable run of this user's."""
    choices = [(t("votes.model_base", lang), BASE_SIDE)] + [
        (label, RUN_PREFIX + value) for label, value in run_choices(manager, lang, who=user) if value != name]
    values = [value for _, value in choices]
    return gr.update(choices=choices, value=current if current in values else BASE_SIDE)


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

