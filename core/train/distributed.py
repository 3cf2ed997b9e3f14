"""Several processes (GPUs) and several machines: the run's ranks under `accelerate launch`.

With `num_processes` > 1 (or `num_machines` > 1) the job's background thread
does not train itself: it starts

    python -m accelerate.commands.launch <strategy flags> --module core.train.worker --run RUN_DIR

as a child process group, and follows the run through the same events.jsonl
that rank 0 writes (the other ranks write nothing but their errors). The
launcher (torch's elastic agent) starts one worker per rank; each worker runs
the same training code (TrainingJob._train_once) wrapped in accelerate's
Accelerator (core/train/worker.py).

- Stop: the job writes RUN_DIR/.stop; every rank checks it before each
  micro-batch and they agree through one all-reduce, so all leave at the
  same point; rank 0 saves and writes `stopped`. Ranks that do not end within
  STOP_GRACE_S are killed (launcher group and each worker, by pid).
- A worker that dies (killed, crashed) ends the launcher with an error; when
  no rank wrote how the run ended, the job writes `failed` with the last error
  line of RUN_DIR/workers.log (every rank's stdout and stderr).
- Out of memory on any rank: the rank writes RUN_DIR/.oom; the job raises
  MemoryError and its usual retry (half the micro-batch) relaunches.
- Each worker watches the app's pid: if the app is killed, the ranks stop as
  if Stop was pressed (no process is left behind training for nobody).
"""
from __future__ import annotations

import os
import re
import signal
import socket
import subprocess
import sys
import time
from pathlib import Path

import torch

from core.config import RunConfig
from core.events import TERMINAL_TYPES, read_events
from core.messages import event_fields, msg

ROOT = Path(__file__).resolve().parents[2]
WORKER_MODULE = "core.train.worker"
STOP_MARK, OOM_MARK, LOG_NAME, PID_DIR = ".stop", ".oom", "workers.log", "workers"
STOP_GRACE_S = 300.0  # rank 0 may be saving a large model when Stop arrives
POLL_S = 0.5


def local_processes(config: RunConfig) -> int:
    """Processes on this machine: `num_processes`, or one per visible GPU for 0 (1 without a GPU)."""
    if config.num_processes == 0:
        return max(1, torch.cuda.device_count())
    return config.num_processes


def is_distributed(config: RunConfig) -> bool:
    return local_processes(config) > 1 or config.num_machines > 1


def world_size(config: RunConfig) -> int:
    return local_processes(config) * config.num_machines


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def strategy_flags(config: RunConfig) -> list[str]:
    """accelerate launch's flags for ddp / fsdp / deepspeed (accelerate reads them back in each rank)."""
    if config.distributed == "fsdp":
        # use_orig_params: LoRA's frozen and trainable weights can share FSDP's flat parameters
        return ["--use_fsdp", "--fsdp_version", "1", "--fsdp_sharding_strategy", "FULL_SHARD",
                "--fsdp_auto_wrap_policy", "TRANSFORMER_BASED_WRAP", "--fsdp_use_orig_params", "true",
                "--fsdp_state_dict_type", "FULL_STATE_DICT", "--fsdp_sync_module_states", "true"]
    if config.distributed == "deepspeed":
        offload = "cpu" if config.deepspeed_offload else "none"
        return ["--use_deepspeed", "--zero_stage", str(config.deepspeed_stage),
                "--offload_optimizer_device", offload,
                "--offload_param_device", offload if config.deepspeed_stage == 3 else "none",
                "--gradient_accumulation_steps", str(config.grad_accum),
                "--gradient_clipping", str(config.max_grad_norm or 1e9), "--zero3_init_flag", "false"]
    return ["--multi_gpu"]  # plain DDP; without a GPU torch.distributed uses gloo on the CPU


def launch_command(config: RunConfig, run_dir: Path, port: int | None = None) -> list[str]:
    """The `accelerate launch` command line for this machine's share of the run."""
    machines = config.num_machines
    ip = config.main_process_ip.strip() or "127.0.0.1"
    port = config.main_process_port or port or free_port()
    cmd = [sys.executable, "-m", "accelerate.commands.launch",
           "--num_processes", str(world_size(config)), "--num_machines", str(machines),
           "--machine_rank", str(config.machine_rank), "--main_process_ip", ip,
           "--main_process_port", str(port), "--mixed_precision", "no", "--dynamo_backend", "no"]
    cmd += strategy_flags(config)
    return cmd + ["--module", WORKER_MODULE, "--run", str(run_dir)]


def worker_env(token: str | None) -> dict:
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(p for p in (str(ROOT), env.get("PYTHONPATH", "")) if p)
    env["TUNELAB_PARENT_PID"] = str(os.getpid())  # the workers stop by themselves if the app dies
    env.setdefault("TOKENIZERS_PARALLELISM", "false")
    if token:
        env["HF_TOKEN"] = token  # in the environment, never on the command line (ps shows that)
    return env


def run(job, config: RunConfig) -> str:
    """Train `job`'s run under accelerate launch; returns 'finished', 'stopped' or 'failed'.

    Raises MemoryError when a rank ran out of memory (the job retries smaller).
    """
    run_dir = job.dir
    for mark in (STOP_MARK, OOM_MARK):
        (run_dir / mark).unlink(missing_ok=True)
    _clear(run_dir / PID_DIR)
    job._progress(msg("job.launching", processes=world_size(config), strategy=config.distributed))
    seen = len(read_events(job.log.path))
    with open(run_dir / LOG_NAME, "ab") as out:
        offset = out.tell()  # the log is appended across launches: only this launch's lines say how it ended
        proc = subprocess.Popen(launch_command(config, run_dir), cwd=ROOT, env=worker_env(job.token),
                                stdout=out, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL,
                                start_new_session=True)
    job.workers = proc
    try:
        code = _wait(proc, job._stop, run_dir)
    finally:
        end_all(proc, run_dir)
    if (run_dir / OOM_MARK).exists():
        raise MemoryError("out of memory in a training process")
    ended = [e["type"] for e in read_events(job.log.path)[seen:] if e["type"] in TERMINAL_TYPES]
    killed = _killed_worker_line(run_dir / LOG_NAME, offset) if code else ""
    if ended and ended[-1] == "failed" and killed:
        # rank 0 saw only its peer vanish (a gloo/NCCL read error); the launcher's line says which worker died and how
        job.log.append("failed", **event_fields(msg("job.worker_lost", code=code, error=killed)),
                       detail=tail(run_dir / LOG_NAME))
    if ended:
        return ended[-1]
    if code == 0 and config.machine_rank > 0:  # rank 0, on machine 0, wrote the curve and saved the adapter
        job.log.append("finished", step=0, **event_fields(msg("job.finished_elsewhere")))
        return "finished"
    error = last_error_line(run_dir / LOG_NAME)
    job.log.append("failed", **event_fields(msg("job.worker_lost", code=code, error=error)),
                   detail=tail(run_dir / LOG_NAME))
    return "failed"


def _wait(proc: subprocess.Popen, stop, run_dir: Path) -> int:
    """Wait for the launcher; pass Stop on as the stop mark, and kill what outlives the grace period."""
    stop_since = None
    while True:
        try:
            return proc.wait(timeout=POLL_S)
        except subprocess.TimeoutExpired:
            pass
        if stop.is_set() and stop_since is None:
            (run_dir / STOP_MARK).touch()
            stop_since = time.time()
        if stop_since is not None and time.time() - stop_since > STOP_GRACE_S:
            end_all(proc, run_dir)


def worker_pids(run_dir: Path) -> list[int]:
    """The ranks' pids, as each worker wrote them (torch's launcher starts each in its own session)."""
    pids = []
    for f in (run_dir / PID_DIR).glob("rank-*.pid"):
        try:
            pids.append(int(f.read_text().strip()))
        except (OSError, ValueError):
            continue
    return pids


def _is_our_worker(pid: int, run_dir: Path) -> bool:
    """The pid still runs this run's worker (not a recycled pid of something else)."""
    try:
        cmdline = Path(f"/proc/{pid}/cmdline").read_bytes().decode(errors="replace")
    except OSError:
        return False
    return WORKER_MODULE in cmdline and str(run_dir) in cmdline


def end_all(proc: subprocess.Popen, run_dir: Path) -> None:
    """Kill the launcher's process group and every rank still running (nothing is left behind)."""
    try:
        os.killpg(proc.pid, signal.SIGKILL)
    except (ProcessLookupError, PermissionError):
        pass
    for pid in worker_pids(run_dir):
        if _is_our_worker(pid, run_dir):
            try:
                os.kill(pid, signal.SIGKILL)
            except ProcessLookupError:
                pass
    try:
        proc.wait(timeout=10)
    except subprocess.TimeoutExpired:
        pass


_ERROR_WORDS = re.compile(r"(Error|Exception|Signal \d+|Killed|Traceback|exitcode)")
_NOISE = re.compile(r"^(=+|-+|\[[\d:\s]+\]:?|To enable traceback.*|error_file:.*|time\s*:.*|host\s*:.*)$")


_KILLED = re.compile(r"Signal \d+ \(\w+\) received by PID \d+")


def _killed_worker_line(log: Path, offset: int = 0) -> str:
    """The launcher's "Signal 9 (SIGKILL) received by PID …" line of the worker that died first, else ''.

    torchrun lists every rank it ended (the others get its own SIGTERM) and then the "Root Cause" one.
    """
    try:
        with log.open("rb") as f:
            f.seek(offset)
            text = f.read().decode(errors="replace")
    except OSError:
        return ""
    root = text.rsplit("Root Cause", 1)[-1] if "Root Cause" in text else text
    found = [line.strip() for line in root.splitlines() if _KILLED.search(line)]
    return found[0].removeprefix("traceback :").strip()[:300] if found else ""


def last_error_line(log: Path) -> str:
    """The most telling line of the workers' output: the last one that names an error."""
    try:
        lines = [line.strip() for line in log.read_text(errors="replace").splitlines() if line.strip()]
    except OSError:
        return "-"
    useful = [line for line in lines if not _NOISE.match(line)]
    for line in reversed(useful):
        if _ERROR_WORDS.search(line) and not line.startswith("Traceback"):
            return re.sub(r"^traceback\s*:\s*", "", line)[:300]
    return useful[-1][:300] if useful else "-"


def tail(log: Path, size: int = 4000) -> str:
    try:
        return log.read_text(errors="replace")[-size:]
    except OSError:
        return ""


def _clear(folder: Path) -> None:
    """Empty the pid folder of a previous launch of this run."""
    for f in folder.glob("*"):
        f.unlink(missing_ok=True)
