"""The GPU path run for real (skipped without CUDA): 4-bit/8-bit load + train + merge with bf16 compute,
paged and 8-bit optimizers, fp16/bf16 full fine-tuning, SDPA/FlashAttention, the planner against the
measured peak, generation's EOS list, chat on the GPU, CUDA RNG in checkpoints, and two processes
where the machine has two GPUs. See tests/gpu/README.md for running it offline."""
import json

import pytest
import torch

from core.events import read_events
from core.runs import summarize
from core.train.job import TrainingJob

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]
BF16 = torch.cuda.is_available() and torch.cuda.is_bf16_supported()


def _finished(config, timeout=600):
    job = TrainingJob(config).start()
    assert job.join(timeout) == "finished", job.snapshot().message
    logs = summarize(job.dir).logs
    assert logs and all(log["loss"] == log["loss"] for log in logs)  # no NaN
    return job


@pytest.mark.parametrize("method, quantization", [("qlora", "4bit"), ("lora", "8bit")])
def test_quantized_load_train_merge_with_bf16_compute(tiny_config, method, quantization):
    pytest.importorskip("bitsandbytes")
    if not BF16:
        pytest.skip("bf16 compute needs an Ampere or newer GPU")
    from transformers import AutoModelForCausalLM

    from core.infer.export import merge
    job = _finished(tiny_config.replace(method=method, quantization=quantization, compute_dtype="bf16",
                                        precision="bf16", gradient_checkpointing=True))
    merged = merge(job.dir)
    assert AutoModelForCausalLM.from_pretrained(merged).config.model_type == "llama"


@pytest.mark.parametrize("optimizer", ["paged_adamw_8bit", "paged_adamw_32bit", "adamw_8bit"])
def test_paged_and_8bit_optimizers(tiny_config, optimizer):
    pytest.importorskip("bitsandbytes")
    _finished(tiny_config.replace(method="qlora", quantization="4bit", optimizer=optimizer))


@pytest.mark.parametrize("precision", ["fp16", "bf16"])
def test_full_fine_tuning_in_half_precision(tiny_config, precision):
    """fp16 used to load fp16 weights, then GradScaler.unscale_ raised 'Attempting to unscale FP16 gradients'."""
    if precision == "bf16" and not BF16:
        pytest.skip("no bf16 on this GPU")
    job = _finished(tiny_config.replace(method="full", precision=precision, learning_rate=1e-4))
    assert (job.dir / "merged" / "config.json").exists()


def test_attention_kernel_where_installed(tiny_config):
    from core import hardware
    from core.models import load_base
    kind = hardware.attention_implementation()
    assert kind == ("flash_attention_2" if hardware.has_package("flash_attn") else "sdpa")
    model = load_base(tiny_config.replace(precision="bf16" if BF16 else "fp16"))
    assert model.config._attn_implementation == kind and next(model.parameters()).is_cuda
    _finished(tiny_config.replace(precision="bf16" if BF16 else "fp16"))


def test_planner_within_15_percent_of_the_measured_peak(tiny_model_dir):
    """A model big enough that the weights and activations (not CUDA's context) make the peak."""
    from transformers import LlamaConfig, LlamaForCausalLM

    from core.config import RunConfig
    from core.plan.memory import estimate
    shape = LlamaConfig(vocab_size=49152, hidden_size=1024, intermediate_size=2816, num_hidden_layers=8,
                        num_attention_heads=16, num_key_value_heads=4, max_position_embeddings=2048)
    folder = tiny_model_dir.parent / "planner-llama"
    if not (folder / "config.json").exists():
        LlamaForCausalLM(shape).save_pretrained(folder)
        from transformers import AutoTokenizer
        AutoTokenizer.from_pretrained(tiny_model_dir).save_pretrained(folder)
    config = RunConfig(model=str(folder), max_steps=3, batch_size=4, max_length=512, validation_share=0.0,
                       eval_steps=100, save_steps=100, precision="bf16" if BF16 else "fp16")
    torch.cuda.reset_peak_memory_stats()
    job = _finished(config)
    measured = torch.cuda.max_memory_allocated()
    stats = next(e for e in read_events(job.dir / "events.jsonl") if e["type"] == "started")["data"]
    predicted = estimate(config, model_config=shape, data_stats=stats, device="cuda").peak_bytes
    assert abs(predicted / measured - 1) <= 0.15, (predicted, measured)


def test_generation_stops_on_every_eos_of_the_model(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from core.infer.generate import GREEDY, answer_batch
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir).cuda()
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 107]
    seen = {}
    real = model.generate
    model.generate = lambda **kw: seen.update(kw) or real(**kw)
    answer_batch(model, tokenizer, [[{"role": "user", "content": "hi"}]], ["default"], GREEDY)
    assert 107 in seen["eos_token_id"]


def test_chat_loads_a_full_model_on_the_gpu(tiny_model_dir):
    from core.infer.chat import load_full_model
    assert next(load_full_model(tiny_model_dir).parameters()).is_cuda


def test_checkpoint_restores_cuda_rng():
    from core.train.checkpoints import restore_rng, rng_state
    torch.cuda.manual_seed_all(3)
    state = rng_state()
    expected = torch.rand(8, device="cuda")
    torch.cuda.manual_seed_all(77)
    restore_rng(state)
    assert torch.equal(torch.rand(8, device="cuda"), expected)


@pytest.mark.skipif(torch.cuda.device_count() < 2, reason="needs 2 GPUs")
@pytest.mark.parametrize("method", ["lora", "qlora"])
def test_two_gpus(tiny_config, method):
    if method == "qlora":
        pytest.importorskip("bitsandbytes")
    job = _finished(tiny_config.replace(num_processes=2, method=method, max_steps=4))
    started = next(e for e in read_events(job.dir / "events.jsonl") if e["type"] == "started")
    assert started["processes"] == 2
    assert json.loads((job.dir / "adapter" / "adapter_config.json").read_text())["r"] == tiny_config.lora_r
