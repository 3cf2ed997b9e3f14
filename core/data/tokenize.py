"""Turning chat examples into token ids and labels, with answers-only masking.

The text is always rendered by the tokenizer's own chat template. Which
characters belong to assistant replies is found by rendering the
conversation up to each reply (with and without the reply); tokens whose
characters fall inside a reply carry loss, the rest get label -100. This
works for templates without trl's `{% generation %}` markers (most of them),
which is why it is written here instead of using `assistant_only_loss`.
"""
from __future__ import annotations

IGNORE = -100

# Used when a model has no chat template of its own (base models such as GPT-2).
PLAIN_TEMPLATE = (
    "{% for m in messages %}"
    "{% if m['role'] == 'system' %}{{ m['content'] }}\n\n"
    "{% elif m['role'] == 'user' %}### User:\n{{ m['content'] }}\n\n"
    "{% else %}### Assistant:\n{{ m['content'] }}{{ eos_token }}\n\n{% endif %}"
    "{% endfor %}"
    "{% if add_generation_prompt %}### Assistant:\n{% endif %}"
)
CHATML_TEMPLATE = (
    "{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
    "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}"
)


def apply_template_choice(tokenizer, choice: str) -> None:
    """Give the tokenizer the chosen chat template ('auto' keeps the model's own)."""
    if choice == "chatml":
        missing = [t for t in ("<|im_start|>", "<|im_end|>") if t not in tokenizer.get_vocab()]
        if missing:
            tokenizer.add_special_tokens({"additional_special_tokens": missing})
        tokenizer.chat_template = CHATML_TEMPLATE
        tokenizer.eos_token = "<|im_end|>"
    elif choice == "plain" or not tokenizer.chat_template:
        tokenizer.chat_template = PLAIN_TEMPLATE


def render(tokenizer, messages: list[dict], add_generation_prompt: bool = False) -> str:
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=add_generation_prompt)


# Above this many replies a conversation's spans are found in one pass (see _spans_in_one_pass):
# rendering it up to each reply costs time quadratic in its turns (1,000 turns took ~6 s).
ONE_PASS_REPLIES = 8
_SENTINEL = "\u2063TuneLab-reply\u2063"


def assistant_spans(tokenizer, messages: list[dict], full: str) -> list[tuple[int, int]]:
    """Character ranges of `full` that hold assistant replies (with their end-of-turn marks)."""
    if sum(1 for m in messages if m["role"] == "assistant") > ONE_PASS_REPLIES:
        spans = _spans_in_one_pass(tokenizer, messages, full)
        if spans is not None:
            return spans
    spans, search_from = [], 0
    for i, message in enumerate(messages):
        if message["role"] != "assistant":
            continue
        before = render(tokenizer, messages[:i], add_generation_prompt=True) if i else ""
        through = render(tokenizer, messages[: i + 1])
        if i and full.startswith(before) and full.startswith(through) and len(through) > len(before):
            spans.append((len(before), len(through)))
            search_from = len(through)
            continue
        # Templates that rewrite earlier turns: find the reply text itself.
        start = full.find(message["content"], search_from)
        if start >= 0:
            spans.append((start, start + len(message["content"])))
            search_from = start + len(message["content"])
    return spans


def _reply_suffix(tokenizer) -> str | None:
    """What the template writes after a reply's text (e.g. '<|im_end|>\\n'), from one two-turn render;
    None when the template changes the reply's text, so its position cannot be found by searching."""
    key = (tokenizer.chat_template, tokenizer.eos_token, tokenizer.bos_token)  # what a template may print
    cached = _SUFFIXES.get(id(tokenizer))
    if cached and cached[0] == key:
        return cached[1]
    through = render(tokenizer, [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": _SENTINEL}])
    at = through.find(_SENTINEL)
    suffix = through[at + len(_SENTINEL):] if at >= 0 else None
    _SUFFIXES[id(tokenizer)] = (key, suffix)
    return suffix


_SUFFIXES: dict[int, tuple] = {}


def _spans_in_one_pass(tokenizer, messages: list[dict], full: str) -> list[tuple[int, int]] | None:
    """The reply spans found by walking `full` once: each turn's text is searched from where the last
    one ended, and a reply's span runs through the template's end-of-turn text. Same spans as rendering
    up to each reply for templates that keep the text as it is; None when it cannot be used."""
    suffix = _reply_suffix(tokenizer)
    if suffix is None:
        return None
    spans, search_from = [], 0
    for message in messages:
        content = message["content"]
        start = full.find(content, search_from) if content else -1
        if start < 0:
            if message["role"] == "assistant":
                return None  # the template changed the reply: take the exact (slow) way
            continue
        end = start + len(content)
        if message["role"] == "assistant":
            if suffix and full.startswith(suffix, end):
                end += len(suffix)
            spans.append((start, end))
        search_from = end
    return spans


def encode_example(tokenizer, example: dict, max_length: int, train_on: str = "answers") -> dict:
    """{'input_ids', 'labels', 'truncated'} for one chat (`messages`) or plain-text (`text`) example."""
    if "text" in example:
        ids = tokenizer(example["text"], add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
        return _cut(ids, list(ids), max_length)
    messages = example["messages"]
    full = render(tokenizer, messages)
    encoded = tokenizer(full, add_special_tokens=False, return_offsets_mapping=True)
    ids, offsets = encoded["input_ids"], encoded["offset_mapping"]
    if train_on == "all":
        return _cut(ids, list(ids), max_length)
    spans = assistant_spans(tokenizer, messages, full)
    labels = [tok if _inside(start, end, spans) else IGNORE for tok, (start, end) in zip(ids, offsets)]
    return _cut(ids, labels, max_length)


def _inside(start: int, end: int, spans: list[tuple[int, int]]) -> bool:
    if end <= start:
        return False
    return any(s <= start < e for s, e in spans)


def _cut(ids: list[int], labels: list[int], max_length: int) -> dict:
    return {"input_ids": ids[:max_length], "labels": labels[:max_length], "truncated": len(ids) > max_length}


def chunk_text_examples(tokenizer, texts: list[str], max_length: int) -> list[dict]:
    """Continued pretraining: concatenate texts and cut into max_length blocks."""
    stream: list[int] = []
    for text in texts:
        stream += tokenizer(text, add_special_tokens=False)["input_ids"] + [tokenizer.eos_token_id]
    blocks = [stream[i: i + max_length] for i in range(0, len(stream), max_length)]
    return [{"input_ids": b, "labels": list(b), "truncated": False} for b in blocks if len(b) > 1]


# --- encoder-decoder models (T5, mT5, mt0, BART) ----------------------------------------
def seq2seq_source(tokenizer, messages: list[dict]) -> str:
    """The encoder's input for a conversation that ends with the question to answer (training and chat
    render it the same way): the tokenizer's chat template (or the plain User/Assistant one, see
    apply_template_choice) with its generation prompt, so earlier replies stay in the history."""
    return tokenizer.apply_chat_template(messages, tokenize=False, add_generation_prompt=True,
                                         chat_template=tokenizer.chat_template or PLAIN_TEMPLATE)


def seq2seq_pairs(messages: list[dict]) -> list[tuple[list[dict], str]]:
    """(history up to a reply, the reply) for every assistant reply.

    Every reply, not only the last: a decoder run learns each reply of a conversation in one pass,
    and the seq2seq equivalent is one pair per reply (its history as the source), so a multi-turn
    chat teaches the same replies with either kind of model.
    """
    return [(messages[:i], m["content"]) for i, m in enumerate(messages)
            if m["role"] == "assistant" and i and any(x["role"] == "user" for x in messages[:i])]


def encode_seq2seq(tokenizer, source: str, target: str) -> dict:
    """{'input_ids': source ids, 'labels': target ids ending in EOS} in the tokenizer's own layout for
    each side (T5 appends </s>, BART wraps in <s>...</s>); no length cut here (the pipeline cuts)."""
    ids = tokenizer(source)["input_ids"]
    labels = tokenizer(text_target=target)["input_ids"]
    if tokenizer.eos_token_id is not None and (not labels or labels[-1] != tokenizer.eos_token_id):
        labels = labels + [tokenizer.eos_token_id]  # a tokenizer that adds nothing (BPE): the reply must still end
    return {"input_ids": ids, "labels": labels, "seq2seq": True}
