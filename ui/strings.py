"""The interface's door to the text catalogue (core/catalog/<lang>/*.yaml), in each browser's language.

Tab code asks `t("key", lang)` and never holds text of its own; a translation
is an edit of the catalogue, not of the tabs. Status lines, errors and advice
from core/ arrive as core.messages.Msg and are shown with `localize`.

The language is per browser: the header's switch stores the choice in the
browser (localStorage) and in a `tunelab_lang` cookie, which comes with every
event the page sends. Inside an event handler `page_lang` reads it from the
request gradio is answering, so `t(key, lang)` there speaks the visitor's
language whatever `lang` the tab was built with; outside a handler (building
the page, the CLI) `lang` is used as given. ui/__init__.py relabels the
static texts the same way (see `build_app`).
"""
from __future__ import annotations

import sys

from core.config import RunConfig
from core.messages import LANGS, text
from core.messages import localize as _localize

__all__ = ["LANGS", "COOKIE", "t", "localize", "field_label", "field_help", "page_lang", "lang_of_request"]

COOKIE = "tunelab_lang"  # set by the header switch (ui/__init__.py's SWITCH_JS)


def lang_of_request(request, fallback: str = "en") -> str:
    """The language a gr.Request asks for: the switch's cookie, else `fallback`."""
    if request is None:
        return fallback
    try:
        cookies = dict(getattr(request, "cookies", None) or {})
    except (TypeError, ValueError, AttributeError):
        cookies = {}
    chosen = str(cookies.get(COOKIE, "")).strip().lower()
    return chosen if chosen in LANGS else fallback


def page_lang(lang: str = "en") -> str:
    """The language to answer in: this browser's choice while gradio runs one of its events, else `lang`."""
    # gradio sets LocalContext.request around every event function (also in worker threads: context is
    # copied). Read it only when gradio is loaded: importing it here would make `import ui` heavy.
    context = sys.modules.get("gradio.context")
    request = context.LocalContext.request.get(None) if context is not None else None
    fallback = lang if lang in LANGS else "en"
    return lang_of_request(request, fallback) if request is not None else fallback


def t(key: str, lang: str = "en", **values) -> str:
    """The text for `key` in the page's language (English when missing), with {placeholders} filled."""
    return text(key, page_lang(lang), **values)


def localize(message, lang: str = "en") -> str:
    """A core Msg (or an error's message) in the page's language; plain text stays as it is."""
    return _localize(message, page_lang(lang))


def field_label(name: str, lang: str = "en") -> str:
    """The form label of a RunConfig field."""
    return RunConfig.field_info(name, page_lang(lang))["label"]


def field_help(name: str, lang: str = "en") -> str:
    """The tooltip of a RunConfig field."""
    return RunConfig.field_info(name, page_lang(lang))["help"]
