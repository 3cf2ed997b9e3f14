"""Preprocessing: cleaning, turn tidying, filters, duplicates, stopwords, subset, shuffle and split."""
import unicodedata

import pytest

from core.data.pipeline import load_examples, split
from core.data.preflight import preview_examples
from core.data.preprocess import clean_text, korean_stopwords, preprocess, remove_stopwords
from core.errors import DataError
from tests.core.data.helpers import cfg, write_jsonl


def _qa(q, a):
    return {"messages": [{"role": "user", "content": q}, {"role": "assistant", "content": a}]}


def test_clean_text_strips_control_characters_and_normalises_korean():
    decomposed = unicodedata.normalize("NFD", "한국어")
    assert decomposed != "한국어"
    assert clean_text(f"  \ufeff{decomposed}\x00\x07 text\u200b \r\nline two  \t\n ") == "한국어 text\nline two"


def test_clean_text_can_be_turned_off(tmp_path):
    rows = [{"question": "  spaced  ", "answer": " out\x07 "}]
    path = write_jsonl(tmp_path / "raw.jsonl", rows)
    assert load_examples(cfg(path, clean_text=False))[0] == [_qa("  spaced  ", " out\x07 ")]
    assert load_examples(cfg(path))[0] == [_qa("spaced", "out")]


def test_empty_one_sided_and_duplicate_rows_are_dropped_and_counted(tmp_path):
    rows = [{"question": "a?", "answer": "b."}, {"question": "a?", "answer": "b."}, {"question": " ", "answer": "x"},
            {"question": "q?", "answer": "   "}, {"question": "c?", "answer": "d."}, {"question": None, "answer": "e"}]
    examples, _, report = load_examples(cfg(write_jsonl(tmp_path / "rows.jsonl", rows)))
    assert examples == [_qa("a?", "b."), _qa("c?", "d.")]
    assert report["dropped"] == {"duplicates": 1, "rows without both a question and an answer": 2,
                                 "rows with an empty 'question'": 1}
    assert report["rows"] == 6 and report["kept"] == 2
    kept, _, _ = load_examples(cfg(write_jsonl(tmp_path / "rows.jsonl", rows), drop_duplicates=False))
    assert len(kept) == 3


def test_length_filters(tmp_path):
    rows = [{"question": "a?", "answer": "ok"}, {"question": "b?", "answer": "a longer answer"},
            {"question": "c?" * 50, "answer": "fine answer"}]
    path = write_jsonl(tmp_path / "lengths.jsonl", rows)
    examples, _, report = load_examples(cfg(path, min_chars=5, max_chars=60))
    assert examples == [_qa("b?", "a longer answer")]
    assert report["dropped"] == {"answers shorter than 5 characters": 1, "rows longer than 60 characters": 1}
    assert any("Length filter" in step and "dropped 2" in step for step in report["steps"])
    with pytest.raises(DataError, match="Loosen the length filters"):
        load_examples(cfg(path, min_chars=500))


def test_turns_are_tidied_and_the_system_prompt_added():
    config = cfg("builtin:demo", system_prompt="You are Tolly.")
    example = {"messages": [{"role": "assistant", "content": "Welcome!"}, {"role": "user", "content": "Hi"},
                            {"role": "user", "content": "there"}, {"role": "assistant", "content": "Hello."},
                            {"role": "user", "content": "Unanswered?"}]}
    [tidy], report = preprocess([example], config)
    assert tidy["messages"] == [{"role": "system", "content": "You are Tolly."},
                                {"role": "user", "content": "Hi\n\nthere"}, {"role": "assistant", "content": "Hello."}]
    assert any("merged 1" in s and "removed 2" in s for s in report["steps"])
    assert any("system prompt to 1" in s for s in report["steps"])


def test_korean_stopwords_remove_whole_words_only():
    words = korean_stopwords()
    assert {"그리고", "그래서", "음"} <= words and "안" not in words  # negation must never be removed
    assert remove_stopwords("음, 그리고 이것이 제 답이에요.") == ("이것이 제 답이에요.", 2)
    assert remove_stopwords("그리고나서 그리고 가방") == ("그리고나서 가방", 1)
    assert remove_stopwords("no stopwords here") == ("no stopwords here", 0)


def test_korean_stopwords_option_is_applied_and_reported(tmp_path):
    path = write_jsonl(tmp_path / "ko.jsonl", [{"질문": "음 그러니까 김치는 뭐예요?", "답변": "그리고 김치는 발효 음식입니다."}])
    examples, _, report = preview_examples(cfg(path, korean_stopwords=True))
    assert examples == [_qa("김치는 뭐예요?", "김치는 발효 음식입니다.")]
    assert "Removed 3 Korean stopwords." in report["steps"]
    assert load_examples(cfg(path))[0][0]["messages"][0]["content"].startswith("음 그러니까")


def test_subset_shuffle_and_validation_split():
    examples, _, _ = load_examples(cfg("builtin:demo"))
    config = cfg("builtin:demo", validation_share=0.1)
    train, val = split(examples, config)
    assert (len(train), len(val)) == (711, 78)
    again = split(examples, config)
    assert again == (train, val)  # the seed makes it repeatable
    other = split(examples, config.replace(seed=7))
    assert other[0] != train and sorted(map(str, other[0] + other[1])) == sorted(map(str, examples))
    half_train, half_val = split(examples, config.replace(subset_share=0.5))
    assert len(half_train) + len(half_val) == 394 and len(half_val) == 39
    ordered, _ = split(examples, config.replace(shuffle=False, validation_share=0))
    assert ordered == examples


def test_tiny_sets_keep_every_example_for_training():
    examples, _, _ = load_examples(cfg("messages.jsonl"))
    train, val = split(examples, cfg("messages.jsonl", validation_share=0.2))
    assert len(train) == 4 and val == []


def test_preview_lists_every_step():
    _, _, report = preview_examples(cfg("builtin:demo", validation_share=0.1, subset_share=0.5))
    text = " ".join(report["steps"])
    for words in ("Cleaned", "duplicates", "Shuffled with seed 42", "50% subset: 394 of 789", "355 for training, 39 held out"):
        assert words in text
    assert report["examples"] == 355 and report["validation_examples"] == 39
