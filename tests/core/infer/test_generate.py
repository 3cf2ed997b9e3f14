"""Sampling defaults come from the model's generation_config; a person's setting overrides them only when made."""
import pytest
import torch
from transformers import AutoModelForCausalLM

from core.data.tokenize import apply_template_choice
from core.infer.generate import Sampling, answer, build_messages, describe_defaults, model_defaults, stop_token_ids
from core.messages import localize

MESSAGES = build_messages([], "Who founded Brindlewick Bakehouse?")


@pytest.fixture(scope="module")
def sampled_model(tiny_model_dir):
    """The tiny Llama whose own generation_config samples (temperature 0.3, top_k 5, one extra stop token)."""
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    model.generation_config.update(do_sample=True, temperature=0.3, top_k=5, top_p=None,
                                   eos_token_id=[model.config.eos_token_id, 17])
    return model


@pytest.fixture(scope="module")
def chat_tokenizer(tokenizer):
    apply_template_choice(tokenizer, "auto")
    return tokenizer


def _plain(model, tokenizer, seed: int, **kwargs) -> str:
    """The answer from plain `generate`, seeded, with only the given overrides."""
    inputs = tokenizer.apply_chat_template(MESSAGES, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    torch.manual_seed(seed)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=12, pad_token_id=tokenizer.pad_token_id, **kwargs)
    new = out[0, inputs["input_ids"].shape[1]:].tolist()
    ends = stop_token_ids(model, tokenizer)
    new = new[:next((i for i, t in enumerate(new) if t in ends), len(new))]
    return tokenizer.decode(new, skip_special_tokens=True).rstrip("\ufffd").strip()


def _ours(model, tokenizer, seed: int, sampling: Sampling) -> str:
    torch.manual_seed(seed)  # generate runs on another thread; torch's CPU generator is one per process
    return answer(model, tokenizer, MESSAGES, sampling)


def test_unset_settings_use_the_models_own_sampling(sampled_model, chat_tokenizer):
    assert model_defaults(sampled_model) == {"do_sample": True, "temperature": 0.3, "top_p": None, "top_k": 5,
                                             "repetition_penalty": None}
    assert Sampling(max_new_tokens=12).generate_kwargs() == {"max_new_tokens": 12}
    samples = {_ours(sampled_model, chat_tokenizer, seed, Sampling(max_new_tokens=12)) for seed in range(4)}
    assert len(samples) > 1  # it samples, as the model's generation_config says
    assert _ours(sampled_model, chat_tokenizer, 3, Sampling(max_new_tokens=12)) == _plain(sampled_model,
                                                                                          chat_tokenizer, 3)


def test_a_setting_made_overrides_the_models_default(sampled_model, chat_tokenizer):
    greedy = Sampling(max_new_tokens=12, temperature=0)
    assert greedy.generate_kwargs() == {"max_new_tokens": 12, "do_sample": False}
    assert {_ours(sampled_model, chat_tokenizer, seed, greedy) for seed in range(3)} == \
        {_plain(sampled_model, chat_tokenizer, 0, do_sample=False)}
    hot = Sampling(max_new_tokens=12, temperature=1.5, top_k=50, repetition_penalty=1.2)
    assert hot.generate_kwargs() == {"max_new_tokens": 12, "do_sample": True, "temperature": 1.5, "top_k": 50,
                                     "repetition_penalty": 1.2}
    assert _ours(sampled_model, chat_tokenizer, 5, hot) == _plain(sampled_model, chat_tokenizer, 5, temperature=1.5,
                                                                  top_k=50, repetition_penalty=1.2)


def test_the_models_own_stop_tokens_end_an_answer(sampled_model, chat_tokenizer):
    assert 17 in stop_token_ids(sampled_model, chat_tokenizer)


def test_the_models_defaults_are_described_for_people(sampled_model, tiny_model_dir):
    line = describe_defaults(sampled_model)
    assert line.key == "families_infer.defaults_sampling" and "temperature 0.3" in line and "top_k 5" in line
    assert "temperature 0.3" in localize(line, "ko")
    plain = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    assert describe_defaults(plain).key == "families_infer.defaults_greedy"
