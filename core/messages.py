"""Text for people, in every language, from one catalogue: `core/catalog/<lang>/*.yaml`.

Code never holds a sentence of its own: it names a key. `msg("job.finished",
steps=12)` is a `Msg`, a str whose value is the English text (so the CLI, logs,
f-strings and `==` keep working) that also carries `.key` and `.params`, so
any reader can show it in another language with `localize(m, "ko")`. The
interface asks `text("start", "ko")` for its labels. A job writes key and
params into events.jsonl next to the English text (`event_fields`), and
`message_of` turns an event back into a Msg, so a Korean page shows a run's
status in Korean even after a restart.

Parameters may themselves be Msgs (a problem inside "Can't start: …") and are
localized with their parent. Keys are the same in every language; the
catalogue test checks that, and that each key's {placeholders} agree.
"""
from __future__ import annotations

import functools
from pathlib import Path
from typing import Any

import yaml

LANGS = ("en", "ko")
DEFAULT_LANG = "en"
CATALOG_DIR = Path(__file__).parent / "catalog"
JOIN = "_join"  # the key of a Msg made of several Msgs (see join())


@functools.cache
def catalog(lang: str) -> dict[str, str]:
    """Every key of one language, from all of its YAML files; a key defined twice is an error."""
    table: dict[str, str] = {}
    for path in sorted((CATALOG_DIR / lang).glob("*.yaml")):
        part = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
        clash = set(part) & set(table)
        if clash:
            raise ValueError(f"catalogue keys defined twice ({path.name}): {', '.join(sorted(clash))}")
        table.update({str(k): str(v) for k, v in part.items()})
    return table


class Msg(str):
    """A str equal to the English text, with the catalogue key and parameters it was made from."""

    key: str
    params: dict

    def __new__(cls, text: str, key: str, params: dict | None = None) -> Msg:
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
    if isinstance(value, Msg):
        return {"$msg": value.key, "params": value.params, "text": str(value)}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    for kind in (bool, int, float, str):  # bool first: it is also an int
        if isinstance(value, kind):
            return kind(value)  # drops subclasses (an IntEnum) to the plain type
    if hasattr(value, "item"):  # numpy/torch scalars
        try:
            return _plain(value.item())
        except (TypeError, ValueError):
            pass
    return str(value)


def _fill(template: str, params: dict, lang: str) -> str:
    """The template with its placeholders filled, nested messages localized too."""
    return template.format(**{name: _param_text(value, lang) for name, value in params.items()})


def _param_text(value: Any, lang: str) -> Any:
    if isinstance(value, dict) and "$msg" in value:
        return localize(Msg(value.get("text", ""), value["$msg"], value.get("params") or {}), lang)
    if isinstance(value, list):
        return ", ".join(str(_param_text(v, lang)) for v in value)
    return value


def text(key: str, lang: str = DEFAULT_LANG, **params: Any) -> str:
    """The catalogue's text for `key` in `lang` (English where `lang` lacks it), placeholders filled."""
    template = catalog(lang).get(key) if lang in LANGS else None
    template = template if template is not None else catalog(DEFAULT_LANG).get(key, key)
    return _fill(template, {name: _plain(value) for name, value in params.items()}, lang) if params else template


def msg(key: str, **params: Any) -> Msg:
    """The catalogue's English text for `key` with `params` filled in, as a Msg."""
    if key not in catalog(DEFAULT_LANG):
        raise KeyError(f"no catalogue entry '{key}' in core/catalog/{DEFAULT_LANG}/")
    clean = {name: _plain(value) for name, value in params.items()}
    return Msg(_fill(catalog(DEFAULT_LANG)[key], clean, DEFAULT_LANG), key, clean)


def join(messages: list, sep: str = " ") -> Msg:
    """Several messages as one (e.g. all the problems of a config), each localized on its own."""
    parts = [_plain(m) if isinstance(m, Msg) else str(m) for m in messages]
    return Msg(sep.join(str(m) for m in messages), JOIN, {"parts": parts, "sep": sep})


def localize(message: Any, lang: str = DEFAULT_LANG) -> str:
    """A message in `lang`: a Msg is looked up by its key; plain text (older logs, library errors) stays as it is."""
    if not isinstance(message, Msg):
        return "" if message is None else str(message)
    if message.key == JOIN:
        sep = message.params.get("sep", " ")
        return sep.join(str(_param_text(p, lang)) for p in message.params.get("parts", []))
    if lang == DEFAULT_LANG and message:
        return str(message)  # English keeps the text as it was written (the catalogue may have changed since)
    template = catalog(lang).get(message.key) if lang in LANGS else None
    if template is None:
        return str(message)
    try:
        return _fill(template, message.params, lang)
    except (KeyError, IndexError, ValueError):  # params of an older or newer log that don't fit
        return str(message)


def event_fields(message: str) -> dict:
    """Fields for EventLog.append: the text as `message`, plus `key` and `params` when it is a Msg."""
    if isinstance(message, Msg):
        return {"message": str(message), "key": message.key, "params": message.params}
    return {"message": str(message)}


def message_of(event: dict, text_field: str = "message") -> str:
    """An event's message as a Msg when it carries a key, else the plain (English) text of older logs."""
    message = event.get(text_field, "") or ""
    key = event.get("key")
    if isinstance(key, str) and key:
        params = event.get("params")
        return Msg(message, key, params if isinstance(params, dict) else {})
    return message
