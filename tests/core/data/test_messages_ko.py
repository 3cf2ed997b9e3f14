"""Data messages come from the catalogue: errors, drop reasons, steps, warnings and the report read in Korean.

Each check would fail if a message were still a plain English str (localize passes those through unchanged).
"""
import re

import pytest

from core.data.pipeline import dropped_text, load_examples
from core.data.preflight import format_report, preview_examples, run_preflight
from core.doctor import explain
from core.errors import DataError
from core.messages import Msg, localize
from tests.core.data.helpers import cfg, write_jsonl

HANGUL = re.compile("[가-힣]")


def _korean(message) -> str:
    """The message in Korean, after checking it is a catalogue message that really changes language."""
    assert isinstance(message, Msg), f"a plain str, not from the catalogue: {message!r}"
    korean = localize(message, "ko")
    assert HANGUL.search(korean) and korean != localize(message, "en"), korean
    return korean


@pytest.mark.parametrize("name,content,key", [
    ("empty.jsonl", b"", "data.file_empty"),
    ("utf16.csv", "질문,답변\n".encode("utf-16"), "data.utf16"),
    ("korean.csv", "질문,답변\n안녕하세요,반갑습니다\n".encode("cp949"), "data.not_utf8"),
    ("ragged.csv", b"question,answer\nhi,there,extra\n", "data.csv_extra_values"),
    ("broken.jsonl", b'{"question": "a", "answer": "b"}\n{oops\n', "data.json_bad_line"),
    ("book.xlsx", b"PK\x03\x04....", "data.unsupported_file"),
])
def test_a_bad_file_is_explained_in_korean_with_its_name(tmp_path, name, content, key):
    path = tmp_path / name
    path.write_bytes(content)
    with pytest.raises(DataError) as raised:
        load_examples(cfg(path))
    message = explain(raised.value)[0]
    assert message.key == key
    assert name in _korean(message)


def test_nested_parts_are_translated_too(tmp_path):
    path = tmp_path / "korean.csv"
    path.write_bytes("질문,답변\n안녕하세요,반갑습니다\n".encode("cp949"))
    with pytest.raises(DataError) as raised:
        load_examples(cfg(path))
    korean = _korean(explain(raised.value)[0])
    assert "한국어 Windows 인코딩(CP949/EUC-KR)" in korean and "Korean Windows" not in korean


def test_nothing_left_names_the_drop_reasons_in_korean(tmp_path):
    rows = [{"messages": "just a string"}, {"messages": 5}]
    with pytest.raises(DataError) as raised:
        load_examples(cfg(write_jsonl(tmp_path / "wrong.jsonl", rows), data_format="messages"))
    korean = _korean(explain(raised.value)[0])
    assert "wrong.jsonl" in korean and "'messages' 값이 대화 차례의 목록이 아닌 행: 2개" in korean


def test_format_names_drop_reasons_steps_and_notes_are_messages(tmp_path):
    rows = [{"soru": "a?", "cevap": "b."}, {"soru": "a?", "cevap": "b."}, {"soru": None, "cevap": "c."}]
    _, _, report = preview_examples(cfg(write_jsonl(tmp_path / "odd.jsonl", rows)))
    assert _korean(report["format_name"]) == "질문 / 답변 열"
    assert _korean(report["layout"]) == "질문 / 답변 열 (질문: 'soru', 답변: 'cevap')"
    assert report["dropped"] == {"duplicates": 1, "rows with an empty 'soru'": 1}  # still the English keys
    assert sorted(_korean(why) for why in report["dropped"]) == ["'soru' 값이 비어 있는 행", "중복된 행"]
    assert _korean(dropped_text(report["dropped"])) in ("중복된 행: 1개; 'soru' 값이 비어 있는 행: 1개",
                                                       "'soru' 값이 비어 있는 행: 1개; 중복된 행: 1개")
    for line in report["steps"] + report["notes"]:
        _korean(line)
    assert "중복된 행 1개를 제외했습니다." in [localize(step, "ko") for step in report["steps"]]


def test_preflight_warnings_and_the_report_read_in_korean(data_tokenizer):
    report = run_preflight(cfg("koalpaca.jsonl", max_length=100), data_tokenizer)
    warnings = [_korean(problem) for problem in report["problems"]]
    assert any("max_length(100토큰)보다 길어 잘립니다" in w for w in warnings)
    assert any("학습 예시가 3개뿐입니다" in w for w in warnings)
    assert _korean(report["histogram"][-1][0]) == ">100 (잘림)"
    english = format_report(report)
    assert english.startswith("Data: 3 rows -> 3 examples") and "Only 3 training examples" in english
    korean = format_report(report, "ko")
    assert korean.startswith("데이터: 3개 행 -> 예시 3개") and "학습 예시가 3개뿐입니다" in korean
    assert "Data:" not in korean and "Only 3" not in korean and "준비 완료" in korean


def test_a_refused_run_reads_in_korean(data_tokenizer, tmp_path):
    bad = tmp_path / "broken.jsonl"
    bad.write_text('{"question": "a", "answer": "b"}\n{oops\n', encoding="utf-8")
    report = run_preflight(cfg(bad), data_tokenizer)
    assert "broken.jsonl" in _korean(report["problems"][0])
    assert "준비되지 않음: broken.jsonl의 2번째 줄" in format_report(report, "ko")
    refused = run_preflight(cfg("qa_korean.csv", max_length=20), data_tokenizer)
    assert "max_length" in _korean(refused["problems"][0]) and "준비되지 않음" in format_report(refused, "ko")
