"""Sources: every file type, data folders laid out like the Hub, saved datasets, Hub errors, bad input."""
import json

import pytest

from core.data.pipeline import load_examples
from core.data.sources import load_rows
from core.errors import DataError
from tests.core.data.helpers import cfg, write_jsonl


@pytest.mark.parametrize("name,rows", [("messages.jsonl", 4), ("sharegpt.json", 3), ("alpaca.json", 3),
                                       ("qa_korean.csv", 3), ("qa.tsv", 2), ("qa_bom.csv", 2), ("qa.parquet", 2),
                                       ("pretrain.txt", 3), ("builtin:demo", 789)])
def test_every_file_type_loads(name, rows):
    loaded = load_rows(cfg(name))
    assert len(loaded) == rows and all(isinstance(r, dict) for r in loaded)


def test_utf8_bom_does_not_leak_into_column_names(tmp_path):
    assert set(load_rows(cfg("qa_bom.csv"))[0]) == {"question", "answer"}
    path = tmp_path / "bom.jsonl"
    path.write_bytes(b"\xef\xbb\xbf" + json.dumps({"question": "a", "answer": "b"}).encode() + b"\n")
    assert load_rows(cfg(path)) == [{"question": "a", "answer": "b"}]


def test_text_file_is_one_row_per_line_without_blank_lines(tmp_path):
    path = tmp_path / "lines.txt"
    path.write_text("<usr> hi <bot> hello\n<usr> bye <bot> see you\n", encoding="utf-8")
    examples, fmt, _ = load_examples(cfg(path))
    assert fmt == "markers" and len(examples) == 2


def test_json_with_records_under_a_key(tmp_path):
    path = tmp_path / "wrapped.json"
    path.write_text(json.dumps({"version": 2, "data": [{"q": "a?", "a": "b."}, {"q": "c?", "a": "d."}]}))
    assert load_rows(cfg(path)) == [{"q": "a?", "a": "b."}, {"q": "c?", "a": "d."}]


def test_a_single_conversation_json_is_not_unwrapped(tmp_path):
    path = tmp_path / "one.json"
    path.write_text(json.dumps({"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}))
    assert load_examples(cfg(path))[1] == "messages"


def test_split_slice_on_a_file():
    assert len(load_rows(cfg("builtin:demo"))) == 789
    assert len(load_rows(cfg("messages.jsonl", dataset_split="train[:50%]"))) == 2
    assert len(load_rows(cfg("messages.jsonl", dataset_split="train[:1]"))) == 1


# --- folders laid out like a Hub dataset: the same load_dataset call as a Hub id ---------------
def test_folder_with_configurations_splits_and_slices():
    assert len(load_rows(cfg("hub_like"))) == 10  # default configuration, train split
    test_rows = load_rows(cfg("hub_like", dataset_split="test"))
    assert test_rows == [{"question": "What is 20 plus 20?", "answer": "20 plus 20 is 40."}]
    assert len(load_rows(cfg("hub_like", dataset_split="train[:30%]"))) == 3
    ko, fmt, _ = load_examples(cfg("hub_like", dataset_config="ko"))
    assert fmt == "qa" and ko[0]["messages"][0]["content"] == "1 더하기 1은?"


def test_folder_errors_name_the_choices():
    with pytest.raises(DataError, match=r"'validation' is not a split.*'train', 'test'"):
        load_rows(cfg("hub_like", dataset_split="validation"))
    with pytest.raises(DataError, match=r"no configuration 'fr'.*'en', 'ko'.*dataset_config"):
        load_rows(cfg("hub_like", dataset_config="fr"))
    with pytest.raises(DataError, match=r"split 'train\[:abc\]' is not understood"):
        load_rows(cfg("hub_like", dataset_split="train[:abc]"))


def test_saved_dataset_folder(tmp_path):
    import datasets
    rows = [{"question": f"q{i}?", "answer": f"a{i}."} for i in range(10)]
    datasets.DatasetDict({"train": datasets.Dataset.from_list(rows),
                          "test": datasets.Dataset.from_list(rows[:2])}).save_to_disk(str(tmp_path / "saved"))
    assert len(load_rows(cfg(tmp_path / "saved", dataset_split="train[:40%]"))) == 4
    assert len(load_rows(cfg(tmp_path / "saved", dataset_split="test"))) == 2
    with pytest.raises(DataError, match="'dev' is not a split.*train, test"):
        load_rows(cfg(tmp_path / "saved", dataset_split="dev"))


# --- the Hub ---------------------------------------------------------------------------------
def test_hub_call_passes_config_split_and_token(monkeypatch):
    import datasets
    seen = {}

    def fake(path, name=None, **kwargs):
        seen.update(path=path, name=name, **kwargs)
        return datasets.Dataset.from_list([{"질문": "a", "답변": "b"}])
    monkeypatch.setattr(datasets, "load_dataset", fake)
    rows = load_rows(cfg("beomi/KoAlpaca-v1.1a", dataset_config="v1", dataset_split="train[:10%]"), token="hf_secret")
    assert rows == [{"질문": "a", "답변": "b"}]
    assert seen == {"path": "beomi/KoAlpaca-v1.1a", "name": "v1", "split": "train[:10%]", "token": "hf_secret"}


def test_hub_id_that_cannot_be_reached_offline(monkeypatch):
    import datasets
    import huggingface_hub.constants
    monkeypatch.setattr(datasets.config, "HF_HUB_OFFLINE", True)
    monkeypatch.setattr(huggingface_hub.constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(DataError, match="Could not reach the Hugging Face Hub.*upload it as a file"):
        load_rows(cfg("nobody-zz/no-such-dataset-zz"))


@pytest.mark.parametrize("error,message", [
    ("DatasetNotFoundError:Dataset 'x/y' doesn't exist on the Hub or cannot be accessed.", "There is no dataset 'x/y'"),
    ("DatasetNotFoundError:Dataset 'x/y' is a gated dataset on the Hub. You must be authenticated", "private or gated.*token"),
    ("RuntimeError:Dataset scripts are no longer supported, but found y.py", "script-based"),
])
def test_hub_errors_become_plain_advice(monkeypatch, error, message):
    import datasets
    import datasets.exceptions
    kind, text = error.split(":", 1)
    exc = getattr(datasets.exceptions, kind, None) or RuntimeError

    def fake(*args, **kwargs):
        raise exc(text)
    monkeypatch.setattr(datasets, "load_dataset", fake)
    with pytest.raises(DataError, match=message):
        load_rows(cfg("x/y"))


@pytest.mark.parametrize("source,message", [
    ("not a valid id!", "neither a file here nor a Hub dataset id"),
    ("missing/folder/data.jsonl", "does not exist"),
    ("./nowhere.csv", "does not exist"),
    ("builtin:nope", "Unknown built-in dataset 'builtin:nope'. Available: builtin:demo"),
    ("", "No dataset is chosen"),
])
def test_sources_that_do_not_exist(source, message):
    with pytest.raises(DataError, match=message):
        load_rows(cfg(source) if source else cfg("x").replace(dataset=""))


# --- bad files -----------------------------------------------------------------------------
def _bad_files(tmp_path):
    """(file name, content bytes, words the message must contain)."""
    korean_cp949 = "질문,답변\n안녕하세요,반갑습니다\n".encode("cp949")
    return [
        ("empty.jsonl", b"", "is empty"),
        ("blank.csv", b"\xef\xbb\xbf  \n\n", "is empty"),
        ("header_only.csv", b"question,answer\n", "has no rows"),
        ("broken.jsonl", b'{"question": "a", "answer": "b"}\n{"question": "c", "answer":\n', "line 2, is not valid JSON"),
        # a null record crashes pyarrow's reader outright (the whole process), so it is refused first
        ("null_first.jsonl", b'null\n{"question": "a", "answer": "b"}\n', "line 1, is null"),
        ("null_inside.jsonl", b'{"question": "a", "answer": "b"}\n' * 8 + b"null\n", "line 9, is null"),
        ("null_item.json", b'[{"question": "a", "answer": "b"}, null]', "item 2 of the list is null"),
        ("str.json", b'"just text"', "holds a single text string, not records"),
        ("deep.jsonl", b'{"messages": {"role": "user"}}\n', "'messages' column does not hold conversations"),
        ("not_records.jsonl", b'{"question": "a", "answer": "b"}\n[1, 2]\n', "line 2, holds a list"),
        ("binary.jsonl", bytes(range(256)) * 4, "binary file"),
        ("excel.csv", b"PK\x03\x04" + b"\x14\x00" * 50, "binary file"),
        ("book.xlsx", b"PK\x03\x04....", "Excel workbook.*CSV UTF-8"),
        ("korean.csv", korean_cp949, "CP949/EUC-KR.*UTF-8"),
        ("utf16.csv", "질문,답변\n".encode("utf-16"), "UTF-16"),
        ("fake.parquet", b"question,answer\n", "not a Parquet file"),
        ("ragged.csv", b"question,answer\nhi,there,extra\nok,fine\n",
         "row 2 .the header is row 1., has 3 values but the header has 2"),
        ("script.py", b"import datasets\n", "loading script"),
    ]


def test_each_bad_file_gives_a_plain_data_error(tmp_path):
    for name, content, words in _bad_files(tmp_path):
        path = tmp_path / name
        path.write_bytes(content)
        with pytest.raises(DataError, match=words):
            load_examples(cfg(path))


@pytest.mark.parametrize("suffix", [".csv", ".jsonl", ".txt"])
def test_a_non_utf8_part_after_the_first_64k_is_explained(tmp_path, suffix):
    path = tmp_path / f"late{suffix}"
    line = {".csv": "question,answer\n", ".jsonl": "", ".txt": ""}[suffix]
    row = {".csv": "hello,world\n", ".jsonl": '{"question": "hello", "answer": "world"}\n', ".txt": "hello world\n"}[suffix]
    late = {".csv": "안녕,세상\n", ".jsonl": '{"question": "안녕", "answer": "세상"}\n', ".txt": "안녕 세상\n"}[suffix]
    path.write_bytes((line + row * 4000).encode() + late.encode("cp949"))
    with pytest.raises(DataError, match="not UTF-8.*CP949"):
        load_examples(cfg(path))


def test_mixed_types_drop_the_bad_rows_and_say_which_column(tmp_path):
    rows = [{"instruction": "a?", "output": "b."}, {"instruction": "c?", "output": ["not", "text"]},
            {"instruction": "e?", "output": {"nested": 1}}, {"instruction": "f?", "output": 42}]
    examples, _, report = load_examples(cfg(write_jsonl(tmp_path / "mixed.jsonl", rows)))
    assert [e["messages"][1]["content"] for e in examples] == ["b.", "42"]
    assert report["dropped"] == {"rows where 'output' is not text (found list)": 1,
                                 "rows where 'output' is not text (found dict)": 1}


def test_all_rows_of_the_wrong_type_is_a_data_error(tmp_path):
    rows = [{"messages": "just a string"}, {"messages": 5}, {"messages": [1, 2]}]
    words = "left from wrong.jsonl .3 rows read; dropped: rows where 'messages' is not a list of turns: 2"
    with pytest.raises(DataError, match=words):
        load_examples(cfg(write_jsonl(tmp_path / "wrong.jsonl", rows), data_format="messages"))


def test_a_huge_single_row_is_dropped_and_named(tmp_path):
    huge = {"question": "Summarise:" + "x" * 1_200_000, "answer": "Too long."}
    normal = [{"question": f"q{i}?", "answer": f"a{i}."} for i in range(3)]
    examples, _, report = load_examples(cfg(write_jsonl(tmp_path / "huge.jsonl", [huge] + normal)))
    assert len(examples) == 3 and report["dropped"] == {"rows over 1,000,000 characters": 1}
    with pytest.raises(DataError, match=r"\(1 row read; dropped: rows over 1,000,000 characters: 1\). .*split very long rows"):
        load_examples(cfg(write_jsonl(tmp_path / "only_huge.jsonl", [huge])))


def test_unknown_speakers_are_dropped_with_the_role_named(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "a"}, {"from": "gpt", "value": "b"}]},
            {"conversations": [{"from": "human", "value": "c"}, {"from": "function_call", "value": "{}"}]}]
    examples, fmt, report = load_examples(cfg(write_jsonl(tmp_path / "tools.jsonl", rows)))
    assert fmt == "sharegpt" and len(examples) == 1
    assert "function_call" in next(iter(report["dropped"]))
