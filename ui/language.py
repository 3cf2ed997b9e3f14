"""The page's language, per browser: the English / 한국어 switch in the header and the relabelling behind it.

Gradio sends one page config to every browser, built in one language. So
`build_app` builds the page once per language (`pages`); the components line up
one to one, and `Relabel` keeps, for each component whose constructor texts
differ between the builds (label, info, placeholder, choices, a Markdown's or a
button's value, a plot's titles and colours' names), those arguments in every
language. When the page loads, and when the switch flips, one event sends each
such component its texts in the browser's language (no reload, form values are
kept; on a flip, a component events write to keeps the content it has by then), then the
page's loaders run again so the live parts are redrawn in it.

The choice lives in the browser: localStorage (kept across reloads and
restarts) and the `tunelab_lang` cookie that comes with every event, which
ui.strings.page_lang reads so every handler answers in that language. A
browser without a choice gets the server's --lang when one was given, else its
own language (navigator.languages) when we have it, else English.
"""
from __future__ import annotations

import json
from typing import Any

import gradio as gr

from ui.strings import COOKIE, LANGS

STORE = "tunelab-lang"  # the localStorage key
NAMES = {"en": "English", "ko": "한국어"}  # each language in its own words: the same in every page
SKIP = (gr.LoginButton,)  # its label is redrawn by gradio's own sign-in script


# In the page's <head>, before gradio starts: a stored choice is sent with the very first event, and gradio's own
# words (upload boxes, tables, "Loading…") follow it too, since gradio picks its locale from navigator.language.
HEAD = f"""<script>(() => {{ try {{
  const lang = localStorage.getItem({json.dumps(STORE)});
  if (!{json.dumps(list(LANGS))}.includes(lang)) return;
  document.cookie = {json.dumps(COOKIE + '=')} + lang + "; path=/; max-age=31536000; SameSite=Lax";
  Object.defineProperty(Navigator.prototype, "language", {{ get: () => lang, configurable: true }});
  Object.defineProperty(Navigator.prototype, "languages", {{ get: () => [lang], configurable: true }});
}} catch (e) {{}} }})();</script>"""


def switch(lang: str) -> gr.Radio:
    """The header's switch; `lang` the build's language (the page corrects it on load)."""
    return gr.Radio([(NAMES.get(code, code), code) for code in LANGS], value=lang, show_label=False,
                    container=False, elem_id="lang-switch", elem_classes="tl-lang", scale=0, min_width=220)


def _remember_js(lang_var: str) -> str:
    return (f"try {{ localStorage.setItem({json.dumps(STORE)}, {lang_var}); }} catch (e) {{}}"
            f"document.cookie = {json.dumps(COOKIE + '=')} + {lang_var} + '; path=/; max-age=31536000; SameSite=Lax';"
            f"document.documentElement.lang = {lang_var};")


def choose_js(server_default: str | None) -> str:
    """JS run on page load: the browser's stored choice, else the server's --lang, else its own language."""
    return f"""(current) => {{
  const langs = {json.dumps(list(LANGS))};
  let lang = null;
  try {{ lang = localStorage.getItem({json.dumps(STORE)}); }} catch (e) {{}}
  if (!langs.includes(lang)) {{
    lang = {json.dumps(server_default)};
    for (const wanted of (lang ? [] : (navigator.languages || [navigator.language || ""]))) {{
      const code = (wanted || "").toLowerCase().split("-")[0];
      if (langs.includes(code)) {{ lang = code; break; }}
    }}
    lang = lang || "en";
    document.cookie = {json.dumps(COOKIE + '=')} + lang + '; path=/; max-age=31536000; SameSite=Lax';
    document.documentElement.lang = lang;
  }} else {{ {_remember_js("lang")} }}
  return lang;
}}"""


def switch_js() -> str:
    """JS run when the visitor flips the switch: remember the choice, then the relabel event runs."""
    return f"(lang, ...shown) => {{ {_remember_js('lang')} return [lang, ...shown]; }}"


def _plain(value: Any) -> bool:
    """Constructor arguments that are data (texts, choices, colour maps), not callables or components."""
    if value is None or isinstance(value, (str, int, float, bool)):
        return True
    if isinstance(value, (list, tuple)):
        return all(_plain(v) for v in value)
    if isinstance(value, dict):
        return all(isinstance(k, str) and _plain(v) for k, v in value.items())
    return False


def _same(a: Any, b: Any) -> bool:
    return json.dumps(a, sort_keys=True, ensure_ascii=False) == json.dumps(b, sort_keys=True, ensure_ascii=False)


class Relabel:
    """Which components change with the language, and their texts in each (see the module docstring)."""

    def __init__(self, pages: dict[str, list], outputs: set[int] | None = None):
        """`pages`: each language's components in build order; `outputs`: the ids of those (of the first page)
        that events write to, whose value the switch leaves alone (a chat transcript is not wiped)."""
        self.outputs = set(outputs or ())
        langs = list(pages)
        self.built_in = langs[0]  # the language of the page gradio serves (its components are the first list)
        sizes = {lang: len(blocks) for lang, blocks in pages.items()}
        if len(set(sizes.values())) != 1:
            raise RuntimeError(f"the page has a different number of components per language: {sizes} "
                               "(build the same components in every language; see ui/language.py)")
        self.components: list = []
        self.texts: dict[str, list[dict]] = {lang: [] for lang in langs}
        for blocks in zip(*pages.values()):
            kinds = {type(b) for b in blocks}
            if len(kinds) != 1:
                raise RuntimeError(f"the page differs between languages: {[type(b).__name__ for b in blocks]}")
            if isinstance(blocks[0], SKIP):
                continue
            changed = self._changed([b.constructor_args for b in blocks])
            if changed:
                self.components.append(blocks[0])
                for lang, block in zip(langs, blocks):
                    self.texts[lang].append({k: block.constructor_args.get(k) for k in changed})

    @staticmethod
    def _changed(args: list[dict]) -> list[str]:
        keys = {k for a in args for k in a if k != "render"}
        return sorted(k for k in keys if all(_plain(a.get(k)) for a in args)
                      and not all(_same(args[0].get(k), a.get(k)) for a in args[1:]))

    @property
    def written(self) -> list:
        """The components whose text value events also write (a transcript, a score line): the switch reads
        what they show now, and relabels only those still showing what the page was built with."""
        return [block for block, props in zip(self.components, self.texts[self.built_in])
                if "value" in props and block._id in self.outputs]

    def updates(self, lang: str, current: dict | None = None) -> list:
        """gr.update()s giving every language-dependent component its texts in `lang`. `current`: block id ->
        the value shown now, for `written`; one that no longer shows a built text keeps its content."""
        table = self.texts.get(lang) or next(iter(self.texts.values()))
        updates = []
        for i, (block, props) in enumerate(zip(self.components, table)):
            built = [self.texts[code][i].get("value") for code in self.texts]
            if current is not None and block._id in current and current[block._id] not in built:
                props = {k: v for k, v in props.items() if k != "value"}
            updates.append(gr.update(**props))
        return updates


def wire(app: gr.Blocks, chooser: gr.Radio, relabel: Relabel, loaders: list, server_default: str | None) -> None:
    """Page load and the switch: relabel in the browser's language, then run the page's loaders in it."""
    def apply(lang: str):
        lang = lang if lang in LANGS else "en"
        if lang == relabel.built_in:  # a fresh page is already in it: nothing to send
            return [gr.update(value=lang), *(gr.skip() for _ in relabel.components)]
        return [gr.update(value=lang), *relabel.updates(lang)]

    written = relabel.written

    def switched(lang: str, *shown):
        lang = lang if lang in LANGS else "en"
        current = {block._id: value for block, value in zip(written, shown)}
        return [gr.update(value=lang), *relabel.updates(lang, current)]

    outputs = [chooser, *relabel.components]
    on_load = app.load(apply, chooser, outputs, js=choose_js(server_default), show_progress="hidden",
                       concurrency_limit=None)
    on_switch = chooser.input(switched, [chooser, *written], outputs, js=switch_js(), show_progress="hidden",
                              concurrency_limit=None)
    for event in (on_load, on_switch):
        for fn, inputs, outs in loaders:
            event.then(fn, inputs, outs, show_progress="hidden")
