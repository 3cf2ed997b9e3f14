"""core.plan.memory.estimate on a tiny Llama config: no model is loaded, nothing is downloaded."""
import re

import pytest
from transformers import LlamaConfig

from core.config import RunConfig
from core.messages import Msg, localize
from core.plan.memory import Estimate, estimate
from core.plan.model_shape import shape_of

TINY = LlamaConfig(vocab_size=32000, hidden_size=256, intermediate_size=688, num_hidden_layers=4,
                   num_attention_heads=8, num_key_value_heads=4, tie_word_embeddings=False)
BIG = LlamaConfig(vocab_size=128256, hidden_size=4096, intermediate_size=14336, num_hidden_layers=32,
                  num_attention_heads=32, num_key_value_heads=8, tie_word_embeddings=False)  # Llama-3-8B's shape
GB = 2**30
HANGUL = re.compile("[가-힣]")


def peak(config: RunConfig, model_config=TINY, **kw) -> int:
    return estimate(config, model_config=model_config, available_bytes=64 * GB, **kw).peak_bytes


def test_result_has_the_promised_fields():
    e = estimate(RunConfig(), model_config=TINY)
    assert isinstance(e, Estimate)
    assert e.peak_bytes == sum(e.breakdown.values()) and e.available_bytes > 0 and isinstance(e.fits, bool)
    assert {"weights", "gradients", "optimizer", "activations", "framework"} <= set(e.breakdown)
    assert all(v >= 0 for v in e.breakdown.values())
    assert isinstance(e.summary_text(), str) and isinstance(e.summary_text("ko"), str)


def test_parameter_count_matches_transformers():
    from transformers import LlamaForCausalLM
    model = LlamaForCausalLM(TINY)
    assert shape_of(TINY).total_params == sum(p.numel() for p in model.parameters())


@pytest.mark.parametrize("key", ["batch_size", "max_length"])
def test_monotonic_in_batch_and_length(key):
    values = [1, 2, 4, 8] if key == "batch_size" else [64, 128, 256, 512]
    peaks = [peak(RunConfig(**{key: v})) for v in values]
    assert peaks == sorted(peaks) and len(set(peaks)) == len(peaks)


def test_precision_and_quantization_order_the_weights():
    weights = {q: estimate(RunConfig(method="lora", quantization=q), model_config=BIG, device="cuda",
                           available_bytes=80 * GB).breakdown["weights"] for q in ("none", "8bit", "4bit")}
    fp32 = estimate(RunConfig(method="lora", precision="fp32"), model_config=BIG, device="cuda",
                    available_bytes=80 * GB).breakdown["weights"]
    assert weights["4bit"] < weights["8bit"] < weights["none"] < fp32
    assert 0.25 < weights["4bit"] / weights["none"] < 0.4  # ~0.5 byte + constants vs 2 bytes, embeddings unquantized
    assert peak(RunConfig(method="qlora"), BIG) < peak(RunConfig(method="lora", precision="fp32"), BIG)


def test_gradient_checkpointing_reduces_activations():
    plain = estimate(RunConfig(batch_size=8, max_length=1024), model_config=TINY)
    ckpt = estimate(RunConfig(batch_size=8, max_length=1024, gradient_checkpointing=True), model_config=TINY)
    assert ckpt.breakdown["activations"] < plain.breakdown["activations"] / 2
    assert ckpt.peak_bytes < plain.peak_bytes


def test_optimizer_states_by_type():
    full = lambda opt: estimate(RunConfig(method="full", optimizer=opt), model_config=TINY).breakdown["optimizer"]
    n = shape_of(TINY).total_params
    assert full("adamw_torch") == pytest.approx(8 * n, rel=0.01)       # fp32 on CPU: 2 x 4 bytes
    assert full("adamw_8bit") == pytest.approx(2 * n, rel=0.05)
    assert full("sgd") == pytest.approx(4 * n, rel=0.01)
    lora = estimate(RunConfig(method="lora"), model_config=TINY)
    assert lora.breakdown["optimizer"] < full("adamw_torch") / 20


def test_lora_needs_less_than_full_fine_tuning():
    assert peak(RunConfig(method="lora")) < peak(RunConfig(method="full"))


def test_fits_flag_follows_available_memory():
    config = RunConfig(batch_size=4, max_length=512)
    need = estimate(config, model_config=TINY).peak_bytes
    assert estimate(config, model_config=TINY, available_bytes=need + 1).fits is True
    small = estimate(config, model_config=TINY, available_bytes=need // 2)
    assert small.fits is False and "Does not fit" in small.summary_text()


def test_advice_when_it_does_not_fit():
    config = RunConfig(method="full", batch_size=16, max_length=4096)
    e = estimate(config, model_config=BIG, device="cuda", available_bytes=24 * GB)
    assert e.fits is False and e.advice
    text = " ".join(e.advice).lower()
    assert "gradient checkpointing" in text and "batch size" in text
    assert "together" in text and "qlora" in text  # no single change is enough here: a combination that fits
    assert "try:" in e.summary_text() and "GB" in e.summary_text()
    assert e.summary_text("ko") != e.summary_text("en")


def test_no_advice_when_it_fits():
    e = estimate(RunConfig(batch_size=1, max_length=128), model_config=TINY, available_bytes=64 * GB)
    assert e.fits and e.advice == [] and e.summary_text().startswith("Fits on")


def test_data_stats_replace_the_worst_case():
    config = RunConfig(max_length=2048)
    worst = peak(config)
    known = peak(config, data_stats={"length_max": 200, "trained_share": 0.4, "tokens": 10000})
    assert known < worst


def test_time_per_epoch_needs_tokens():
    assert estimate(RunConfig(), model_config=TINY).seconds_per_epoch is None
    e = estimate(RunConfig(), n_train_tokens=100_000, model_config=TINY)
    f = estimate(RunConfig(), n_train_tokens=200_000, model_config=TINY)
    assert e.seconds_per_epoch and f.seconds_per_epoch == pytest.approx(2 * e.seconds_per_epoch, rel=0.3)


def test_unknown_model_is_a_clear_unknown(monkeypatch):
    from core.plan import model_shape
    monkeypatch.setattr(model_shape, "_hub_reachable", lambda timeout=2.0: False)
    e = estimate(RunConfig(model="someone/not-cached-model-xyz"))
    assert e.peak_bytes is None and e.fits is None and e.reason
    assert "not available" in e.summary_text()


# --- its words: from the catalogue, in the page's language -----------------------------------------
# Names that stay as they are in Korean text: units, devices, methods, settings.
NAMES = re.compile(r"(?<![A-Za-z])(GB|MB|CPU|CUDA|LoRA|QLoRA|adamw_8bit|Hugging Face Hub|someone/not-cached-model-xyz)"
                   r"(?![A-Za-z])")


def _summaries(monkeypatch) -> list:
    from core.plan import model_shape
    monkeypatch.setattr(model_shape, "_hub_reachable", lambda timeout=2.0: False)
    full = RunConfig(method="full", batch_size=16, max_length=4096)
    need = estimate(RunConfig(), model_config=TINY).peak_bytes
    return [
        estimate(RunConfig(), n_train_tokens=100_000, model_config=TINY, available_bytes=64 * GB),     # fits, with time
        estimate(RunConfig(), model_config=TINY, available_bytes=int(need * 1.05)),                     # tight
        estimate(full, model_config=BIG, device="cuda", available_bytes=24 * GB),                       # advice + together
        estimate(RunConfig(batch_size=1, max_length=256), model_config=BIG, available_bytes=GB),         # nothing fits
        estimate(RunConfig(model="someone/not-cached-model-xyz")),                                       # unknown
    ]


def test_summary_in_korean_has_no_english_and_english_no_korean(monkeypatch):
    estimates = _summaries(monkeypatch)
    kinds = {e.summary().key for e in estimates}
    assert {"plan.with_epoch", "plan.tight", "plan.no_fit_try", "plan.unknown"} <= kinds, kinds
    for e in estimates:
        english, korean = e.summary_text("en"), e.summary_text("ko")
        assert english == e.summary() and not HANGUL.search(english), english
        assert HANGUL.search(korean), korean
        leftover = re.findall(r"[A-Za-z]{3,}", NAMES.sub("", korean))
        assert not leftover, (leftover, korean)


def test_advice_and_assumptions_are_catalogue_messages():
    e = estimate(RunConfig(method="full", batch_size=16, max_length=4096), model_config=BIG, device="cuda",
                 available_bytes=24 * GB)
    assert e.advice and all(isinstance(a, Msg) and a.key.startswith("plan.") for a in e.advice)
    assert e.assumptions and all(isinstance(a, Msg) and HANGUL.search(localize(a, "ko")) for a in e.assumptions)
    together = localize(e.advice[-1], "ko")
    assert together.startswith("함께 적용: ") and " + " in together and "gradient" not in together
