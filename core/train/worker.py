"""One rank of a multi-process run: `python -m core.train.worker --run RUN_DIR`.

`accelerate launch` starts one of these per GPU (core/train/distributed.py
builds the command). Each rank joins the process group (NCCL on GPUs, gloo on
a CPU), takes its own GPU, and runs the same TrainingJob._train_once as the
in-process route, with accelerate's Accelerator: the trainer prepares the
model and optimizer with it, trains on its shard of each step's micro-batches
and lets rank 0 save. Rank 0 writes the run's events.jsonl; the other ranks
write only a `failed` event when they fail. Stop arrives as RUN_DIR/.stop; a
rank that runs out of memory writes RUN_DIR/.oom (the app retries smaller).
"""
from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from pathlib import Path

import torch
from accelerate import Accelerator, PartialState
from accelerate.utils import DistributedDataParallelKwargs

from core.errors import USER_ERRORS, is_out_of_memory
from core.events import EventLog
from core.plan import precision as precisions
from core.train.distributed import OOM_MARK, PID_DIR, STOP_MARK
from core.train.job import TrainingJob

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_OOM = 0, 1, 2, 3
WATCH_PARENT_S = 1.0


class ErrorsOnly(EventLog):
    """The event log of a rank other than 0: only its failure is written (rank 0 writes the rest)."""

    def append(self, type: str, **fields) -> dict:
        if type == "failed":
            return super().append(type, **fields)
        return {"type": type, **fields}


class StopMark:
    """Stop, as the app asks it: the run folder's .stop file (checked before each micro-batch)."""

    def __init__(self, run_dir: Path):
        self.path = run_dir / STOP_MARK

    def is_set(self) -> bool:
        return self.path.exists()

    def set(self) -> None:
        self.path.touch()


def watch_parent(stop: StopMark) -> None:
    """If the app that started this run dies, stop as if Stop was pressed: rank 0 saves, all exit."""
    parent = int(os.environ.get("TUNELAB_PARENT_PID", "0") or 0)
    if parent <= 0:
        return

    def watch() -> None:
        while not stop.is_set():
            try:
                os.kill(parent, 0)
            except ProcessLookupError:
                stop.set()
                return
            except PermissionError:
                pass  # alive, under another user
            time.sleep(WATCH_PARENT_S)

    threading.Thread(target=watch, name="watch-app", daemon=True).start()


def make_accelerator(job: TrainingJob):
    """accelerate's Accelerator for this rank, in the precision the in-process route would pick."""
    cpu = not torch.cuda.is_available()
    state = PartialState(cpu=cpu)
    with state.main_process_first():  # rank 0 measures (and caches) the precision, the others read it
        decision = precisions.decide(job.config)
    mixed = {torch.bfloat16: "bf16", torch.float16: "fp16"}.get(decision.autocast_dtype, "no")
    # buffers (rotary tables) never change: no broadcast before each forward
    return Accelerator(cpu=cpu, mixed_precision=mixed,
                       kwargs_handlers=[DistributedDataParallelKwargs(broadcast_buffers=False)])


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="python -m core.train.worker")
    parser.add_argument("--run", required=True, help="the run folder (holds config.yaml and events.jsonl)")
    run_dir = Path(parser.parse_args(argv).run).resolve()
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    if torch.cuda.is_available():
        torch.cuda.set_device(local)  # QLoRA's device map and .to("cuda") now mean this rank's GPU
    else:  # the ranks share the cores; the trainer measures what runs fastest from here
        torch.set_num_threads(max(1, (os.cpu_count() or 1) // local_world))
    (run_dir / PID_DIR).mkdir(parents=True, exist_ok=True)
    (run_dir / PID_DIR / f"rank-{rank}.pid").write_text(str(os.getpid()))
    job = TrainingJob(None, token=os.environ.get("HF_TOKEN"), root=run_dir.parent, resume=run_dir.name)
    if rank != 0:
        job.log = ErrorsOnly(job.log.path)
    job._stop = StopMark(run_dir)
    watch_parent(job._stop)
    try:
        job.outcome = job._train_once(job.config, accelerator=make_accelerator(job))
        return EXIT_OK
    except BaseException as err:  # every failure is written down before the launcher tears the ranks down
        return _failed(job, run_dir, err)


def _failed(job: TrainingJob, run_dir: Path, err: BaseException) -> int:
    if is_out_of_memory(err):
        (run_dir / OOM_MARK).touch()  # the app retries smaller, as in-process
        return EXIT_OOM
    if not isinstance(err, Exception):  # KeyboardInterrupt, SystemExit: the launcher is tearing down
        raise err
    job._record_failure(err)  # the same plain words as in-process (bad input, diverged, disk full, a crash)
    if isinstance(err, USER_ERRORS):
        return EXIT_BAD_INPUT
    return EXIT_FAILED


if __name__ == "__main__":
    sys.exit(main())
