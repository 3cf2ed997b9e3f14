"""Format detection, column mapping and conversion to chat messages, one sample file per format."""
import pytest

from core.data.formats import detect_format
from core.data.pipeline import load_examples
from core.data.preflight import preview_examples
from core.errors import DataError
from tests.core.data.helpers import cfg, write_jsonl

USER, BOT = "user", "assistant"


def _chat(*turns):
    return {"messages": [{"role": role, "content": text} for role, text in turns]}


SAMPLES = [
    ("messages.jsonl", "messages",
     _chat((USER, "What colour is the Tollensea lighthouse?"), (BOT, "It is painted red and white."))),
    ("sharegpt.json", "sharegpt", _chat((USER, "What is the capital of Tollensea?"), (BOT, "Its capital is Port Wren."))),
    ("alpaca.json", "alpaca", _chat((USER, "Translate to French.\n\nGood morning"), (BOT, "Bonjour"))),
    ("koalpaca.jsonl", "alpaca", _chat((USER, "양파는 어떤 식물 부위인가요?"), (BOT, "양파는 잎이 변형된 비늘줄기입니다."))),
    ("qa_korean.csv", "qa", _chat((USER, "등대지기의 이름은 무엇인가요?"), (BOT, "등대지기는 Marta Quill입니다."))),
    ("qa.tsv", "qa", _chat((USER, "Which bird is on the island flag?"), (BOT, "A puffin, drawn in black and orange."))),
    ("qa_bom.csv", "qa", _chat((USER, "What is the island's bakery called?"), (BOT, "Brindlewick Bakehouse."))),
    ("qa.parquet", "qa", _chat((USER, "How many lighthouses are there?"), (BOT, "There are two lighthouses."))),
    ("markers.jsonl", "markers", _chat((USER, "오늘 날씨 어때요?"), (BOT, "맑고 따뜻해요. 산책하기 좋은 날이에요."))),
    ("pretrain.txt", "text",
     {"text": "Tollensea is a small windy island in the north sea. Puffins nest on its cliffs every summer."}),
    ("builtin:demo", "messages", None),
]


@pytest.mark.parametrize("name,fmt,first", SAMPLES, ids=[s[0] for s in SAMPLES])
def test_each_format_is_detected_and_previewed(name, fmt, first):
    examples, detected, report = preview_examples(cfg(name), n=3)
    assert detected == fmt == report["format"]
    assert report["format_name"] and report["layout"] and report["rows"] >= len(examples) > 0
    if first is not None:
        assert examples[0] == first
    for example in examples:
        assert set(example) in ({"messages"}, {"text"})


def test_multi_turn_and_system_turns_are_kept():
    examples, _, _ = load_examples(cfg("messages.jsonl"))
    assert examples[1]["messages"][0] == {"role": "system", "content": "You answer in one short sentence."}
    assert [m["role"] for m in examples[2]["messages"]] == [USER, BOT, USER, BOT]
    share, _, _ = load_examples(cfg("sharegpt.json"))
    assert [m["role"] for m in share[1]["messages"]] == ["system", USER, BOT]
    assert [m["role"] for m in share[2]["messages"]] == [USER, BOT, USER, BOT]


def test_marker_text_is_split_into_turns_with_a_system_marker():
    examples, _, _ = load_examples(cfg("markers.jsonl"))
    assert examples[1]["messages"] == [
        {"role": USER, "content": "파이썬에서 리스트를 정렬하려면?"},
        {"role": BOT, "content": "sorted(리스트) 또는 리스트.sort()를 쓰면 됩니다."},
        {"role": USER, "content": "역순은요?"},
        {"role": BOT, "content": "reverse=True를 넘기면 됩니다."}]
    assert examples[2]["messages"][0] == {"role": "system", "content": "당신은 친절한 비서입니다."}


def test_configured_markers_and_well_known_markers(tmp_path):
    custom = write_jsonl(tmp_path / "custom.jsonl", [{"text": "Q: hi there A: hello! Q: bye A: see you"}] * 2)
    examples, fmt, _ = load_examples(cfg(custom, user_marker="Q:", bot_marker="A:"))
    assert fmt == "markers" and [m["content"] for m in examples[0]["messages"]] == ["hi there", "hello!", "bye", "see you"]
    guanaco = write_jsonl(tmp_path / "guanaco.jsonl", [{"text": "### Human: Name a colour.### Assistant: Blue."}])
    examples, fmt, report = load_examples(cfg(guanaco))
    assert fmt == "markers" and examples[0] == _chat((USER, "Name a colour."), (BOT, "Blue."))
    assert any("### Human:" in note for note in report["notes"])


def test_question_answer_columns_by_name_by_guess_and_by_mapping(tmp_path):
    named = write_jsonl(tmp_path / "named.jsonl", [{"id": 1, "user_question": "Why?", "bot_answer": "Because."}])
    assert load_examples(cfg(named))[0] == [_chat((USER, "Why?"), (BOT, "Because."))]
    odd = write_jsonl(tmp_path / "odd.jsonl", [{"soru": "Ne?", "cevap": "Bu."}])
    examples, fmt, report = load_examples(cfg(odd))
    assert fmt == "qa" and examples == [_chat((USER, "Ne?"), (BOT, "Bu."))] and report["notes"]
    mapped = write_jsonl(tmp_path / "mapped.jsonl", [{"a1": "ignored", "ask": "Q?", "say": "A!"}])
    examples, fmt, report = load_examples(cfg(mapped, prompt_column="ask", response_column="say"))
    assert fmt == "qa" and examples == [_chat((USER, "Q?"), (BOT, "A!"))]
    assert report["columns"] == {"prompt": "ask", "response": "say"}


def test_system_column_and_dolly_context(tmp_path):
    rows = [{"system_prompt": "Be kind.", "question": "Hi?", "response": "Hello."}]
    examples, _, _ = load_examples(cfg(write_jsonl(tmp_path / "orca.jsonl", rows)))
    assert examples[0] == _chat(("system", "Be kind."), (USER, "Hi?"), (BOT, "Hello."))
    dolly = [{"instruction": "Sum up.", "context": "Long text.", "response": "Short.", "category": "summarization"}]
    examples, fmt, _ = load_examples(cfg(write_jsonl(tmp_path / "dolly.jsonl", dolly)))
    assert fmt == "alpaca" and examples[0] == _chat((USER, "Sum up.\n\nLong text."), (BOT, "Short."))


def test_conversations_stored_as_json_text_in_a_csv(tmp_path):
    path = tmp_path / "chats.csv"
    path.write_text('messages\n"[{""role"": ""user"", ""content"": ""Hi""}, {""role"": ""assistant"", ""content"": ""Yo""}]"\n',
                    encoding="utf-8")
    examples, fmt, _ = load_examples(cfg(path))
    assert fmt == "messages" and examples == [_chat((USER, "Hi"), (BOT, "Yo"))]


def test_openai_content_parts_are_joined(tmp_path):
    rows = [{"messages": [{"role": "user", "content": [{"type": "text", "text": "Look"}]},
                          {"role": "assistant", "content": "Nice."}]}]
    examples, _, _ = load_examples(cfg(write_jsonl(tmp_path / "parts.jsonl", rows)))
    assert examples == [_chat((USER, "Look"), (BOT, "Nice."))]


def test_manual_override_reads_the_same_file_differently():
    examples, fmt, _ = load_examples(cfg("markers.jsonl", data_format="text"))
    assert fmt == "text" and examples[0]["text"].startswith("<usr>")


def test_wrong_override_or_column_names_the_problem():
    with pytest.raises(DataError, match="'alpaca' format needs.*Columns are: messages"):
        load_examples(cfg("messages.jsonl", data_format="alpaca"))
    with pytest.raises(DataError, match="'frage'.*not in the data.*질문, 답변"):
        load_examples(cfg("qa_korean.csv", prompt_column="frage", response_column="답변"))
    with pytest.raises(DataError, match="turn markers"):
        load_examples(cfg("pretrain.txt", data_format="markers"))


def test_unrecognised_columns_list_what_was_found(tmp_path):
    path = write_jsonl(tmp_path / "numbers.jsonl", [{"x": 1, "y": 2, "z": 3}])
    with pytest.raises(DataError, match=r"columns \['x', 'y', 'z'\].*prompt_column"):
        load_examples(cfg(path))


def test_detect_format_public_helper():
    from core.config import RunConfig
    assert detect_format([{"conversations": [{"from": "human", "value": "a"}]}], RunConfig()) == "sharegpt"
    assert detect_format([{"질문": "a", "답변": "b"}], RunConfig()) == "qa"
    with pytest.raises(DataError):
        detect_format([], RunConfig())
