"""The Data tab's check: format, counts, token statistics and a preview, from core.data.preflight.

The report is core.data.preflight's (the same steps a run takes before training);
this module adds the cached tokenizer and renders examples as chat bubbles.
No gradio here.
"""
from __future__ import annotations

import functools
import html

from core.config import RunConfig
from core.data.preference import is_preference_data
from core.data.preflight import preview_examples, run_preflight
from core.data.tokenize import apply_template_choice
from core.models import load_tokenizer
from core.train import preference
from ui.preference import pairs_html
from ui.strings import t


@functools.lru_cache(maxsize=4)
def _tokenizer(model: str, template: str, trust: bool, token: str | None):
    tokenizer = load_tokenizer(RunConfig(model=model, trust_remote_code=trust), token)
    apply_template_choice(tokenizer, template)
    return tokenizer


def tokenizer_for(config: RunConfig, token: str | None = None):
    """The run's tokenizer with its chat template, loaded once per model."""
    return _tokenizer(config.model, config.chat_template, config.trust_remote_code, token or None)


def data_report(config: RunConfig, token: str | None = None, n_preview: int = 5) -> tuple[dict, list[dict]]:
    """(core.data.preflight's report, the first examples as chat messages).

    Data that cannot be used comes back as a report with `problems`, not an exception.
    Preference pairs (or any data for a DPO run) get core.train.preference's report and their pairs.
    """
    if config.objective == "dpo" or is_preference_data(config, token):
        report = preference.report(config, tokenizer_for(config, token), token)
        return report, report["pairs"]
    report = run_preflight(config, tokenizer_for(config, token), token=token)
    examples = preview_examples(config, n=n_preview, token=token)[0] if report.get("kept") else []
    return report, examples


def highlighted_value(runs: list, lang: str) -> list[tuple[str, str | None]]:
    """HighlightedText value: trained text labelled, context labelled too (both shown in the legend)."""
    return [(text, t("trained", lang) if trained else t("context", lang)) for text, trained in runs]


def bubbles_html(examples: list[dict], lang: str) -> str:
    """Examples as chat bubbles, one card per example ('' when there are none)."""
    if not examples:
        return ""
    if "chosen" in examples[0]:  # preference pairs: chosen and rejected side by side
        return pairs_html(examples, lang)
    cards = []
    for i, example in enumerate(examples, 1):
        if "text" in example:
            body = f'<div class="tl-bubble tl-text">{html.escape(example["text"][:1500])}</div>'
        else:
            body = "".join(
                f'<div class="tl-bubble tl-{m["role"]}"><div class="tl-role">{t("role_" + m["role"], lang)}</div>'
                f'{html.escape(str(m["content"])[:1500])}</div>' for m in example.get("messages", []))
        cards.append(f'<div class="tl-example"><div class="tl-exn">{t("example_n", lang, n=i)}</div>{body}</div>')
    return f'<div class="tl-examples">{"".join(cards)}</div>'
