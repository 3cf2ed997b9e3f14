"""target_modules checked before Start from the model's config alone (meta device, no weights read)."""
import pytest
from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig

from core.config import RunConfig
from core.models import find_target_modules
from core.plan.checks import check
from core.plan.targets import empty_model, linear_layers, short_names, targeted

TINY = {
    "gpt2": GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "gpt_neox": GPTNeoXConfig(vocab_size=128, hidden_size=32, num_hidden_layers=2, num_attention_heads=4,
                              intermediate_size=64, max_position_embeddings=64),
    "llama": LlamaConfig(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=64),
}
RIGHT = {"gpt2": "c_attn", "gpt_neox": "query_key_value,dense", "llama": "q_proj,v_proj"}
WRONG = {"gpt2": "q_proj,v_proj", "gpt_neox": "q_proj", "llama": "query_key_value"}
LINEARS = {"gpt2": "c_attn, c_fc, c_proj", "gpt_neox": "dense, dense_4h_to_h, dense_h_to_4h, query_key_value",
           "llama": "down_proj, gate_proj, k_proj, o_proj, q_proj, up_proj, v_proj"}


@pytest.fixture
def config_only(tmp_path):
    """A model folder with config.json and nothing else: reading any weights would fail."""
    def make(family):
        folder = tmp_path / family
        TINY[family].save_pretrained(folder)
        return folder
    return make


@pytest.fixture
def no_weights_read(monkeypatch):
    import safetensors
    import safetensors.torch

    def refuse(*args, **kwargs):
        raise AssertionError("weights were read")
    monkeypatch.setattr(safetensors, "safe_open", refuse)
    monkeypatch.setattr(safetensors.torch, "load_file", refuse)


@pytest.mark.parametrize("family", list(TINY))
def test_wrong_targets_are_refused_naming_the_real_layers(family, config_only, no_weights_read):
    config = RunConfig(model=str(config_only(family)), target_modules=WRONG[family])
    problems = [str(p) for p in check(config)]
    assert len(problems) == 1, problems
    assert WRONG[family].replace(",", ", ") in problems[0] and LINEARS[family] in problems[0]
    assert problems[0].startswith("target_modules:")


@pytest.mark.parametrize("family", list(TINY))
def test_right_targets_and_all_linear_are_accepted(family, config_only, no_weights_read):
    folder = str(config_only(family))
    for value in (RIGHT[family], "all-linear"):
        assert check(RunConfig(model=folder, target_modules=value)) == []
    assert check(RunConfig(model=folder, method="full", target_modules="nonsense")) == []  # no LoRA: unused


def test_one_bad_name_among_good_ones_is_named_alone(config_only):
    problems = check(RunConfig(model=str(config_only("gpt_neox")), target_modules="query_key_value,qkv"))
    assert len(problems) == 1 and "is called qkv." in str(problems[0])


def test_all_linear_is_peft_resolution_and_matches_what_training_wraps(tokenizer):
    """peft's all-linear on the empty model = the layers core.models puts LoRA on in a real one."""
    from peft import LoraConfig, get_peft_model
    from transformers import AutoModelForCausalLM

    for family, model_config in TINY.items():
        chosen = targeted(empty_model(model_config), "all-linear")
        real = get_peft_model(AutoModelForCausalLM.from_config(model_config), LoraConfig(target_modules="all-linear"))
        wrapped = {n.removeprefix("base_model.model.") for n, m in real.named_modules() if hasattr(m, "lora_A")}
        assert set(chosen) == wrapped, family
        assert short_names(chosen) == find_target_modules(AutoModelForCausalLM.from_config(model_config))  # core.models
        assert "lm_head" not in chosen and "embed_out" not in chosen


def test_conv1d_and_fused_qkv_shapes():
    gpt2 = linear_layers(empty_model(TINY["gpt2"]))
    assert gpt2["transformer.h.0.attn.c_attn"] == (32, 96) and gpt2["transformer.h.0.mlp.c_proj"] == (128, 32)
    neox = linear_layers(empty_model(TINY["gpt_neox"]))
    assert neox["gpt_neox.layers.1.attention.query_key_value"] == (32, 96)


def test_an_unreadable_model_is_left_to_the_loader(tmp_path):
    # no config to read here: the check cannot know the layers, and loading will say what is wrong
    assert check(RunConfig(model=str(tmp_path / "missing"), target_modules="q_proj")) == []


def test_the_cli_refuses_wrong_targets_with_exit_2_before_loading(config_only, no_weights_read, tmp_path, capsys):
    import app
    path = tmp_path / "run.yaml"
    RunConfig(model=str(config_only("gpt_neox")), target_modules="q_proj,v_proj", max_steps=1).save_yaml(path)
    assert app.main(["train", "--config", str(path)]) == 2
    err = capsys.readouterr().err
    assert "no layer of" in err and "query_key_value" in err and "Traceback" not in err
