"""From a dataset to what the trainer eats: sources -> formats -> preprocess -> tokenize -> pipeline -> preflight.

- `sources`     rows from builtin:demo, a file, a data folder or the Hub, with limits and clear errors
- `formats`     detect the layout (messages, ShareGPT, Alpaca, question/answer, turn markers, text)
- `converters`  map each row to a chat example (or a preference pair) with the layout's converter
- `preprocess`  clean text, tidy turns, filters, de-duplication
- `tokenize`    render with the model's chat template; labels on the answers only
- `pipeline`    the steps in order: `load_examples` (the Data tab's preview), `prepare` (what a job trains on)
- `preflight`   the report before Start: token counts, trained-on share, an example highlighted
- `builtin/`    the demo set (Brindlewick Bakehouse), its held-out questions, Korean stopwords

Every text for people is a `core.messages.Msg` from core/catalog/<lang>/data.yaml: error messages,
the report's format name and layout, drop reasons (the keys of `report["dropped"]`), steps, notes,
problems and the histogram's cut label. They equal their English text; show them in another
language with `localize(text, lang)` (`dropped_text(report["dropped"])` gives all drop reasons as one).
"""
from core.data.pipeline import PreparedData, load_examples, prepare
from core.data.preflight import format_report, preview_examples, run_preflight

__all__ = ["PreparedData", "load_examples", "prepare", "preview_examples", "run_preflight", "format_report"]
