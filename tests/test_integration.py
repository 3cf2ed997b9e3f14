"""The real embedded model on CPU, in 4-bit: train → adapter → chat → merge → plain reload."""
import pytest
import torch

from core.config import RunConfig
from core.infer.export import merge
from core.train.job import TrainingJob

pytestmark = pytest.mark.slow

QUESTION = [{"role": "user", "content": "Who founded Brindlewick Bakehouse?"}]


def _greedy(model, tokenizer, max_new_tokens=16):
    inputs = tokenizer.apply_chat_template(QUESTION, add_generation_prompt=True, return_tensors="pt", return_dict=True)
    with torch.no_grad():
        out = model.generate(**inputs, max_new_tokens=max_new_tokens, do_sample=False)
    return tokenizer.decode(out[0, inputs["input_ids"].shape[1]:], skip_special_tokens=True)


def test_qlora_round_trip_on_the_embedded_model(embedded_dir):
    pytest.importorskip("bitsandbytes")
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    config = RunConfig(method="qlora", quantization="4bit", max_steps=3, batch_size=2, max_length=128,
                       learning_rate=1e-3, validation_share=0.05, eval_steps=3, subset_share=0.2)
    job = TrainingJob(config).start()
    assert job.join(900) == "finished", job.snapshot().message
    adapter = job.dir / "adapter"

    # the adapter loads with plain peft on a full-precision base
    base = AutoModelForCausalLM.from_pretrained(embedded_dir, dtype=torch.float32)
    tuned = PeftModel.from_pretrained(base, adapter).eval()
    tokenizer = AutoTokenizer.from_pretrained(adapter)
    expected = _greedy(tuned, tokenizer)
    assert expected.strip()

    merged_dir = merge(job.dir, dtype="fp32")  # fp32: the same greedy tokens as the fp32 adapter above
    merged = AutoModelForCausalLM.from_pretrained(merged_dir).eval()
    assert _greedy(merged, AutoTokenizer.from_pretrained(merged_dir)) == expected
    assert (merged_dir / "model.safetensors").exists() and (merged_dir / "README.md").exists()
