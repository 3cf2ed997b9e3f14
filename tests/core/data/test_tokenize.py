"""Tokenization with the embedded model's chat template: answers-only labels, checked token by token."""
import pytest

from core.data.pipeline import encode_examples, load_examples, prepare
from core.data.tokenize import IGNORE, render
from core.errors import DataError
from tests.core.data.helpers import END, answers, cfg, trained_runs, write_jsonl

CHAT_FILES = ["messages.jsonl", "sharegpt.json", "alpaca.json", "koalpaca.jsonl", "qa_korean.csv", "qa.tsv",
              "qa_bom.csv", "qa.parquet", "markers.jsonl", "builtin:demo"]


@pytest.mark.parametrize("name", CHAT_FILES)
def test_only_the_answers_and_their_end_of_turn_are_trained(name, data_tokenizer):
    config = cfg(name, shuffle=False)
    examples, _, _ = load_examples(config)
    data = prepare(config, data_tokenizer)
    assert len(data.train) == len(examples) and not data.validation
    for example, item in zip(examples, data.train):
        assert trained_runs(data_tokenizer, item) == [a + END for a in answers(example)]
        rendered = render(data_tokenizer, example["messages"])
        assert data_tokenizer.decode(item["input_ids"]) == rendered
        # every token outside the answers is masked: the prompt and the template's own text
        prompt_ids = [t for t, label in zip(item["input_ids"], item["labels"]) if label == IGNORE]
        prompt = data_tokenizer.decode(prompt_ids)
        for message in example["messages"]:
            if message["role"] != "assistant":
                assert message["content"] in prompt


def test_train_on_everything_labels_every_token(data_tokenizer):
    data = prepare(cfg("qa_korean.csv", train_on="all"), data_tokenizer)
    for item in data.train:
        assert item["labels"] == item["input_ids"]
    assert data.stats["train_on"] == "all" and data.stats["trained_share"] > 0.9


def test_plain_text_is_chunked_to_max_length_and_fully_trained(data_tokenizer):
    data = prepare(cfg("pretrain.txt", max_length=32), data_tokenizer)
    assert data.format == "text" and len(data.train) > 3
    assert all(len(item["input_ids"]) <= 32 and item["labels"] == item["input_ids"] for item in data.train)
    text = data_tokenizer.decode([t for item in data.train for t in item["input_ids"]])
    assert "Brindlewick Bakehouse" in text and text.count(END) == 3  # one end-of-text after each paragraph


def test_a_cut_answer_keeps_its_start_and_is_reported(data_tokenizer):
    full = prepare(cfg("koalpaca.jsonl", shuffle=False), data_tokenizer).train[0]
    answer_start = next(i for i, label in enumerate(full["labels"]) if label != IGNORE)
    data = prepare(cfg("koalpaca.jsonl", shuffle=False, max_length=answer_start + 3), data_tokenizer)
    item = data.train[0]
    assert item["truncated"] and len(item["input_ids"]) == answer_start + 3 and item["length"] == len(full["input_ids"])
    assert sum(label != IGNORE for label in item["labels"]) == 3
    assert data.stats["truncated"] >= 1


def test_examples_whose_whole_answer_is_cut_are_dropped(data_tokenizer, tmp_path):
    rows = [{"question": "Why? " * 60, "answer": "Because."}, {"question": "Short?", "answer": "Yes, short."}]
    data = prepare(cfg(write_jsonl(tmp_path / "long.jsonl", rows), max_length=64), data_tokenizer)
    assert len(data.train) == 1 and data.stats["dropped"] == {"answers cut off entirely by max_length": 1}


def test_nothing_to_learn_is_refused_with_the_reason(data_tokenizer):
    with pytest.raises(DataError, match="max_length.*learn nothing"):
        prepare(cfg("qa_korean.csv", max_length=20), data_tokenizer)


def test_validation_split_is_tokenized_too(data_tokenizer):
    data = prepare(cfg("builtin:demo", validation_share=0.1), data_tokenizer)
    assert len(data.validation) == 78 and len(data.train) == 711
    assert data.stats["validation_examples"] == 78 and data.stats["packing"] is True


def test_templates_without_a_system_role_get_it_folded_into_the_question(data_tokenizer):
    import copy
    tok = copy.deepcopy(data_tokenizer)
    tok.chat_template = (
        "{% for m in messages %}{% if m['role'] == 'system' %}{{ raise_exception('System role not supported') }}"
        "{% endif %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n{% endfor %}"
        "{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")
    example = {"messages": [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi?"},
                            {"role": "assistant", "content": "Hello."}]}
    encoded, dropped = encode_examples([example], tok, cfg("builtin:demo"))
    assert not dropped and "Be brief.\n\nHi?" in tok.decode(encoded[0]["input_ids"])
    assert trained_runs(tok, encoded[0]) == ["Hello." + END]


def test_a_template_that_refuses_a_row_drops_it_with_the_reason(data_tokenizer):
    import copy
    tok = copy.deepcopy(data_tokenizer)
    tok.chat_template = "{{ raise_exception('Conversation roles must alternate') }}"
    encoded, dropped = encode_examples([{"messages": [{"role": "user", "content": "a"},
                                                      {"role": "assistant", "content": "b"}]}], tok, cfg("builtin:demo"))
    assert not encoded and "roles must alternate" in next(iter(dropped))
