"""GPT-2 (Conv1D) and GPT-NeoX (fused query_key_value) tiny random models train with LoRA on their own layers,
and the planner's LoRA parameter count (from the empty model) is the run's real one."""
import pytest
import torch
from transformers import AutoModelForCausalLM, GPT2Config, GPTNeoXConfig

from core.events import read_events
from core.plan.memory import _lora_targets
from core.plan.model_shape import shape_of
from core.train.job import TrainingJob

FAMILIES = {
    "gpt2": (GPT2Config, dict(n_embd=32, n_layer=2, n_head=4, n_positions=256), "c_attn,c_fc"),
    "gpt_neox": (GPTNeoXConfig, dict(hidden_size=32, num_hidden_layers=2, num_attention_heads=4, intermediate_size=64,
                                     max_position_embeddings=256), "query_key_value"),
}


@pytest.mark.parametrize("family", list(FAMILIES))
def test_family_trains_and_the_planner_counts_its_adapters(family, tokenizer, tmp_path, tiny_config):
    kind, sizes, targets = FAMILIES[family]
    config = kind(vocab_size=len(tokenizer), bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
                  pad_token_id=tokenizer.pad_token_id, **sizes)
    torch.manual_seed(0)
    AutoModelForCausalLM.from_config(config).save_pretrained(tmp_path)
    tokenizer.save_pretrained(tmp_path)
    run = tiny_config.replace(model=str(tmp_path), target_modules=targets, max_steps=2, eval_steps=0, save_steps=0,
                              chat_template="plain")
    job = TrainingJob(run).start()
    assert job.join(180) == "finished"
    started = next(e for e in read_events(job.dir / "events.jsonl") if e["type"] == "started")
    planned = run.lora_r * sum(a + b for a, b in _lora_targets(run, shape_of(config)))
    assert started["trainable_params"] == planned
    assert shape_of(config).total_params == started["total_params"] - planned
