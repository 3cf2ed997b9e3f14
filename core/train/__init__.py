"""Training a run: the job, the manager that allows one heavy job per device, the loop, its checkpoints.

- `job`          TrainingJob: one run on a background thread; loads, trains, saves, writes events.jsonl,
                 retries smaller when memory runs out
- `manager`      JobManager: one training job per device, shared by every browser; frees the chat models first
- `trainer`      the training loop (packing without padding, loss only where trained, LoRA+, schedulers)
- `fastpath`     the loop's fast paths (packed attention, fused LoRA, GPU kernels, compile), each measured
- `seq2seq`      encoder-decoder models (T5, BART) in the loop: padded (source, target) batches and their loss
- `checkpoints`  atomic, resumable checkpoints (adapter/model, optimizer, scheduler, RNG)
- `distributed`  several processes/machines: the `accelerate launch` command, run as a child process group
- `worker`       one rank of such a run (`python -m core.train.worker --run RUN`), the trainer under Accelerator
"""
from core.train.job import TrainingJob
from core.train.manager import JobManager

__all__ = ["TrainingJob", "JobManager"]
