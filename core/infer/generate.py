"""Chatting with a model: streaming, sampling controls, base vs tuned.

Base and tuned answers come from one loaded model: with peft's mixed-batch
inference (`adapter_names`), row 0 runs without the adapter and row 1 with
it, in a single `generate` call, so both stream side by side and the weights
are in memory once. A stop event ends generation within one token.

Encoder-decoder models (T5, mt0, BART) read the conversation as the encoder's
source, rendered exactly as training rendered it, and answer from the
decoder: there is no prompt to slice off the output, only the decoder's
start token. Sampling settings left unset (None) are the model's own
(`generation_config`); a person's setting overrides them only when made.
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

from core.data.tokenize import seq2seq_source
from core.messages import Msg, msg
from core.models import is_seq2seq

BASE = "__base__"  # peft's name for "no adapter" in mixed batches


@dataclass
class Sampling:
    """A person's sampling choices; None leaves the model's own default (its generation_config) in force.

    temperature 0 means greedy (no sampling), whatever the model's default says."""
    max_new_tokens: int = 200
    temperature: float | None = None
    top_p: float | None = None
    top_k: int | None = None
    repetition_penalty: float | None = None

    def generate_kwargs(self) -> dict:
        kwargs: dict = {"max_new_tokens": int(self.max_new_tokens)}
        if self.repetition_penalty is not None:
            kwargs["repetition_penalty"] = float(self.repetition_penalty)
        if self.temperature is not None and self.temperature <= 0:
            kwargs["do_sample"] = False  # greedy: top_p/top_k would be ignored (and warned about)
            return kwargs
        if self.temperature is not None:
            kwargs.update(do_sample=True, temperature=float(self.temperature))
        if self.top_p is not None:
            kwargs["top_p"] = float(self.top_p)
        if self.top_k is not None:
            kwargs["top_k"] = int(self.top_k)
        return kwargs


SAMPLING_FIELDS = ("do_sample", "temperature", "top_p", "top_k", "repetition_penalty")


def model_defaults(model) -> dict:
    """The model's own sampling defaults (what a None setting means), from its generation_config."""
    config = getattr(model, "generation_config", None)
    return {name: getattr(config, name, None) for name in SAMPLING_FIELDS}


def describe_defaults(model) -> Msg:
    """The model's own sampling defaults as one line for people ("sampling, temperature 0.3, top_k 5")."""
    found = model_defaults(model)
    values = ", ".join(f"{name} {value}" for name, value in found.items() if name != "do_sample" and value is not None)
    key = "families_infer.defaults_sampling" if found["do_sample"] else "families_infer.defaults_greedy"
    return msg(key, values=values or "-")


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


def prompt_texts(model, tokenizer, conversations: list[list[dict]]) -> list[str]:
    """What the model reads for each conversation: the chat template with the assistant's turn opened (a decoder),
    or the source exactly as training rendered it (an encoder-decoder)."""
    if is_seq2seq(model):
        return [seq2seq_source(tokenizer, c) for c in conversations]
    return [tokenizer.apply_chat_template(c, add_generation_prompt=True, tokenize=False) for c in conversations]


def encode_prompts(model, tokenizer, conversations: list[list[dict]]) -> dict:
    """The padded batch `generate` takes: left-padded for a decoder (answers continue the prompt's last token),
    right-padded for an encoder-decoder (its decoder starts fresh); special tokens as training added them
    (none for a rendered chat template; the tokenizer's own around a seq2seq source: core.data.tokenize.encode_seq2seq)."""
    texts = prompt_texts(model, tokenizer, conversations)
    seq2seq = is_seq2seq(model)
    return tokenizer(texts, return_tensors="pt", padding=True, padding_side="right" if seq2seq else "left",
                     add_special_tokens=seq2seq)


def new_tokens(model, output: torch.Tensor, prompt_length: int) -> torch.Tensor:
    """The generated part of `generate`'s output: after the prompt (a decoder), after the decoder's start token
    (an encoder-decoder, whose output holds no prompt)."""
    return output[:, 1:] if is_seq2seq(model) else output[:, prompt_length:]


def stream(model, tokenizer, messages: list[dict], sampling: Sampling, adapters: list[str],
           stop: threading.Event | None = None) -> Iterator[list[str]]:
    """Yields the growing answer for each adapter name (BASE or an adapter), one list per update."""
    stop = stop or threading.Event()
    device = next(model.parameters()).device
    rows = len(adapters)
    inputs = encode_prompts(model, tokenizer, [messages] * rows).to(device)
    ends = stop_token_ids(model, tokenizer)
    streamer = _RowStreamer(tokenizer, rows, ends)  # its first put is the prompt (a decoder's start token): skipped
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
    """Answers many (conversation, adapter) rows in one padded `generate` call, no streaming.

    Probes and the held-out evaluation ask many short questions: on a CPU one
    batched call costs about what a single question does, so this is several
    times faster than asking them one by one.
    """
    if not conversations:
        return []
    device = next(model.parameters()).device
    inputs = encode_prompts(model, tokenizer, conversations).to(device)
    ends = stop_token_ids(model, tokenizer)
    with _inference(model, adapters) as extra:
        out = model.generate(**inputs, **sampling.generate_kwargs(), **extra,
                             pad_token_id=tokenizer.pad_token_id, eos_token_id=ends)
    generated = new_tokens(model, out, inputs["input_ids"].shape[1])
    return [_decode_answer(tokenizer, row, ends).strip() for row in generated.tolist()]


def compare(model, tokenizer, messages: list[dict], sampling: Sampling,
            stop: threading.Event | None = None) -> Iterator[tuple[str, str]]:
    """Streams (base answer, tuned answer) from one loaded PeftModel."""
    yield from map(tuple, stream(model, tokenizer, messages, sampling, [BASE, "default"], stop))
