"""The Chat tab's answers: one question to the two models, streamed into a new transcript row.

`answer` checks the question may be asked here (`refusal`), takes the device, loads the models and yields
(transcript, turns, note) as both answers grow. What the run is compared with: its base model (both
answers from one loaded model, core.infer.generate.compare) or another of this user's runs (answered one
after the other: the cache holds one model). Blind mode puts the two models in random order.

Each answer holds the device lock (core.devicelock) while it is generated: a question behind
another chat answer waits its turn with a note, one behind training, evaluation,
merging or another process's work is refused with who holds the device and since
when, and a Start during an answer is refused the same way. A per-browser stop
event ends generation within a token. A user asks about their own runs only (an admin
about all); the question, system prompt and max new tokens are bounded; the Hub token
typed in the Train tab is used to load gated base models.
"""
from __future__ import annotations

import random
import threading
import time

import gradio as gr

from core import access, devicelock, runs
from core.access import User
from core.config import RunConfig
from core.errors import AccessDenied, Busy
from core.infer import votes
from core.infer.chat import get_base_model, get_chat_model
from core.infer.generate import BASE, Sampling, build_messages, compare, stream
from core.messages import join, msg
from core.train.manager import JobManager
from ui.strings import localize, t
from ui.transcript import render
from ui.widgets import busy_message, error_box, error_md

CHAT_WAIT_SECONDS = 300  # a question behind another chat answer waits this long for the device
BASE_SIDE, RUN_PREFIX = votes.BASE, "run:"  # the "compare with" choices: the base model, or another run
_shuffle = random.SystemRandom()  # blind order: not guessable from earlier turns

_stops: dict[str, threading.Event] = {}   # browser session -> its stop button's event


def stop_answer(request: gr.Request) -> None:
    """The Stop button: ends this browser session's answer within a token."""
    _stops.setdefault(request.session_hash, threading.Event()).set()


def _load(name: str, base_model: str = "", token: str = ""):
    """The chat model for a run, or the chosen base model alone (kept loaded between questions)."""
    return get_chat_model(name, token=token or None) if name else get_base_model(base_model or "", token=token or None)


def refusal(manager: JobManager, name: str, system: str, question: str, sampling: Sampling, base_model: str,
            user: User | None, against: str = "base", blind: bool = False) -> str | None:
    """Why this question may not be asked here (bounds, someone else's run, a path, remote code, a blind
    comparison without two models), or None."""
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
    other = against[len(RUN_PREFIX):] if against.startswith(RUN_PREFIX) else ""
    if blind and not name:
        return msg("votes.blind_needs_run")
    if other and not name:
        return msg("votes.pick_run_first")
    if other == name and other:
        return msg("votes.same_run")
    try:
        if blind and not other and not _config(manager, name).uses_lora:
            return msg("votes.blind_full")
        if other:
            manager.summary(other, user)  # AccessDenied for someone else's run
            problems = access.check_config(_config(manager, other)) if user is not None else []
            if problems:
                return join(problems)
    except (AccessDenied, ValueError, OSError) as err:
        return err.args[0] if err.args else str(err)
    if user is None:
        return None
    try:
        if name:
            manager.summary(name, user)  # AccessDenied for someone else's run
            problems = access.check_config(_config(manager, name))
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


def answer(manager: JobManager, lang: str, name: str, system: str, question: str, turns: list,
           sampling: Sampling, request: gr.Request | None = None, base_model: str = "", token: str = "",
           user: User | None = None, against: str = BASE_SIDE, blind: bool = False):
    """Streams (transcript, turns, note) while the two models answer the question, in one new row.

    `against` is what the run is compared with: "base" or "run:<name>"; `blind` shows the answers as A and B
    in random order. `user` None is the owner's own call (no ownership or path checks); the page always
    passes one."""
    if not (question or "").strip():
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), t("empty_question", lang))
        return
    busy = busy_message(manager, lang) or refusal(manager, name, system, question, sampling, base_model, user,
                                                  against, blind)
    if busy:
        yield gr.skip(), gr.skip(), error_md(t("ask", lang), localize(busy, lang))
        return
    stop = _stops.setdefault(request.session_hash if request else "", threading.Event())
    stop.clear()
    order = _order(name, against, blind)
    turn = {"question": question, "system": system or "", "run": name, "order": order, "answers": {},
            "notes": {}, "blind": blind, "votable": False, "vote": None, "thumbs": {}}
    turns = [*(turns or []), turn]
    began, lease = time.time(), None
    try:
        for lease in _device(manager, user, name):
            if lease is None:
                yield render(turns, lang), turns, f'<div class="tl-muted">{t("waiting_lock", lang)}</div>'
        yield render(turns, lang), turns, f'<div class="tl-muted">{t("loading_model", lang)}</div>'
        messages = build_messages([], question, system or "")
        for answers, notes in _answers(name, against, base_model, token, messages, sampling, stop, lang):
            turn["answers"], turn["notes"] = answers, notes
            yield render(turns, lang), turns, ""
    except Exception as err:  # a bad run, a busy device or a missing package: a sentence in the page
        yield render(turns, lang), turns, error_box(t("ask", lang), err, lang)
        return
    finally:
        if lease is not None:
            lease.release()
    # a stopped answer is cut short: not a fair comparison, so it takes no vote
    turn["votable"] = bool(name) and not turn["notes"] and not stop.is_set()
    turn["done"] = True
    done = t("stopped_gen", lang) if stop.is_set() else t("answered_in", lang, seconds=f"{time.time() - began:.1f}")
    yield render(turns, lang), turns, f'<div class="tl-muted" data-done="1">{done}</div>'


def _order(name: str, against: str, blind: bool) -> list[str]:
    """The two models of a turn, left then right: the base (or the other run) left, this run right; shuffled
    when blind, so neither side gives the model away."""
    other = against if against.startswith(RUN_PREFIX) and name else votes.BASE
    order = [votes.TUNED, other] if other != votes.BASE else [votes.BASE, votes.TUNED]
    if blind and _shuffle.random() < 0.5:
        order.reverse()
    return order


def _answers(name: str, against: str, base_model: str, token: str, messages: list, sampling: Sampling,
             stop: threading.Event, lang: str):
    """Yields ({model: answer so far}, {model: a note shown instead}) as the answers grow."""
    if name and against.startswith(RUN_PREFIX):  # two runs: one after the other (the cache holds one model)
        first = ""
        for first in _stream_one(_load(name, token=token), messages, sampling, stop):
            yield {votes.TUNED: first}, {}
        for second in _stream_one(_load(against[len(RUN_PREFIX):], token=token), messages, sampling, stop):
            yield {votes.TUNED: first, against: second}, {}
        return
    chat = _load(name, base_model, token)
    with chat.lock:  # the device lock already keeps other answers out; this guards the model object
        if name and chat.has_base:
            for base, tuned in compare(chat.model, chat.tokenizer, messages, sampling, stop):
                yield {votes.BASE: base, votes.TUNED: tuned}, {}
        elif name:  # full fine-tuning: the saved model is the tuned one
            for (tuned,) in stream(chat.model, chat.tokenizer, messages, sampling, ["default"], stop):
                yield {votes.TUNED: tuned}, {votes.BASE: t("full_no_base", lang)}
        else:
            for (base,) in stream(chat.model, chat.tokenizer, messages, sampling, [BASE], stop):
                yield {votes.BASE: base}, {votes.TUNED: t("no_tuned", lang)}


def _stream_one(chat, messages: list, sampling: Sampling, stop: threading.Event):
    """A run's tuned answer as it grows (the adapter on, or the fully tuned model)."""
    with chat.lock:
        for (text,) in stream(chat.model, chat.tokenizer, messages, sampling, ["default"], stop):
            yield text


def _config(manager: JobManager, name: str) -> RunConfig:
    return RunConfig.load_yaml(runs.run_dir(name, manager.root) / "config.yaml")
