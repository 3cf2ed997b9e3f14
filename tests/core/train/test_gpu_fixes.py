"""The crashes and quiet errors only a GPU showed, checked from the CPU side (tests/gpu/ runs them on CUDA):
fp16 master weights, the model's own EOS list, ChatML's stop token in an export, a full model on the GPU
in chat, and the RNG state a resume restores."""
import threading

import pytest
import torch

from core import hardware
from core.config import RunConfig
from core.plan import precision as precisions
from core.train.job import load_dtype


def test_fp16_full_fine_tuning_keeps_fp32_master_weights(monkeypatch):
    monkeypatch.setattr(hardware, "device_type", lambda: "cuda")
    fp16 = precisions.Decision("fp16", "set")
    assert load_dtype(fp16, RunConfig(method="full")) == torch.float32  # GradScaler can't unscale fp16 grads
    assert load_dtype(fp16, RunConfig(method="lora")) == torch.float16  # frozen base; peft keeps adapters fp32


def test_generation_keeps_the_models_own_eos_list(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from core.data.tokenize import apply_template_choice
    from core.infer.generate import GREEDY, answer_batch, stop_token_ids
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    model.generation_config.eos_token_id = [tokenizer.eos_token_id, 107]  # like Gemma-2's [1, 107]
    assert set(stop_token_ids(model, tokenizer)) >= {tokenizer.eos_token_id, 107}
    seen = {}
    real = model.generate
    model.generate = lambda **kw: seen.update(kw) or real(**kw)
    answer_batch(model, tokenizer, [[{"role": "user", "content": "hi"}]], ["default"],
                 GREEDY.__class__(max_new_tokens=2, temperature=0))
    assert 107 in seen["eos_token_id"] and tokenizer.eos_token_id in seen["eos_token_id"]
    plain = tokenizer.__class__.from_pretrained(tiny_model_dir)
    apply_template_choice(plain, "chatml")
    assert plain.convert_tokens_to_ids("<|im_end|>") in stop_token_ids(model, plain)


def test_merged_export_stops_on_the_chatml_end_of_turn(tiny_model_dir, tokenizer, tmp_path):
    """A ChatML template on a model whose own EOS is another token: the export's generation_config has both."""
    import json

    from transformers import AutoModelForCausalLM

    from core.infer.export import merge
    from core.train.job import TrainingJob
    base = AutoModelForCausalLM.from_pretrained(tiny_model_dir)
    base.generation_config.eos_token_id = 0  # <|endoftext|>, not ChatML's <|im_end|>
    folder = tmp_path / "base"
    base.save_pretrained(folder)
    tokenizer.save_pretrained(folder)
    config = RunConfig(model=str(folder), chat_template="chatml", max_steps=1, batch_size=2, max_length=64,
                       validation_share=0.0, subset_share=0.05, eval_steps=1, save_steps=1)
    job = TrainingJob(config).start()
    assert job.join(240) == "finished", job.snapshot().message
    merged = merge(job.dir)
    eos = json.loads((merged / "generation_config.json").read_text())["eos_token_id"]
    assert 0 in eos and tokenizer.convert_tokens_to_ids("<|im_end|>") in eos


def test_chat_puts_a_fully_fine_tuned_model_on_the_device(tiny_model_dir, monkeypatch):
    from core.infer import chat
    monkeypatch.setattr(hardware, "device_type", lambda: "meta")  # stands in for "cuda": .to() is what counts
    model = chat.load_full_model(tiny_model_dir)
    assert next(model.parameters()).device.type == "meta"


def test_resume_keeps_the_checkpoints_rng_state(tiny_config, tmp_path):
    """torch.manual_seed used to run in train(), after the checkpoint's RNG state was restored."""
    from core.data.pipeline import prepare
    from core.events import EventLog
    from core.models import load_base, load_tokenizer, prepare_for_training
    from core.train.trainer import Trainer

    config = tiny_config.replace(subset_share=0.2, validation_share=0.0)
    tokenizer = load_tokenizer(config)
    data = prepare(config, tokenizer)

    def trainer():
        model = prepare_for_training(load_base(config), tokenizer, config)
        return Trainer(model, tokenizer, data.train, [], config, EventLog(tmp_path / "events.jsonl"), tmp_path,
                       threading.Event())

    first = trainer()
    first.step = 2
    torch.manual_seed(1234)
    torch.rand(7)  # an RNG state no seed gives
    saved = torch.get_rng_state()
    path = first.save_checkpoint()
    second = trainer()
    second.load_checkpoint(path)
    at_first_step = []
    second._optimizer_step = lambda group, window: at_first_step.append(torch.get_rng_state()) and None
    assert second.train() == "stopped"
    assert torch.equal(at_first_step[0], saved)


@pytest.mark.gpu
@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")
def test_checkpoints_save_and_restore_cuda_rng():
    from core.train.checkpoints import restore_rng, rng_state
    torch.cuda.manual_seed_all(5)
    state = rng_state()
    expected = torch.rand(4, device="cuda")
    torch.cuda.manual_seed_all(99)
    restore_rng(state)
    assert torch.equal(torch.rand(4, device="cuda"), expected)
