"""Target-module detection, quantized loading on CPU, embedding resize, plain errors in every language."""
import re

import pytest
import torch

from core.config import RunConfig
from core.errors import ModelError
from core.messages import Msg, localize
from core.models import find_target_modules, load_base, prepare_for_training, resolve


def test_targets_on_llama_skip_the_head(tiny_model_dir):
    model = load_base(RunConfig(model=str(tiny_model_dir)))
    targets = find_target_modules(model)
    assert set(targets) == {"q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"}
    assert "lm_head" not in targets


def test_targets_on_gpt2_conv1d():
    from transformers import GPT2Config, GPT2LMHeadModel
    model = GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=32, n_head=2, vocab_size=100))
    assert set(find_target_modules(model)) == {"c_attn", "c_proj", "c_fc"}


def test_targets_on_linear4bit(tiny_model_dir):
    pytest.importorskip("bitsandbytes")
    model = load_base(RunConfig(model=str(tiny_model_dir), method="qlora", quantization="4bit"))
    kinds = {type(m).__name__ for m in model.modules()}
    assert "Linear4bit" in kinds
    assert "q_proj" in find_target_modules(model) and "lm_head" not in find_target_modules(model)
    peft_model = prepare_for_training(model, _tok(tiny_model_dir), RunConfig(method="qlora", quantization="4bit"))
    trainable = [n for n, p in peft_model.named_parameters() if p.requires_grad]
    assert trainable and all("lora_" in n for n in trainable)


def test_added_tokens_resize_embeddings(tiny_model_dir):
    tokenizer = _tok(tiny_model_dir)
    tokenizer.add_special_tokens({"additional_special_tokens": ["<|brand_new|>"]})
    model = load_base(RunConfig(model=str(tiny_model_dir)))
    before = model.get_input_embeddings().num_embeddings
    model = prepare_for_training(model, tokenizer, RunConfig())
    assert model.get_base_model().config.vocab_size == len(tokenizer) == before + 1
    new_id = tokenizer.convert_tokens_to_ids("<|brand_new|>")
    model(input_ids=torch.tensor([[new_id, 1, 2]]))  # would index out of range without the resize


def test_missing_folder_and_bad_reference():
    with pytest.raises(ModelError, match="does not exist"):
        resolve("./no/such/model")
    with pytest.raises(ModelError, match="Unknown embedded"):
        resolve("embedded:nope")


@pytest.mark.parametrize("ref", ["./no/such/model", "embedded:nope", "."])
def test_model_errors_speak_korean(ref):
    with pytest.raises(ModelError) as caught:
        resolve(ref)
    message = caught.value.message
    assert isinstance(message, Msg) and message.key.startswith("model.")
    assert re.search("[가-힣]", localize(message, "ko"))


def test_lora_that_cannot_attach_names_the_layers(tiny_model_dir, tokenizer):
    model = load_base(RunConfig(model=str(tiny_model_dir)))
    with pytest.raises(ModelError, match="target_modules.*q_proj") as caught:
        prepare_for_training(model, tokenizer, RunConfig(target_modules="no_such_layer"))
    assert "q_proj" in localize(caught.value.message, "ko") and "확인하세요" in localize(caught.value.message, "ko")


def test_cpu_never_gets_bf16(tiny_model_dir):
    if torch.cuda.is_available():
        pytest.skip("CPU-only check")
    model = load_base(RunConfig(model=str(tiny_model_dir)))
    assert next(model.parameters()).dtype == torch.float32


def _tok(folder):
    from transformers import AutoTokenizer
    return AutoTokenizer.from_pretrained(folder)
