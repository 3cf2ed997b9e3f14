"""Training a run: the job, the manager that allows one heavy job per device, the loop, its checkpoints.

- `job`          TrainingJob: one run on a background thread; loads, trains, saves, writes events.jsonl,
                 retries smaller when memory runs out
- `manager`      JobManager: one training job per device, shared by every browser; frees the chat models first
- `trainer`      the training loop (packing without padding, loss only where trained, schedulers)
- `batches`      the loop's micro-batches, step counts, rank shards, collation and loss over trained tokens
- `optimizers`   the configured optimizer over the trainable weights (fused AdamW, 8-bit kinds, LoRA+)
- `ranks`        what a step does as one rank of several (accelerate) or alone: backward, clip, step, sums
- `fastpath`     the loop's fast paths (packed attention, fused LoRA, GPU kernels, compile), each measured
- `seq2seq`      encoder-decoder models (T5, BART) in the loop: padded (source, target) batches and their loss
- `checkpoints`  atomic, resumable checkpoints (adapter/model, optimizer, scheduler, RNG)
- `distributed`  several processes/machines: the `accelerate launch` command, run as a child process group
- `worker`       one rank of such a run (`python -m core.train.worker --run RUN`), the trainer under Accelerator
- `preference`   DPO runs and the runs folder: the start adapter, votes, pairs, the policy model
- `dpo`          the DPO loss and PreferenceTrainer (the loop stepping on it)
"""
from core.train.job import TrainingJob
from core.train.manager import JobManager

__all__ = ["TrainingJob", "JobManager"]
