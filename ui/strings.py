"""The interface's door to the text catalogue (core/catalog/<lang>/*.yaml).

Tab code asks `t("key", lang)` and never holds text of its own; a translation
is an edit of the catalogue, not of the tabs. Status lines, errors and advice
from core/ arrive as core.messages.Msg and are shown with `localize`.
"""
from __future__ import annotations

from core.config import RunConfig
from core.messages import LANGS, localize, text

__all__ = ["LANGS", "t", "localize", "field_label", "field_help"]


def t(key: str, lang: str = "en", **values) -> str:
    """The text for `key` in `lang` (English when missing), with {placeholders} filled."""
    return text(key, lang, **values)


def field_label(name: str, lang: str = "en") -> str:
    """The form label of a RunConfig field."""
    return RunConfig.field_info(name, lang)["label"]


def field_help(name: str, lang: str = "en") -> str:
    """The tooltip of a RunConfig field."""
    return RunConfig.field_info(name, lang)["help"]
