"""GPU-only checks: mixed precision, 4-bit QLoRA with a paged optimizer, memory reading. Skipped without CUDA."""
import pytest
import torch

from core.runs import summarize
from core.train.job import TrainingJob

pytestmark = [pytest.mark.gpu, pytest.mark.skipif(not torch.cuda.is_available(), reason="needs a CUDA GPU")]


def test_auto_precision_is_half_on_gpu():
    from core.hardware import resolve_precision
    assert resolve_precision("auto") in ("bf16", "fp16")


@pytest.mark.parametrize("method, quantization, optimizer", [
    ("lora", "none", "adamw_torch"),
    ("qlora", "4bit", "paged_adamw_32bit"),
    ("lora", "8bit", "adamw_8bit"),
])
def test_trains_on_gpu(tiny_config, method, quantization, optimizer):
    pytest.importorskip("bitsandbytes")
    config = tiny_config.replace(method=method, quantization=quantization, optimizer=optimizer,
                                 gradient_checkpointing=quantization != "none")
    job = TrainingJob(config).start()
    assert job.join(300) == "finished", job.snapshot().message
    summary = summarize(job.dir)
    assert summary.last_log["memory_mb"] > 0 and all(log["loss"] == log["loss"] for log in summary.logs)
