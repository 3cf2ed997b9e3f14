"""The trainer's fast paths compute the same thing as the stock ones (tiny random Llama, CPU, seconds)."""
import pytest
import torch
from peft import LoraConfig, get_peft_model
from transformers import LlamaConfig, LlamaForCausalLM

from core.config import RunConfig
from core.data.tokenize import IGNORE
from core.train import batches as B
from core.train import fastpath as FP
from core.train.optimizers import make_optimizer


def _model(dropout=0.0, seed=0):
    torch.manual_seed(seed)
    config = LlamaConfig(vocab_size=300, hidden_size=64, intermediate_size=128, num_hidden_layers=2,
                         num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=256)
    config._attn_implementation = "sdpa"
    model = get_peft_model(LlamaForCausalLM(config), LoraConfig(r=4, lora_alpha=8, lora_dropout=dropout,
                                                                target_modules="all-linear"))
    with torch.no_grad():  # non-zero B so every adapter gets gradients
        for name, p in model.named_parameters():
            if "lora_B" in name:
                p.normal_(0, 0.05)
    model.train()
    return model


def _examples(lengths=(7, 12, 5, 9), seed=1):
    g = torch.Generator().manual_seed(seed)
    out = []
    for n in lengths:
        ids = torch.randint(3, 300, (n,), generator=g).tolist()
        out.append({"input_ids": ids, "labels": [IGNORE] * (n // 2) + ids[n // 2:]})
    return out


def _loss_and_grads(model, inputs, fast: bool):
    model.zero_grad()
    if fast:
        with FP.fast_attention(model), FP.fast_lora(model):
            loss, n = B.loss_sum(model, inputs)
            loss.backward()
    else:
        loss, n = B.loss_sum(model, inputs)
        loss.backward()
    return loss.item(), n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def test_packed_fast_path_matches_padded_stock_path():
    model, examples = _model(), _examples()
    config = RunConfig(batch_size=4)
    fast = _loss_and_grads(model, B.collate(examples, config, "cpu"), fast=True)
    stock = _loss_and_grads(model, B.collate(examples, config.replace(packing=False), "cpu"), fast=False)
    assert fast[1] == stock[1]
    assert fast[0] == pytest.approx(stock[0], rel=1e-5)
    for k in stock[2]:
        torch.testing.assert_close(fast[2][k], stock[2][k], rtol=1e-4, atol=1e-6)


def test_contexts_leave_the_model_as_they_found_it():
    model = _model()
    with FP.fast_attention(model), FP.fast_lora(model):
        assert model.config._attn_implementation == FP.PACKED_ATTENTION
        assert any("forward" in m.__dict__ for m in model.modules())
    assert model.config._attn_implementation == "sdpa"
    assert not any("forward" in m.__dict__ for m in model.modules())


def test_lora_kernel_gradients_match_reference_with_dropout():
    torch.manual_seed(0)
    x = torch.randn(2, 10, 16, requires_grad=True)
    a = torch.randn(4, 16, requires_grad=True)
    b = torch.randn(24, 4, requires_grad=True)
    p, scaling = 0.3, 2.0
    torch.manual_seed(5)
    out = FP._LoraDelta.apply(x, a, b, p, scaling)
    grads = torch.autograd.grad(out.square().sum(), (x, a, b))
    torch.manual_seed(5)
    mask, keep_scale = FP._keep_mask(x.shape, p, "cpu")
    ref = (x * mask * keep_scale) @ a.t() @ b.t() * scaling
    torch.testing.assert_close(out, ref)
    for got, want in zip(grads, torch.autograd.grad(ref.square().sum(), (x, a, b))):
        torch.testing.assert_close(got, want, rtol=1e-4, atol=1e-5)


def test_dropout_mask_keeps_the_right_share():
    torch.manual_seed(0)
    mask, scale = FP._keep_mask(torch.Size([400, 500]), 0.1, "cpu")
    assert mask.dtype == torch.bool
    assert mask.float().mean().item() == pytest.approx(0.9, abs=0.005)
    assert scale == pytest.approx(1 / 0.9, rel=1e-3)


def test_dropout_training_runs_and_eval_is_deterministic():
    model, examples = _model(dropout=0.2), _examples()
    inputs = B.collate(examples, RunConfig(batch_size=4), "cpu")
    loss, _, grads = _loss_and_grads(model, dict(inputs), fast=True)
    assert torch.isfinite(torch.tensor(loss)) and all(torch.isfinite(g).all() for g in grads.values())
    model.eval()
    with torch.no_grad(), FP.fast_attention(model), FP.fast_lora(model):
        first = B.loss_sum(model, dict(inputs))[0]
        second = B.loss_sum(model, dict(inputs))[0]
    assert first.item() == second.item()


def test_fused_adamw_on_cpu():
    model = _model()
    opt = make_optimizer(model, RunConfig(optimizer="adamw_torch"))
    assert opt.defaults.get("fused") is True


@pytest.mark.parametrize("optimizer", ["adamw_torch", "sgd", "adamw_8bit"])
def test_loraplus_gives_the_b_matrices_a_higher_rate(optimizer):
    if optimizer == "adamw_8bit":
        pytest.importorskip("bitsandbytes")
    model = _model()
    plain = make_optimizer(model, RunConfig(optimizer=optimizer, learning_rate=1e-3))
    assert [g["lr"] for g in plain.param_groups] == [1e-3]
    opt = make_optimizer(model, RunConfig(optimizer=optimizer, learning_rate=1e-3, loraplus_ratio=8))
    slow, fast = opt.param_groups  # peft's create_loraplus_optimizer, its empty groups dropped
    names = {id(p): n for n, p in model.named_parameters()}
    assert slow["lr"] == 1e-3 and fast["lr"] == pytest.approx(8e-3)
    assert fast["params"] and all(".lora_B." in names[id(p)] for p in fast["params"])
    assert slow["params"] and not any(".lora_B." in names[id(p)] for p in slow["params"])
    assert len(slow["params"]) + len(fast["params"]) == sum(p.requires_grad for p in model.parameters())
    if optimizer == "adamw_torch":
        assert opt.defaults.get("fused") is True
    # the scheduler scales both groups alike, keeping the ratio
    from transformers import get_scheduler
    scheduler = get_scheduler("cosine", opt, num_warmup_steps=0, num_training_steps=10)
    for _ in range(3):
        opt.step()
        scheduler.step()
    low, high = scheduler.get_last_lr()
    assert high == pytest.approx(8 * low)


def test_loraplus_is_refused_out_of_range():
    assert any("LoRA+" in p for p in RunConfig(loraplus_ratio=-1).validate())
    assert not RunConfig(loraplus_ratio=16).validate()


def test_lora_kernel_under_autocast_matches_peft():
    model, examples = _model(), _examples()
    inputs = B.collate(examples, RunConfig(batch_size=4), "cpu")
    with torch.autocast("cpu", dtype=torch.bfloat16):
        fast = _loss_and_grads(model, dict(inputs), fast=True)
        stock = _loss_and_grads(model, dict(inputs), fast=False)
    assert fast[0] == pytest.approx(stock[0], rel=2e-2)
    for k in stock[2]:
        assert fast[2][k].dtype == stock[2][k].dtype == torch.float32
        torch.testing.assert_close(fast[2][k], stock[2][k], rtol=0.1, atol=2e-2)


def test_liger_goes_through_its_public_per_architecture_switch(monkeypatch):
    import sys
    import types

    calls = []
    fake = types.ModuleType("liger_kernel.transformers")
    fake.apply_liger_kernel_to_llama = lambda model=None, rope=True, cross_entropy=True, \
        fused_linear_cross_entropy=True: calls.append((model, cross_entropy, fused_linear_cross_entropy))
    monkeypatch.setitem(sys.modules, "liger_kernel", types.ModuleType("liger_kernel"))
    monkeypatch.setitem(sys.modules, "liger_kernel.transformers", fake)
    monkeypatch.setattr(FP.hardware, "liger_available", lambda: True)
    model = _model()
    assert FP.apply_gpu_kernels(model) == ["liger"]
    assert calls == [(model.get_base_model(), False, False)]  # the loss stays ours: no fused cross-entropy
    model.get_base_model().config.model_type = "no_such_family"
    assert FP.apply_gpu_kernels(model) == []
