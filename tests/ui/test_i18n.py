"""Every text of the page in both languages, without a browser.

The page is built once per language (as ui.build_app does for the switch) and
every component of every tab is walked: labels, info texts, placeholders,
choice labels, the values of Markdown, HTML and buttons, plot titles and
legends. In Korean each must hold Hangul unless it is only names, numbers and
symbols (ALLOWED); in English none may hold Hangul except the switch's
"한국어". Components other people add are walked too: whatever the page builds.
Also: the switch relabels exactly what differs, and presets have a title and a
description in each language.
"""
from __future__ import annotations

import html
import re

import pytest

from core.messages import LANGS, catalog, text
from core.train.manager import JobManager
from ui import language
from ui.form import PRESETS_DIR, preset_choices, preset_description

HANGUL = re.compile("[가-힣]")
# names and units that read the same in a Korean page (the short allow-list)
ALLOWED = re.compile(
    r"TuneLab|Hugging Face( Hub)?|LoRA\+?|QLoRA|DoRA|GGUF|Ollama|Modelfile|Top-[pk]|GB|MB|kB|tokens/s|"
    r"JSONL?|CSV|TSV|Parquet|TXT|YAML|bf16|fp16|fp32|f16|q8_0|q4_0|English|"
    r"[\w.-]+/[\w.-]+|embedded:[\w.-]+|[\w-]+\.(?:yaml|json|jsonl|csv|zip|gguf)|\b[a-z0-9]+(?:_[a-z0-9]+)+\b")
# a choice given as a bare value is a technical name (adamw_8bit, nf4, a model id) unless it is one of these
PLAIN_WORDS = re.compile(r"^(auto|none|all|yes|no|default|other|[A-Z][a-z]+)$")
TEXT_ARGS = ("label", "info", "placeholder", "x_title", "y_title", "title", "logout_value")
VALUE_KINDS = ("Markdown", "HTML", "Button", "LoginButton")  # whose value is text written by us, not data


def _words_left(text: str) -> str:
    """What is left of a text after tags, the allowed names, numbers and symbols are taken out."""
    text = re.sub(r"<[^>]*>", " ", html.unescape(text))  # tags and their attributes (classes, styles)
    text = re.sub(r"`[^`]*`|https?://\S+", " ", text)  # code and links read the same in both
    text = ALLOWED.sub(" ", text)
    return " ".join(re.findall(r"[A-Za-z]{2,}", text))


def texts_of(block) -> list[tuple[str, str]]:
    """(what, text) for every text a person sees in one component."""
    args = block.constructor_args
    found = [(name, args[name]) for name in TEXT_ARGS if isinstance(args.get(name), str)]
    kind = type(block).__name__
    if kind in VALUE_KINDS and isinstance(args.get("value"), str):
        found.append(("value", args["value"]))
    for choice in args.get("choices") or []:
        if isinstance(choice, (tuple, list)) and isinstance(choice[0], str):  # (label, value): a label we wrote
            found.append(("choice", choice[0]))
        elif isinstance(choice, str) and (PLAIN_WORDS.match(choice) or " " in choice):  # a word shown as it is
            found.append(("choice", choice))
    color_map = args.get("color_map")
    if isinstance(color_map, dict):
        found += [("legend", name) for name in color_map]
    return [(what, text) for what, text in found if text and text.strip()]


def _name(block) -> str:
    return f"{type(block).__name__}#{getattr(block, 'elem_id', None) or block._id}"


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    """The page in each language, as ui.build_app builds them for the switch."""
    from ui import _page

    manager = JobManager(root=tmp_path_factory.mktemp("runs"))
    notice = lambda code: text("host.storage_lost", code)  # noqa: E731 - the notes are per language too
    demo = lambda code: text("access.demo_note", code, models="user/model", steps=30)  # noqa: E731
    return {lang: _page(manager, lang, notice, False, demo)[0] for lang in LANGS}


def untranslated(blocks: list, lang: str) -> list[str]:
    """The texts of `blocks` that are not in `lang` (see the module docstring)."""
    bad = []
    for block in blocks:
        for what, shown in texts_of(block):
            if lang == "ko" and not HANGUL.search(shown) and _words_left(shown):
                bad.append(f"{_name(block)} {what}: {shown[:120]!r}")
            if lang == "en" and HANGUL.search(shown) and shown not in language.NAMES.values():
                bad.append(f"{_name(block)} {what}: {shown[:120]!r}")
    return bad


@pytest.mark.parametrize("lang", LANGS)
def test_every_text_of_every_tab_is_in_the_language(pages, lang):
    blocks = list(pages[lang].blocks.values())
    assert len(blocks) > 100  # the whole page, every tab
    bad = untranslated(blocks, lang)
    assert not bad, "\n".join(bad)


def test_the_walk_fails_on_english_left_in_a_korean_page():
    import gradio as gr

    with gr.Blocks():
        ok = gr.Textbox(label="학습률", info="LoRA 8, 2 GB, 1,234 tokens/s", placeholder="user/model")
        forgotten = gr.Markdown("Check data and preview")
        korean_in_english = gr.Button("시작")
    assert untranslated([ok], "ko") == [] and untranslated([ok], "en")
    assert untranslated([forgotten], "ko") and untranslated([korean_in_english], "en")


def test_the_switch_relabels_what_differs_between_languages(pages):
    """Every component whose texts differ is relabelled, with exactly the other page's texts."""
    relabel = language.Relabel({lang: list(page.blocks.values()) for lang, page in pages.items()})
    ko_blocks = list(pages["ko"].blocks.values())
    en_blocks = list(pages["en"].blocks.values())
    changed = {id(b) for b in relabel.components}
    assert len(changed) > 80
    for en_block, ko_block in zip(en_blocks, ko_blocks):
        texts_differ = texts_of(en_block) != texts_of(ko_block)
        if texts_differ and not isinstance(en_block, language.SKIP):
            assert id(en_block) in changed, _name(en_block)
    index = [id(b) for b in relabel.components]
    for lang, page_blocks in (("ko", ko_blocks), ("en", en_blocks)):
        by_position = {id(e): p for e, p in zip(en_blocks, page_blocks)}
        for block_id, props in zip(index, relabel.texts[lang]):
            other = by_position[block_id].constructor_args
            assert all(other.get(k) == v for k, v in props.items())
    assert [u["label"] for u in relabel.updates("ko") if "label" in u]  # gr.update()s with the texts

    # a flip of the switch relabels what events write to only while it shows its built text (a chat is kept)
    i = next(i for i, props in enumerate(relabel.texts["ko"]) if "value" in props)
    written = language.Relabel({lang: list(page.blocks.values()) for lang, page in pages.items()},
                               outputs={relabel.components[i]._id})
    block = relabel.components[i]
    assert written.written == [block]
    assert written.updates("ko", {block._id: relabel.texts["en"][i]["value"]})[i]["value"] == \
        relabel.texts["ko"][i]["value"]  # still the built text: relabelled
    assert "value" not in written.updates("ko", {block._id: "what the visitor did"})[i]  # kept


def test_a_page_built_differently_per_language_is_refused():
    import gradio as gr

    with gr.Blocks() as one:
        gr.Textbox(label="a")
    with gr.Blocks() as two:
        gr.Textbox(label="b")
        gr.Button("c")
    with pytest.raises(RuntimeError, match="different number"):
        language.Relabel({"en": list(one.blocks.values()), "ko": list(two.blocks.values())})


def test_the_app_wires_the_switch_on_load_and_on_input(tmp_path):
    from ui import build_app

    app = build_app(JobManager(root=tmp_path), "ko")
    switch = next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "lang-switch")
    assert switch.value == "ko" and [c[1] for c in switch.choices] == list(LANGS)
    relabels = [fn for fn in app.fns.values() if fn.name in ("apply", "switched")]
    assert len(relabels) == 2 and all(len(fn.outputs) > 80 for fn in relabels)
    assert any('"ko"' in (fn.js or "") for fn in relabels)  # --lang ko: the default of a browser without a choice
    chained = [fn for fn in app.fns.values() if fn.trigger_after in {r._id for r in relabels}]
    assert len(chained) >= 8  # the page's loaders run again after each relabelling


@pytest.mark.parametrize("lang", LANGS)
def test_every_preset_has_a_title_and_description_in_each_language(lang):
    stems = sorted(p.stem for p in PRESETS_DIR.glob("*.yaml"))
    table = catalog(lang)
    missing = [s for s in stems for key in (f"preset.{s}.title", f"preset.{s}.description") if key not in table]
    assert not missing, missing
    labels = [label for label, _ in preset_choices(lang)]
    assert len(labels) == len(stems)
    texts = labels + [preset_description(s, lang) for s in stems]
    if lang == "ko":
        assert all(HANGUL.search(x) for x in texts), [x for x in texts if not HANGUL.search(x)]
    else:
        assert not any(HANGUL.search(x) for x in texts)


def test_handlers_answer_in_the_browsers_language():
    """Inside an event (gradio's request context), ui.strings speaks the cookie's language."""
    from gradio.context import LocalContext

    from ui import strings

    class FakeRequest:
        cookies = {strings.COOKIE: "ko"}

    assert strings.t("start", "en") == catalog("en")["start"]
    token = LocalContext.request.set(FakeRequest())
    try:
        assert strings.t("start", "en") == catalog("ko")["start"]
        assert strings.field_label("lora_r", "en") == catalog("ko")["field.lora_r.label"]
        assert strings.page_lang("en") == "ko"
        FakeRequest.cookies = {strings.COOKIE: "xx"}  # nonsense: the page's own language
        assert strings.page_lang("en") == "en"
    finally:
        LocalContext.request.reset(token)
    assert strings.page_lang("ko") == "ko"  # outside an event: as given


def test_the_servers_answers_follow_the_browser(tmp_path):
    """Validation, planner advice, the live view and the runs table, from a page built in English, for a
    browser that chose Korean: every line holds Hangul (names and numbers aside)."""
    from gradio.context import LocalContext

    from ui import form, live, strings
    from ui import train_actions as act

    class KoreanBrowser:
        cookies = {strings.COOKIE: "ko"}

    values = form.initial_values("cpu-demo")
    token = LocalContext.request.set(KoreanBrowser())
    try:
        shown = [act.settings_check({**values, "learning_rate": 5, "lora_r": 0}, "en"),  # validation
                 act.settings_check({**values, "batch_size": 1024, "max_length": 4096, "method": "full"}, "en"),
                 live.status_html(None, "en"), live.metrics_html(None, "en"), live.samples_html(None, "en"),
                 " / ".join(live.runs_frame([], "en").columns)]
    finally:
        LocalContext.request.reset(token)
    lines = [line for block in shown for line in re.split(r"\n+|</div>", block)
             if _words_left(line) or HANGUL.search(line)]
    assert len(lines) >= 6
    assert all(HANGUL.search(line) for line in lines), [line for line in lines if not HANGUL.search(line)]
    assert "—" in shown[1] and "2048" in shown[1]  # the planner's advice is there: "does not fit — try: … 2048"
