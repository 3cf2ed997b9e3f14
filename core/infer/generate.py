"""Chatting with a model: streaming, sampling controls, base vs tuned.

Base and tuned answers come from one loaded model: with peft's mixed-batch
inference (`adapter_names`), row 0 runs without the adapter and row 1 with
it, in a single `generate` call, so both stream side by side and the weights
are in memory once. A stop event ends generation within one token.
"""
from __future__ import annotations

import threading
from collections import deque
from collections.abc import Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass

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

    def __init__(self, tokenizer, rows: int, ends: list[int] | None = None):
        self.tokenizer, self.tokens, self.ends = tokenizer, [[] for _ in range(rows)], ends
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
        return [_decode_answer(self.tokenizer, toks, self.ends) for toks in self.tokens]


def _decode_answer(tokenizer, tokens: list[int], ends: list[int] | None = None) -> str:
    """A row's new tokens as text, up to its first end-of-sequence token (or pad)."""
    ends = set(ends or []) | _eos_ids(tokenizer)
    cut = next((i for i, t in enumerate(tokens) if t in ends), len(tokens))
    # Byte-level tokenizers spell a Korean syllable in up to 3 tokens: a half-made one decodes as U+FFFD.
    return tokenizer.decode(tokens[:cut], skip_special_tokens=True).rstrip("\ufffd")


@contextmanager
def _inference(model, adapters: list[str]) -> Iterator[dict]:
    """Eval mode without grad, set up for rows that each use one of `adapters` (BASE = no adapter).

    Yields the extra `generate` arguments: peft's `adapter_names` when rows mix adapters.
    """
    is_peft = hasattr(model, "peft_config")
    extra = {"adapter_names": list(adapters)} if is_peft and len(set(adapters)) > 1 else {}
    adapter_off = is_peft and set(adapters) == {BASE}
    was_training = model.training
    model.eval()  # dropout off; peft refuses mixed adapters in training mode
    try:
        with torch.inference_mode(), (model.disable_adapter() if adapter_off else nullcontext()):
            yield extra
    finally:
        model.train(was_training)


def stop_token_ids(model, tokenizer) -> list[int]:
    """Every token that ends an answer: the model's own EOS list (generation_config: Gemma-2 stops on
    `<end_of_turn>` as well as `<eos>`), the tokenizer's EOS, and `<|im_end|>` when the tokenizer was given
    a ChatML template. Passing only the tokenizer's EOS replaced the model's list and ran past end of turn."""
    own = getattr(getattr(model, "generation_config", None), "eos_token_id", None)
    ids = list(own) if isinstance(own, (list, tuple)) else ([own] if own is not None else [])
    ids.append(tokenizer.eos_token_id)
    if "<|im_end|>" in (getattr(tokenizer, "chat_template", None) or ""):
        ids.append(tokenizer.convert_tokens_to_ids("<|im_end|>"))
    return list(dict.fromkeys(int(i) for i in ids if i is not None))


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
    ends = stop_token_ids(model, tokenizer)
    streamer = _RowStreamer(tokenizer, rows, ends)
    kwargs = dict(**inputs, **sampling.generate_kwargs(), streamer=streamer,
                  stopping_criteria=StoppingCriteriaList([_StopOnEvent(stop)]),
                  pad_token_id=tokenizer.pad_token_id, eos_token_id=ends)
    errors: list[BaseException] = []

    def work():
        try:
            with _inference(model, adapters) as extra:
                model.generate(**kwargs, **extra)
        except BaseException as err:  # surfaced to the caller below
            errors.append(err)
        finally:
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
    final = deque(stream(model, tokenizer, messages, sampling, [adapter]), maxlen=1)  # only the last update
    return final[0][0].strip() if final else ""


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
    ends = stop_token_ids(model, tokenizer)
    with _inference(model, adapters) as extra:
        out = model.generate(**inputs, **sampling.generate_kwargs(), **extra,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=ends)
    return [_decode_answer(tokenizer, row, ends).strip() for row in out[:, inputs["input_ids"].shape[1]:].tolist()]


def compare(model, tokenizer, messages: list[dict], sampling: Sampling,
            stop: threading.Event | None = None) -> Iterator[tuple[str, str]]:
    """Streams (base answer, tuned answer) from one loaded PeftModel."""
    yield from map(tuple, stream(model, tokenizer, messages, sampling, [BASE, "default"], stop))
