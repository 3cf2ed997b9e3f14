"""Status lines from core/ as translatable messages, without core knowing about the UI.

`msg("job.finished", steps=12)` is a `Msg`: a str whose value is the English
text, so the CLI, logs, f-strings and `==` keep working unchanged, that also
carries `.key` and `.params`. The job writes both into events.jsonl next to
the text (`event_fields`), `message_of` turns an event back into a Msg, and
the UI looks the key up in its own tables (ui/strings.py). A key the UI does
not know, or an old event without one, shows the English text.

Keys are dotted ("job.…", "data.…") so they never collide with the UI's own keys.
"""
from __future__ import annotations

from typing import Any

# English templates; {name} placeholders are filled from msg()'s keyword arguments.
CATALOG: dict[str, str] = {
    "job.preparing": "Preparing…",
    "job.saving_adapter": "Saving the adapter…",
    "job.saving_model": "Saving the model…",
    "job.stopped": "Stopped at step {step} of {total}; what was learned is saved.",
    "job.finished": "Finished {steps} steps.",
    "job.oom_retry_batch": "Out of memory; retrying with micro-batch {batch_from} -> {batch_to}, "
                           "accumulation {accum_from} -> {accum_to} (same effective batch).",
    "job.oom_retry_checkpointing": "Out of memory; retrying with gradient checkpointing turned on (same effective batch).",
    "job.failed": "Training failed: {error}: {detail}",
    "data.loading": "Loading dataset {dataset}…",
    "data.tokenizing": "Tokenizing {n} examples…",
    "model.converting": "Converting the embedded model to safetensors (once, ~30 s)…",
    "model.loading": "Loading model {model}…",
    "export.merging": "Merging the adapter into the base model…",
    "export.saving": "Saving the merged model to {path}…",
    "runs.interrupted": "The app stopped while this run was training. Resume continues from the last checkpoint.",
    "error.out_of_memory": "Out of memory. Lower the batch size or max length, turn on gradient checkpointing, "
                           "or use QLoRA (4-bit).",
}


class Msg(str):
    """A str equal to the English text, with the catalog key and parameters it was made from."""

    key: str
    params: dict

    def __new__(cls, text: str, key: str, params: dict | None = None) -> "Msg":
        self = super().__new__(cls, text)
        self.key = key
        self.params = dict(params or {})
        return self

    def __reduce__(self):
        # str's default pickling would call Msg(text) and lose key/params (gradio deep-copies values)
        return (Msg, (str(self), self.key, self.params))

    def __repr__(self) -> str:
        return f"Msg({str(self)!r}, key={self.key!r}, params={self.params!r})"


def _plain(value: Any) -> Any:
    """A JSON-friendly parameter: events.jsonl stores params, and a Path or numpy int would not load back."""
    if value is None:
        return None
    for kind in (bool, int, float, str):  # bool first: it is also an int
        if isinstance(value, kind):
            return kind(value)  # drops subclasses (a Msg, an IntEnum) to the plain type
    if hasattr(value, "item"):  # numpy/torch scalars
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def msg(key: str, **params: Any) -> Msg:
    """The catalog's English text for `key` with `params` filled in, as a Msg."""
    clean = {name: _plain(value) for name, value in params.items()}
    return Msg(CATALOG[key].format(**clean), key, clean)


def event_fields(message: str) -> dict:
    """Fields for EventLog.append: the text as `message`, plus `key` and `params` when it is a Msg."""
    if isinstance(message, Msg):
        return {"message": str(message), "key": message.key, "params": message.params}
    return {"message": str(message)}


def message_of(event: dict, text_field: str = "message") -> str:
    """An event's message as a Msg when it carries a key, else the plain (English) text of older logs."""
    text = event.get(text_field, "") or ""
    key = event.get("key")
    if isinstance(key, str) and key:
        params = event.get("params")
        return Msg(text, key, params if isinstance(params, dict) else {})
    return text
