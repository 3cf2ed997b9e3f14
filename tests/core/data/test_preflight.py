"""Pre-flight report: statistics, the highlighted example, refusing data that trains on nothing."""
import pytest

import core.data.preflight as preflight
from core.data.pipeline import prepare
from core.data.preflight import format_report, histogram, preview_examples, run_preflight
from core.data.tokenize import render
from core.errors import DataError
from tests.core.data.helpers import END, answers, cfg, write_jsonl

KEYS = {"format", "format_name", "rows", "kept", "dropped", "examples", "validation_examples", "tokens",
        "trained_tokens", "trained_share", "truncated", "length_min", "length_p50", "length_p90", "length_max",
        "histogram", "ok", "problems", "highlighted"}


def test_report_of_a_good_dataset(data_tokenizer):
    report = run_preflight(cfg("builtin:demo", validation_share=0.1, max_length=256), data_tokenizer)
    assert KEYS <= set(report) and report["ok"] and report["problems"] == []
    assert (report["format"], report["rows"], report["kept"]) == ("messages", 789, 789)
    assert (report["examples"], report["validation_examples"]) == (711, 78)
    assert 0.2 < report["trained_share"] < 0.8 and report["trained_tokens"] < report["tokens"]
    assert report["length_min"] <= report["length_p50"] <= report["length_p90"] <= report["length_max"] <= 256
    assert sum(count for _, count in report["histogram"]) == 711 and report["truncated"] == 0
    data = prepare(cfg("builtin:demo", validation_share=0.1, max_length=256), data_tokenizer)
    for key in ("tokens", "trained_tokens", "trained_share", "examples", "length_p50"):
        assert report[key] == data.stats[key]  # the same numbers a real run gets


def test_highlight_marks_exactly_the_answer(data_tokenizer):
    examples, _, _ = preview_examples(cfg("messages.jsonl"))
    report = run_preflight(cfg("messages.jsonl"), data_tokenizer)
    pieces = report["highlighted"]
    assert "".join(text for text, _ in pieces) == render(data_tokenizer, examples[0]["messages"])
    assert [text for text, trained in pieces if trained] == [answers(examples[0])[0] + END]


def test_highlight_of_multi_turn_marks_each_answer(data_tokenizer, tmp_path):
    rows = [{"messages": [{"role": "user", "content": "One?"}, {"role": "assistant", "content": "Uno."},
                          {"role": "user", "content": "Two?"}, {"role": "assistant", "content": "Dos."}]}]
    report = run_preflight(cfg(write_jsonl(tmp_path / "two.jsonl", rows)), data_tokenizer)
    assert [text for text, trained in report["highlighted"] if trained] == ["Uno." + END, "Dos." + END]


def test_training_on_nothing_is_refused_with_the_same_reason_as_prepare(data_tokenizer):
    config = cfg("qa_korean.csv", max_length=20)
    report = run_preflight(config, data_tokenizer)
    with pytest.raises(DataError) as refused:
        prepare(config, data_tokenizer)
    assert report["ok"] is False and report["problems"][0] == str(refused.value)
    assert "max_length" in report["problems"][0] and "Not ready" in format_report(report)


def test_truncation_and_small_data_are_warned_about(data_tokenizer):
    report = run_preflight(cfg("koalpaca.jsonl", max_length=100), data_tokenizer)
    assert report["ok"] and report["truncated"] >= 1
    assert any("longer than max_length (100 tokens)" in p for p in report["problems"])
    assert any("Only 3 training examples" in p for p in report["problems"])
    assert report["histogram"][-1][0] == ">100 (cut)"


def test_bad_data_is_reported_not_raised(data_tokenizer, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"question": "a", "answer": "b"}\n{oops\n', encoding="utf-8")
    report = run_preflight(cfg(bad), data_tokenizer)
    assert KEYS <= set(report) and report["ok"] is False
    assert "line 2" in report["problems"][0]
    assert "Not ready: broken.jsonl, line 2" in format_report(report)


def test_chatml_choice_leaves_the_callers_tokenizer_alone(data_tokenizer):
    before = (data_tokenizer.chat_template, len(data_tokenizer))
    report = run_preflight(cfg("qa.tsv", chat_template="plain"), data_tokenizer)
    assert report["ok"] and any("### Assistant:" in text for text, _ in report["highlighted"])
    assert (data_tokenizer.chat_template, len(data_tokenizer)) == before


def test_big_sets_are_estimated_from_a_sample(data_tokenizer, monkeypatch):
    full = run_preflight(cfg("builtin:demo"), data_tokenizer)
    monkeypatch.setattr(preflight, "SAMPLE_LIMIT", 50)
    sampled = run_preflight(cfg("builtin:demo"), data_tokenizer)
    assert sampled["sampled"] == 50 and sampled["examples"] == full["examples"] == 789
    assert abs(sampled["tokens"] - full["tokens"]) < 0.25 * full["tokens"]
    assert "estimated from 50 examples" in format_report(sampled)


def test_plain_text_report(data_tokenizer):
    report = run_preflight(cfg("pretrain.txt", max_length=32), data_tokenizer)
    assert report["ok"] and report["format"] == "text" and report["trained_share"] > 0.9
    assert report["highlighted"][0][1] is False and all(trained for _, trained in report["highlighted"][1:])
    assert "every token (plain text)" in format_report(report)


def test_format_report_reads_well(data_tokenizer):
    text = format_report(run_preflight(cfg("markers.jsonl"), data_tokenizer))
    for words in ("Data: 3 rows -> 3 examples", "text with turn markers", "Tokens:", "trained on",
                  "[[맑고 따뜻해요. 산책하기 좋은 날이에요.<|im_end|>]]", "Ready: training learns from"):
        assert words in text


def test_histogram_buckets():
    assert histogram([], 512) == []
    rows = histogram([60, 72, 170, 213, 600], 512)
    assert sum(n for _, n in rows) == 5 and rows[-1] == (">512 (cut)", 1)
    assert all(label.count("-") == 1 for label, _ in rows[:-1])
