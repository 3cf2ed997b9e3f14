"""Chatting with a model: streaming, sampling controls, base vs tuned.

Base and tuned answers come from one loaded model: with peft's mixed-batch
inference (`adapter_names`), row 0 runs without the adapter and row 1 with
it, in a single `generate` call, so both stream side by side and the weights
are in memory once. A stop event ends generation within one token.
"""
from __future__ import annotations

import threading
from contextlib import nullcontext
from dataclasses import dataclass
from typing import Iterator

import torch
from transformers import StoppingCriteria, StoppingCriteriaList
from transformers.generation.streamers import BaseStreamer

BASE = "__base__"  # peft's name for "no adapter" in mixed batches


@dataclass
class Sampling:
    max_new_tokens: int = 200
    temperature: float = 0.7
    top_p: float = 0.9
    top_k: int = 50
    repetition_penalty: float = 1.1

    def generate_kwargs(self) -> dict:
        greedy = self.temperature <= 0
        kwargs = {"max_new_tokens": int(self.max_new_tokens), "do_sample": not greedy,
                  "repetition_penalty": float(self.repetition_penalty)}
        if not greedy:
            kwargs.update(temperature=float(self.temperature), top_p=float(self.top_p), top_k=int(self.top_k))
        return kwargs


GREEDY = Sampling(temperature=0.0, repetition_penalty=1.0)


def build_messages(history: list[dict], question: str, system_prompt: str = "") -> list[dict]:
    messages = [{"role": "system", "content": system_prompt}] if system_prompt.strip() else []
    return messages + list(history) + [{"role": "user", "content": question}]


class _StopOnEvent(StoppingCriteria):
    def __init__(self, event: threading.Event):
        self.event = event

    def __call__(self, input_ids, scores, **kwargs) -> bool:
        return self.event.is_set()


class _RowStreamer(BaseStreamer):
    """Collects new tokens per batch row and hands out decoded text as it grows."""

    def __init__(self, tokenizer, rows: int):
        self.tokenizer, self.tokens = tokenizer, [[] for _ in range(rows)]
        self.prompt_seen, self.updates, self.done = False, threading.Condition(), False

    def put(self, value: torch.Tensor) -> None:
        if not self.prompt_seen:  # the first call carries the prompt
            self.prompt_seen = True
            return
        with self.updates:
            for row, tok in enumerate(value.view(len(self.tokens), -1)[:, -1].tolist()):
                self.tokens[row].append(tok)
            self.updates.notify_all()

    def end(self) -> None:
        with self.updates:
            self.done = True
            self.updates.notify_all()

    def texts(self) -> list[str]:
        out = []
        for toks in self.tokens:
            # stop at the first end-of-sequence token of each row
            cut = next((i for i, t in enumerate(toks) if t in _eos_ids(self.tokenizer)), len(toks))
            out.append(_complete_chars(self.tokenizer.decode(toks[:cut], skip_special_tokens=True)))
        return out


def _complete_chars(text: str) -> str:
    # Byte-level tokenizers spell a Korean syllable in up to 3 tokens: a half-made one decodes as U+FFFD.
    return text.rstrip("\ufffd")


def _eos_ids(tokenizer) -> set:
    ids = {tokenizer.eos_token_id}
    if tokenizer.pad_token_id is not None:
        ids.add(tokenizer.pad_token_id)
    return ids


def stream(model, tokenizer, messages: list[dict], sampling: Sampling, adapters: list[str],
           stop: threading.Event | None = None) -> Iterator[list[str]]:
    """Yields the growing answer for each adapter name (BASE or an adapter), one list per update."""
    stop = stop or threading.Event()
    device = next(model.parameters()).device
    prompt = tokenizer.apply_chat_template(messages, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    rows = len(adapters)
    inputs = {k: v.to(device).repeat(rows, 1) for k, v in prompt.items()}
    streamer = _RowStreamer(tokenizer, rows)
    kwargs = dict(**inputs, **sampling.generate_kwargs(), streamer=streamer,
                  stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    is_peft = hasattr(model, "peft_config")
    if is_peft and len(set(adapters)) > 1:
        kwargs["adapter_names"] = adapters
    adapter_off = is_peft and set(adapters) == {BASE}
    errors: list[BaseException] = []

    def work():
        was_training = model.training
        model.eval()  # dropout off; peft refuses mixed adapters in training mode
        try:
            with torch.inference_mode(), (model.disable_adapter() if adapter_off else nullcontext()):
                model.generate(**kwargs)
        except BaseException as err:  # surfaced to the caller below
            errors.append(err)
        finally:
            model.train(was_training)
            streamer.end()

    thread = threading.Thread(target=work, daemon=True)
    thread.start()
    last = None
    while True:
        with streamer.updates:
            streamer.updates.wait(timeout=0.2)
            done = streamer.done
        texts = streamer.texts()
        if texts != last:
            last = texts
            yield texts
        if done:
            break
    thread.join()
    if errors:
        raise errors[0]


def answer(model, tokenizer, messages: list[dict], sampling: Sampling = GREEDY, adapter: str = "default") -> str:
    """One complete answer (no streaming), with or without the adapter."""
    texts = [""]
    for texts in stream(model, tokenizer, messages, sampling, [adapter]):
        pass
    return texts[0].strip()


def answer_batch(model, tokenizer, conversations: list[list[dict]], adapters: list[str],
                 sampling: Sampling = GREEDY) -> list[str]:
    """Answers many (conversation, adapter) rows in one left-padded `generate` call, no streaming.

    Probes and the held-out evaluation ask many short questions: on a CPU one
    batched call costs about what a single question does, so this is several
    times faster than asking them one by one.
    """
    if not conversations:
        return []
    device = next(model.parameters()).device
    texts = [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]
    inputs = tokenizer(texts, return_tensors="pt", padding=True, padding_side="left",
                       add_special_tokens=False).to(device)
    kwargs = dict(**inputs, **sampling.generate_kwargs(),
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=tokenizer.eos_token_id)
    is_peft = hasattr(model, "peft_config")
    if is_peft and len(set(adapters)) > 1:
        kwargs["adapter_names"] = list(adapters)
    adapter_off = is_peft and set(adapters) == {BASE}
    was_training = model.training
    model.eval()
    try:
        with torch.inference_mode(), (model.disable_adapter() if adapter_off else nullcontext()):
            out = model.generate(**kwargs)
    finally:
        model.train(was_training)
    new_tokens = out[:, inputs["input_ids"].shape[1]:].tolist()
    ends = _eos_ids(tokenizer)
    cut = [next((i for i, t in enumerate(row) if t in ends), len(row)) for row in new_tokens]
    return [_complete_chars(tokenizer.decode(row[:n], skip_special_tokens=True)).strip()
            for row, n in zip(new_tokens, cut)]


def compare(model, tokenizer, messages: list[dict], sampling: Sampling,
            stop: threading.Event | None = None) -> Iterator[tuple[str, str]]:
    """Streams (base answer, tuned answer) from one loaded PeftModel."""
    for base, tuned in stream(model, tokenizer, messages, sampling, [BASE, "default"], stop):
        yield base, tuned
