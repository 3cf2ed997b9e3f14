"""core/data/limits.py: limits read from the environment, depth measured without parsing, slices read
alone; and the one-pass reply spans of core/data/tokenize.py agree with rendering up to each reply."""
import json
import time

import pytest

from core.data import tokenize
from core.data.limits import DataLimits, limits, max_depth, read_json_file
from core.data.sources import load_rows
from core.data.tokenize import apply_template_choice, encode_example
from core.errors import DataError
from tests.core.data.helpers import cfg, write_jsonl


def test_limits_come_from_the_environment(monkeypatch):
    assert limits() == DataLimits()
    monkeypatch.setenv("TUNELAB_DATA_MAX_ROWS", "1_000")
    monkeypatch.setenv("TUNELAB_DATA_MAX_DEPTH", "not a number")  # ignored: the default stays
    assert limits().max_rows == 1000 and limits().max_depth == DataLimits().max_depth


def test_depth_ignores_brackets_inside_strings():
    assert max_depth(b'{"a": [[1]], "b": "[[[[[[[[["}') == 3
    assert max_depth(b"[" * 5000 + b"]" * 5000) == 5000


def test_only_the_sliced_lines_are_parsed(tmp_path):
    path = tmp_path / "rows.jsonl"
    lines = [json.dumps({"q": f"{i}?", "a": "x"}) for i in range(10)]
    lines[7] = "{broken"  # outside the slice: never parsed
    path.write_text("\n".join(lines) + "\n")
    assert [r["q"] for r in read_json_file(path, "train[2:5]", DataLimits())] == ["2?", "3?", "4?"]
    with pytest.raises(DataError, match="line 8, is not valid JSON"):
        load_rows(cfg(path))


def test_too_many_rows_in_jsonl_is_refused_before_parsing(tmp_path, monkeypatch):
    path = write_jsonl(tmp_path / "many.jsonl", [{"q": "a?", "a": "b"}] * 50)
    monkeypatch.setenv("TUNELAB_DATA_MAX_ROWS", "49")
    with pytest.raises(DataError, match="many.jsonl has 50 rows; the limit is 49"):
        load_rows(cfg(path))
    assert len(load_rows(cfg(path, dataset_split="train[:49]"))) == 49


def test_deep_conversation_text_in_a_csv_cell_is_a_dropped_row(tmp_path):
    from core.data.pipeline import load_examples
    path = tmp_path / "deep.csv"
    path.write_text('messages,extra\n"' + "[" * 3000 + "]" * 3000 + '",x\n"[{""role"": ""user"", ""content"": ""a""}, '
                    '{""role"": ""assistant"", ""content"": ""b""}]",y\n')
    examples, _, _ = load_examples(cfg(path, data_format="messages"))
    assert len(examples) == 1


@pytest.mark.parametrize("template", ["auto", "chatml", "plain"])
def test_long_conversations_are_labelled_in_one_pass_like_the_exact_way(data_tokenizer, template, monkeypatch):
    import copy
    tokenizer = copy.deepcopy(data_tokenizer)
    apply_template_choice(tokenizer, template)
    messages = [{"role": "system", "content": "Be brief."}]
    messages += [{"role": "user" if i % 2 == 0 else "assistant", "content": f"turn {i % 5}"} for i in range(40)]
    fast = encode_example(tokenizer, {"messages": messages}, 1 << 30)
    monkeypatch.setattr(tokenize, "ONE_PASS_REPLIES", 10**9)
    assert encode_example(tokenizer, {"messages": messages}, 1 << 30) == fast
    monkeypatch.undo()
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"t{i}"} for i in range(1000)]
    started = time.perf_counter()
    encode_example(tokenizer, {"messages": long}, 1 << 30)
    assert time.perf_counter() - started < 3  # rendering up to each reply took ~6 s



def test_a_head_slice_of_a_hub_dataset_is_streamed_not_downloaded(monkeypatch):
    import datasets
    calls = []
    real = datasets.load_dataset

    def recording(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(datasets, "load_dataset", recording)
    rows = load_rows(cfg("hub_like", dataset_split="train[:3]"))
    assert len(rows) == 3 and calls[-1]["streaming"] is True and calls[-1]["split"] == "train"
    with pytest.raises(DataError, match="is not a split of .*It has: \\['train', 'test'\\]"):
        load_rows(cfg("hub_like", dataset_split="nope[:3]"))
    load_rows(cfg("hub_like", dataset_split="train[:30%]"))  # a share needs the split's size: read whole
    assert "streaming" not in calls[-1]
