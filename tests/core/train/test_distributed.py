"""Several processes through accelerate launch: the command, the sharding, the settings' checks, and
real 2-process CPU runs (gloo) of a tiny model: finish, Stop reaching every rank, resume, a killed worker."""
import math
import os
import signal
from contextlib import nullcontext
from pathlib import Path

import pytest
import torch

from core.config import RunConfig
from core.events import read_events
from core.plan.checks import check
from core.runs import summarize
from core.train import distributed
from core.train.batches import micro_batches, shard, steps_per_epoch
from tests.waiting import wait_for


def _value(cmd: list[str], flag: str) -> str:
    return cmd[cmd.index(flag) + 1]


def test_launch_command_for_two_machines(tmp_path):
    config = RunConfig(num_processes=8, num_machines=2, machine_rank=1, main_process_ip="10.0.0.5",
                       main_process_port=29500)
    assert not config.validate()
    cmd = distributed.launch_command(config, tmp_path / "run")
    assert cmd[1:3] == ["-m", "accelerate.commands.launch"]
    assert _value(cmd, "--num_processes") == "16"  # accelerate counts processes over all machines
    assert _value(cmd, "--num_machines") == "2" and _value(cmd, "--machine_rank") == "1"
    assert _value(cmd, "--main_process_ip") == "10.0.0.5" and _value(cmd, "--main_process_port") == "29500"
    assert "--multi_gpu" in cmd
    assert cmd[-4:] == ["--module", "core.train.worker", "--run", str(tmp_path / "run")]
    # the same command parses with accelerate's own parser
    from accelerate.commands.launch import launch_command_parser
    args = launch_command_parser().parse_args(cmd[3:])
    assert args.num_machines == 2 and args.module and args.training_script == "core.train.worker"


def test_strategy_flags_and_one_machine_defaults(tmp_path):
    one = distributed.launch_command(RunConfig(num_processes=2), tmp_path)
    assert _value(one, "--main_process_ip") == "127.0.0.1" and int(_value(one, "--main_process_port")) > 0
    fsdp = distributed.strategy_flags(RunConfig(num_processes=2, distributed="fsdp"))
    assert "--use_fsdp" in fsdp and _value(fsdp, "--fsdp_use_orig_params") == "true"
    ds = distributed.strategy_flags(RunConfig(num_processes=2, distributed="deepspeed", deepspeed_stage=3,
                                              deepspeed_offload=True, grad_accum=4))
    assert _value(ds, "--zero_stage") == "3" and _value(ds, "--offload_param_device") == "cpu"
    assert _value(ds, "--gradient_accumulation_steps") == "4"


def test_settings_say_plainly_what_cannot_work():
    keys = lambda config: {m.key for m in check(config)}  # noqa: E731
    assert "config.quantized_needs_ddp" in keys(RunConfig(method="qlora", num_processes=2, distributed="fsdp"))
    assert "config.needs_main_ip" in keys(RunConfig(num_machines=2, main_process_port=29500))
    assert "config.needs_main_port" in keys(RunConfig(num_machines=2, main_process_ip="10.0.0.5"))
    assert "config.machine_rank_range" in keys(RunConfig(num_machines=2, machine_rank=2))
    if not torch.cuda.is_available():
        assert "plan.strategy_needs_gpu" in keys(RunConfig(num_processes=2, distributed="fsdp"))
        assert not keys(RunConfig(num_processes=2))  # DDP over gloo runs on a CPU
    else:
        gpus = torch.cuda.device_count()
        assert "plan.more_processes_than_gpus" in keys(RunConfig(num_processes=gpus + 1))
    from core import hardware
    if not hardware.has_package("deepspeed"):
        assert "plan.needs_deepspeed" in keys(RunConfig(num_processes=2, distributed="deepspeed"))


@pytest.mark.parametrize("world, accum", [(1, 1), (2, 1), (2, 3), (3, 2)])
def test_each_example_is_trained_once_per_epoch_as_with_one_process(world, accum):
    examples = [{"id": i} for i in range(23)]
    config = RunConfig(batch_size=2, grad_accum=accum, seed=7)
    batches = micro_batches(examples, config, epoch=0)
    span = accum * world
    seen, passes = [], []
    for step in range(steps_per_epoch(len(examples), config, world)):
        group = batches[step * span:(step + 1) * span]
        mine = [shard(group, rank, world) for rank in range(world)]
        passes.append({len(m) for m in mine})
        seen += [e["id"] for m in mine for batch, weight in m if weight for e in batch]
    assert sorted(seen) == list(range(23))  # every example once, none twice (padding has weight 0)
    assert all(len(p) == 1 for p in passes)  # every rank runs as many passes as the others
    assert steps_per_epoch(len(examples), config, world) == math.ceil(math.ceil(23 / 2) / span)


def test_the_most_telling_error_line_of_the_workers(tmp_path):
    log = tmp_path / "workers.log"
    log.write_text("loading\nTraceback (most recent call last):\n  File x\nValueError: bad shape\n"
                   "=====\nRoot Cause (first observed failure):\n[0]:\n  time      : 2026\n  host      : box\n"
                   "  rank      : 1 (local_rank: 1)\n  exitcode  : -9 (pid: 77)\n  error_file: <N/A>\n"
                   "  traceback : Signal 9 (SIGKILL) received by PID 77\n=====\n")
    assert distributed.last_error_line(log) == "Signal 9 (SIGKILL) received by PID 77"
    log.write_text("Traceback (most recent call last):\nValueError: bad shape\n")
    assert distributed.last_error_line(log) == "ValueError: bad shape"


class _FakeAccelerator:
    """Rank `rank` of 2 for the trainer's own arithmetic (the collectives are the identity)."""

    def __init__(self, rank: int):
        self.process_index, self.num_processes, self.is_main_process = rank, 2, rank == 0
        self.scaler = None  # no fp16 here
        self.device = torch.device("cpu")

    def prepare(self, model, optimizer):
        return model, optimizer

    def reduce(self, tensor, reduction):
        return tensor

    def no_sync(self, model):
        return nullcontext()

    def backward(self, loss):
        loss.backward()

    def clip_grad_norm_(self, params, norm):
        return torch.nn.utils.clip_grad_norm_(params, norm)

    def wait_for_everyone(self):
        pass


def test_the_trainer_loop_gives_each_rank_its_share(tiny_config, tmp_path, monkeypatch):
    """The real loop: over one epoch the two ranks' micro-batches are the one-process epoch's, each once."""
    import threading

    from core.data.pipeline import prepare
    from core.events import EventLog
    from core.models import load_base, load_tokenizer, prepare_for_training
    from core.train import trainer as trainer_module

    config = tiny_config.replace(max_steps=0, epochs=1, batch_size=2, grad_accum=2, validation_share=0.0,
                                 eval_steps=1000, save_steps=1000, subset_share=0.1)
    tokenizer = load_tokenizer(config)
    data = prepare(config, tokenizer)
    seen = []
    real_collate = trainer_module.collate
    monkeypatch.setattr(trainer_module, "collate",
                        lambda batch, *a: seen.append([tuple(e["input_ids"]) for e in batch]) or real_collate(batch, *a))
    for rank in (0, 1):
        model = prepare_for_training(load_base(config), tokenizer, config)
        t = trainer_module.Trainer(model, tokenizer, data.train, [], config, EventLog(tmp_path / f"e{rank}.jsonl"),
                                   tmp_path, threading.Event(), accelerator=_FakeAccelerator(rank))
        assert t.total == steps_per_epoch(len(data.train), config, 2)
        seen.append("rank")
        assert t.train() == "finished"
    one = [tuple(e["input_ids"]) for b in micro_batches(data.train, config, 0) for e in b]
    trained = [e for b in seen if b != "rank" for e in b]
    # padding repeats a micro-batch at weight 0; without it every example of the epoch appears once
    assert set(trained) == set(one) and len(trained) >= len(one)


# -- real processes --------------------------------------------------------------------------------
def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    try:  # a zombie is gone for good (its parent has not reaped it yet)
        return Path(f"/proc/{pid}/stat").read_text().split()[2] != "Z"
    except OSError:
        return False


def _wait_for(condition, timeout=240):
    wait_for(condition, timeout)


def _worker_pids(job) -> list[int]:
    return distributed.worker_pids(job.dir)


@pytest.mark.slow
def test_two_processes_stop_resume_and_a_killed_worker(tiny_config):
    from core.train.job import TrainingJob

    config = tiny_config.replace(num_processes=2, max_steps=400, save_steps=2, eval_steps=1000, batch_size=2)
    job = TrainingJob(config).start()
    _wait_for(lambda: summarize(job.dir).step >= 2 and len(_worker_pids(job)) == 2)
    pids = _worker_pids(job) + [job.workers.pid]
    job.stop()  # reaches both ranks: rank 0 saves, both exit
    assert job.join(240) == "stopped"
    summary = summarize(job.dir)
    assert summary.status == "stopped" and summary.resumable
    assert not [pid for pid in pids if _alive(pid)]  # no process left behind
    started = [e for e in read_events(job.dir / "events.jsonl") if e["type"] == "started"]
    assert len(started) == 1 and started[0]["processes"] == 2 and started[0]["distributed"] == "ddp"

    again = TrainingJob(None, resume=job.name).start()  # resume through the same path
    _wait_for(lambda: summarize(again.dir).step > summary.step and len(_worker_pids(again)) == 2)
    resumed = [e for e in read_events(job.dir / "events.jsonl") if e["type"] == "resumed"]
    assert resumed and resumed[-1]["step"] >= 2
    rank1 = int((again.dir / "workers" / "rank-1.pid").read_text())
    os.kill(rank1, signal.SIGKILL)  # a worker dies: the run is marked failed with the worker's last error line
    assert again.join(240) == "failed"
    failed = summarize(again.dir)
    assert failed.status == "failed" and ("SIGKILL" in str(failed.message) or "Signal 9" in str(failed.message))
    assert not [pid for pid in _worker_pids(again) + [again.workers.pid] if _alive(pid)]


def test_loss_is_normalised_by_the_whole_steps_tokens_over_ranks(tiny_config, tmp_path, monkeypatch):
    """The ranks' gradients, averaged as DDP averages them, equal one process's gradient for the same step."""
    import threading

    from core.data.pipeline import prepare
    from core.events import EventLog
    from core.models import load_base, load_tokenizer, prepare_for_training
    from core.train.trainer import Trainer, _Window

    config = tiny_config.replace(lora_dropout=0.0, batch_size=2, validation_share=0.0, subset_share=0.1)
    tokenizer = load_tokenizer(config)
    data = prepare(config, tokenizer)
    group = micro_batches(data.train, config, 0)[:2]  # two micro-batches of unequal token counts

    def grads(config, accelerator):
        torch.manual_seed(0)
        model = prepare_for_training(load_base(config), tokenizer, config)
        t = Trainer(model, tokenizer, data.train, [], config, EventLog(tmp_path / "e.jsonl"), tmp_path,
                    threading.Event(), accelerator=accelerator)
        seen = {}
        t._clip_and_step = lambda: seen.update({n: p.grad.clone() for n, p in model.named_parameters()
                                                if p.grad is not None}) or 0.0
        t._optimizer_step(group, _Window())
        return seen

    one = grads(config.replace(grad_accum=2), None)
    ranks = [grads(config.replace(grad_accum=1), _FakeAccelerator(r)) for r in (0, 1)]
    assert one and set(one) == set(ranks[0])
    for name, g in one.items():
        torch.testing.assert_close((ranks[0][name] + ranks[1][name]) / 2, g, rtol=1e-4, atol=1e-6)


def test_a_killed_worker_is_named_from_this_launch_and_its_root_cause(tmp_path):
    """The log holds an earlier launch's SIGTERM (a Stop) and torchrun's SIGTERM of rank 0: the SIGKILL is the cause."""
    from core.train.distributed import _killed_worker_line

    log = tmp_path / "workers.log"
    earlier = "  traceback : Signal 15 (SIGTERM) received by PID 10\n"
    log.write_text(earlier + "Failures:\n  traceback : Signal 15 (SIGTERM) received by PID 20\n"
                   "Root Cause (first observed failure):\n  traceback : Signal 9 (SIGKILL) received by PID 21\n")
    assert _killed_worker_line(log, offset=len(earlier)) == "Signal 9 (SIGKILL) received by PID 21"
    log.write_text(earlier + "RuntimeError: gloo read error\n")
    assert _killed_worker_line(log, offset=len(earlier)) == ""
