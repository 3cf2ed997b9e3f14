"""Every preset loads, and its target_modules match layers of a tiny random model of its family (nothing downloaded)."""
import pytest
from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, MT5Config, Qwen2Config

from core.config import RunConfig
from core.plan.targets import empty_model, target_problems, targeted
from tests.paths import ROOT

SMALL = dict(vocab_size=128, hidden_size=32, intermediate_size=64, num_hidden_layers=2, num_attention_heads=4)
FAMILY = {  # each preset's model -> a tiny config of the same architecture
    "embedded:smollm2-135m-instruct": LlamaConfig(**SMALL, num_key_value_heads=2),
    "meta-llama/Llama-2-7b-hf": LlamaConfig(**SMALL),
    "Qwen/Qwen2.5-1.5B-Instruct": Qwen2Config(**SMALL, num_key_value_heads=2),
    "EleutherAI/polyglot-ko-12.8b": GPTNeoXConfig(**SMALL),
    "EleutherAI/polyglot-ko-1.3b": GPTNeoXConfig(**SMALL),
    "skt/kogpt2-base-v2": GPT2Config(vocab_size=128, n_embd=32, n_layer=2, n_head=4, n_positions=64),
    "bigscience/mt0-large": MT5Config(vocab_size=128, d_model=32, d_kv=8, d_ff=64, num_layers=2, num_heads=4),
}
PRESETS = sorted((ROOT / "presets").glob("*.yaml"))


@pytest.mark.parametrize("path", PRESETS, ids=lambda p: p.stem)
def test_preset_targets_exist_in_its_family(path):
    config = RunConfig.load_yaml(path)
    assert config.validate() == []
    assert config.model in FAMILY, f"{path.name}: add a tiny config of {config.model}'s family here"
    tiny = FAMILY[config.model]
    assert target_problems(config, model_config=tiny) == []
    if config.uses_lora:
        assert targeted(empty_model(tiny), config.target_modules), path.name


def test_the_new_presets_target_their_familys_attention():
    kogpt2 = RunConfig.load_yaml(ROOT / "presets" / "kogpt2-lora.yaml")
    polyglot = RunConfig.load_yaml(ROOT / "presets" / "polyglot-ko-1.3b-t4.yaml")
    assert set(targeted(empty_model(FAMILY[kogpt2.model]), kogpt2.target_modules)) == \
        {"transformer.h.0.attn.c_attn", "transformer.h.1.attn.c_attn"}
    assert polyglot.precision == "fp16" and polyglot.gradient_checkpointing
    assert len(targeted(empty_model(FAMILY[polyglot.model]), polyglot.target_modules)) == 2
    # the same preset with Llama's names is refused against its own family
    wrong = polyglot.replace(target_modules="q_proj,v_proj")
    assert "query_key_value" in str(target_problems(wrong, model_config=FAMILY[polyglot.model])[0])


def test_the_mt0_preset_is_the_seq2seq_lora_recipe_on_t5_attention():
    mt0 = RunConfig.load_yaml(ROOT / "presets" / "mt0-large-lora.yaml")
    assert (mt0.lora_r, mt0.lora_alpha, mt0.lora_dropout, mt0.packing) == (8, 32, 0.1, False)
    wrapped = targeted(empty_model(FAMILY[mt0.model]), mt0.target_modules)
    # q and v of every attention: encoder self-attention, decoder self- and cross-attention (2 layers each)
    assert len(wrapped) == 2 * (2 + 2 * 2) and all(n.endswith((".q", ".v")) for n in wrapped)
    wrong = mt0.replace(target_modules="q_proj,v_proj")  # Llama's names: refused, naming T5's real layers
    problem = str(target_problems(wrong, model_config=FAMILY[mt0.model])[0])
    assert "q_proj" in problem and "wi_0" in problem and "EncDecAttention" not in problem
