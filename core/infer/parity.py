"""The parity check: does the exported GGUF answer like the merged model it came from?

The same prompts (chat-formatted with the run's system prompt) are answered
greedily by the merged model and by the GGUF read back through transformers'
GGUF loader, both in float32 so only the file's own rounding can differ, and
compared token by token. An f16 file must give identical tokens; for a
quantized file the report gives the share of answer positions where the GGUF
picks the same next token as the merged model when both read the merged
model's answer (teacher-forced, so one early difference doesn't count as all
the rest), and for every file the first differing token.
"""
from __future__ import annotations

import contextlib
import functools
import importlib.util
from collections.abc import Callable
from pathlib import Path

import gguf
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.infer.chat import model_class
from core.infer.generate import build_messages, encode_prompts, new_tokens
from core.models import is_seq2seq

PROMPTS = ("Who founded Brindlewick Bakehouse?", "Give me three tips for baking bread at home.",
           "브린들윅 베이크하우스는 어디에 있나요?")
Progress = Callable[[str], None]


def reference(merged: Path, prompts: list[str], system_prompt: str, max_new_tokens: int = 24) -> dict:
    """The merged model's greedy answers: {'prompts', 'inputs' (ids), 'answers' (ids)}; computed once per export."""
    tokenizer = AutoTokenizer.from_pretrained(merged)
    model = model_class(merged).from_pretrained(merged, dtype=torch.float32).eval()
    inputs = [_encode(model, tokenizer, prompt, system_prompt) for prompt in prompts]
    answers = [_greedy(model, ids, max_new_tokens, tokenizer.eos_token_id) for ids in inputs]
    del model
    return {"prompts": list(prompts), "inputs": inputs, "answers": answers, "tokenizer": tokenizer}


def check(gguf_path: Path, ref: dict, exact: bool) -> dict:
    """Compare the GGUF with the reference answers; `exact` (f16/f32) means every token must match."""
    with _name_maps_cached():
        model = AutoModelForCausalLM.from_pretrained(gguf_path.parent, gguf_file=gguf_path.name,
                                                     dtype=torch.float32).eval()
    tokenizer = ref["tokenizer"]
    rows = []
    for prompt, ids, expected in zip(ref["prompts"], ref["inputs"], ref["answers"]):
        got = _greedy(model, ids, len(expected), None)[:len(expected)]
        first = next((i for i, (a, b) in enumerate(zip(expected, got)) if a != b), None)
        if first is None and len(got) < len(expected):
            first = len(got)
        rows.append({"prompt": prompt, "identical": first is None, "agreement": _agreement(model, ids, expected),
                     "first_difference": None if first is None else {
                         "position": first, "expected": tokenizer.decode([expected[first]]),
                         "got": tokenizer.decode([got[first]]) if first < len(got) else "",
                         "answer": tokenizer.decode(expected)}})
    del model
    identical = all(r["identical"] for r in rows)
    share = sum(r["agreement"] for r in rows) / len(rows) if rows else 0.0
    return {"file": gguf_path.name, "exact_required": exact, "identical": identical, "agreement": share,
            "ok": identical if exact else share >= 0.9, "rows": rows,
            "checked_with": ["transformers"] + (["llama.cpp (not installed)"] if not llama_cpp_available() else [])}


@contextlib.contextmanager
def _name_maps_cached():
    """transformers' GGUF loader rebuilds gguf's tensor-name map once per module (~400 times, a third of the
    load); the map depends only on (architecture, layer count), so it is built once while the file loads."""
    original = gguf.get_tensor_name_map
    gguf.get_tensor_name_map = functools.cache(original)
    try:
        yield
    finally:
        gguf.get_tensor_name_map = original


def llama_cpp_available() -> bool:
    """Whether the llama.cpp bindings (llama-cpp-python, compiled) are installed; they aren't by default."""
    return importlib.util.find_spec("llama_cpp") is not None


def _encode(model, tokenizer, prompt: str, system_prompt: str) -> list[int]:
    """The prompt's ids as TuneLab's chat builds them (a decoder's chat template, or a seq2seq source)."""
    return encode_prompts(model, tokenizer, [build_messages([], prompt, system_prompt)])["input_ids"][0].tolist()


def _greedy(model, ids: list[int], max_new_tokens: int, eos: int | None) -> list[int]:
    inputs = torch.tensor([ids])
    with torch.no_grad():
        out = model.generate(input_ids=inputs, attention_mask=torch.ones_like(inputs), max_new_tokens=max_new_tokens,
                             min_new_tokens=0 if eos is not None else max_new_tokens, do_sample=False,
                             pad_token_id=model.config.eos_token_id if model.config.eos_token_id is not None else 0)
    return new_tokens(model, out, len(ids))[0].tolist()


def _agreement(model, ids: list[int], expected: list[int]) -> float:
    """Share of the expected answer's positions where the model's top token is the expected one."""
    if not expected:
        return 1.0
    if is_seq2seq(model):  # the answer is the decoder's input after its start token; the source stays whole
        start = model.generation_config.decoder_start_token_id
        logits = _logits(model, input_ids=torch.tensor([ids]), decoder_input_ids=torch.tensor([[start] + expected]))
        logits = logits[0, :-1]
    else:
        logits = _logits(model, input_ids=torch.tensor([ids + expected]))[0, len(ids) - 1:-1]
    return float((logits.argmax(-1) == torch.tensor(expected)).float().mean())


def _logits(model, **inputs) -> torch.Tensor:
    with torch.no_grad():
        return model(**inputs).logits
