"""Fast checks of the GGUF writer, the Ollama template translation and the card's names, on a tiny random
Llama (grouped-query attention, so the Q/K permutation is exercised) and on other chat templates."""
from __future__ import annotations

import json

import pytest
import torch
from transformers import AutoModelForCausalLM, AutoTokenizer

from core.config import RunConfig
from core.errors import ExportError
from core.infer import export, gguf, modelcard, ollama

LLAMA3 = ("{{ bos_token }}{% for message in messages %}{{ '<|start_header_id|>' + message['role'] + "
          "'<|end_header_id|>\n\n' + message['content'] + '<|eot_id|>' }}{% endfor %}"
          "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}")
LLAMA2 = ("{% for message in messages %}{% if message['role'] == 'system' %}{{ '<<SYS>>' + message['content'] + "
          "'<</SYS>>' }}{% elif message['role'] == 'user' and loop.index0 == 1 %}{{ message['content'] + ' [/INST]' }}"
          "{% elif message['role'] == 'user' %}{{ '[INST] ' + message['content'] + ' [/INST]' }}"
          "{% else %}{{ message['content'] + '</s>' }}{% endif %}{% endfor %}")
CONVERSATIONS = ([{"role": "user", "content": "Hi"}],
                 [{"role": "system", "content": "Be brief."}, {"role": "user", "content": "Hi"},
                  {"role": "assistant", "content": "Hello!"}, {"role": "user", "content": "{{ not a template }}"}])


def test_tiny_llama_round_trips_through_gguf_with_the_same_logits(tiny_model_dir, tmp_path):
    path = gguf.convert(tiny_model_dir, tmp_path / "tiny-f32.gguf", "f32", name="tiny")
    original = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    loaded = AutoModelForCausalLM.from_pretrained(tmp_path, gguf_file=path.name, dtype=torch.float32).eval()
    ids = torch.tensor([[1, 400, 2000, 33, 7, 9000]])
    with torch.no_grad():
        assert torch.allclose(original(ids).logits, loaded(ids).logits, atol=1e-5)
    metadata = gguf.read_metadata(path)
    assert metadata["tokenizer.ggml.pre"] == "smollm" and metadata["tokenizer.ggml.add_bos_token"] is False


def test_quantized_types_and_size_estimates(tiny_model_dir, tmp_path):
    shapes = export._shapes(tiny_model_dir)
    for quant in ("f16", "q8_0", "q4_0"):
        path = gguf.convert(tiny_model_dir, tmp_path / f"tiny-{quant}.gguf", quant)
        tensors = gguf.read_metadata(path)["tensor_types"]
        assert "F32" in tensors  # norms stay f32
        assert abs(path.stat().st_size - gguf.estimate_bytes(shapes, quant)) < 2.5e6  # + the vocabulary (~1.8 MB)
    with pytest.raises(ExportError, match="q3"):
        gguf.convert(tiny_model_dir, tmp_path / "x.gguf", "q3")


def test_a_model_outside_the_llama_family_is_refused_with_a_sentence(tmp_path):
    from transformers import GPT2Config, GPT2LMHeadModel
    GPT2LMHeadModel(GPT2Config(n_layer=1, n_embd=16, n_head=2, vocab_size=100)).save_pretrained(tmp_path)
    with pytest.raises(ExportError, match="convert_hf_to_gguf.py"):
        gguf.convert(tmp_path, tmp_path / "x.gguf")


@pytest.mark.parametrize("template", [None, LLAMA3], ids=["smollm-chatml", "llama3"])
def test_ollama_template_renders_like_the_chat_template(tokenizer, template):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path) if template else tokenizer
    if template:
        tokenizer.chat_template = template
    derived = ollama.derive(tokenizer)
    for conversation in CONVERSATIONS:
        assert ollama.render(derived.go(), conversation) == tokenizer.apply_chat_template(
            conversation, tokenize=False, add_generation_prompt=True)
    assert "{{-" not in derived.go()  # no trim markers: every newline is the template's own


def test_a_template_that_depends_on_position_is_refused(tokenizer):
    tokenizer = AutoTokenizer.from_pretrained(tokenizer.name_or_path)
    tokenizer.chat_template = LLAMA2
    with pytest.raises(ExportError, match="Ollama"):
        ollama.derive(tokenizer)


def test_modelfile_lists_every_stop_word_and_the_system_prompt(tokenizer):
    derived = ollama.derive(tokenizer)
    stops = ollama.stop_words(tokenizer, derived, [tokenizer.eos_token_id])
    text = ollama.modelfile("m.gguf", derived, stops, "Answer in \"one\" line.")
    assert text.splitlines()[0] == "FROM ./m.gguf"
    assert 'PARAMETER stop "<|im_end|>"' in text and 'PARAMETER stop "<|im_start|>"' in text
    assert 'SYSTEM """Answer in "one" line."""' in text
    assert "SYSTEM" not in ollama.modelfile("m.gguf", derived, stops, "")


def test_base_and_dataset_are_named_by_hub_id_or_not_at_all(tmp_path):
    assert modelcard.base_hub_id("embedded:smollm2-135m-instruct") == "HuggingFaceTB/SmolLM2-135M-Instruct"
    assert modelcard.base_hub_id("Qwen/Qwen2.5-0.5B") == "Qwen/Qwen2.5-0.5B"
    snapshot = tmp_path / "hub" / "models--org--name" / "snapshots" / "abc"
    snapshot.mkdir(parents=True)
    assert modelcard.base_hub_id(str(snapshot)) == "org/name"
    (tmp_path / "README.md").write_text("---\nbase_model: org/original\nlicense: mit\n---\n# x\n")
    assert modelcard.base_hub_id(str(tmp_path)) == "org/original" and modelcard.base_license(str(tmp_path)) == "mit"
    assert modelcard.base_hub_id(str(tmp_path / "hub")) is None
    assert modelcard.dataset_hub_id("builtin:demo") is None and modelcard.dataset_hub_id(str(tmp_path)) is None
    assert modelcard.dataset_hub_id("someone/bakery-chats") == "someone/bakery-chats"


def test_merged_precision_follows_the_base(tiny_model_dir, tmp_path):
    fp16 = tmp_path / "fp16-base"
    AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float16).save_pretrained(fp16)
    assert json.loads((fp16 / "config.json").read_text())["dtype"] == "float16"
    assert export.merged_dtype(RunConfig(model=str(fp16))) == "fp16"
    assert export.merged_dtype(RunConfig(model=str(tiny_model_dir))) == "bf16"  # a float32 base: bf16
    assert export.merged_dtype(RunConfig(model=str(fp16)), "fp32") == "fp32"
    with pytest.raises(ExportError, match="fp8"):
        export.merged_dtype(RunConfig(), "fp8")
