"""TrainingJob: one fine-tuning run on a background thread.

`start()` returns at once; the thread loads the model and data, trains, and
writes every step to the run's events.jsonl. `stop()` takes effect within one
micro-batch and keeps what was learned; `snapshot()` is the run's state as
rebuilt from disk, so any page or process sees the same thing. When memory
runs out the job can retry by itself with half the micro-batch and twice the
accumulation (same effective batch), then with gradient checkpointing.
"""
from __future__ import annotations

import errno
import functools
import sys
import threading
from contextlib import nullcontext
from pathlib import Path

import torch

from core import hardware, runs
from core.config import RunConfig
from core.data.pipeline import prepare
from core.data.tokenize import apply_template_choice
from core.doctor import diagnose
from core.errors import ConfigError, is_out_of_memory
from core.events import EventLog
from core.infer.generate import Sampling, answer_batch, build_messages, stop_token_ids
from core.messages import event_fields, join, msg
from core.models import count_parameters, load_base, load_tokenizer, prepare_for_training, save_folder
from core.plan import cost, memory
from core.plan import precision as precisions
from core.plan.checks import check
from core.train import checkpoints, distributed, dpo, preference, trackers
from core.train.trainer import Trainer

PROBE_SAMPLING = Sampling(max_new_tokens=48, temperature=0, repetition_penalty=1.0)


class TrainingJob:
    def __init__(self, config: RunConfig, token: str | None = None, root: Path | None = None,
                 resume: str | None = None):
        """A new run, or (with `resume=<run name>`) the continuation of an interrupted/stopped one."""
        self.token = token
        self.root = root or runs.runs_root()
        if resume:
            self.name = resume
            self.dir = runs.run_dir(resume, self.root)
            self.config = RunConfig.load_yaml(self.dir / "config.yaml")
        else:
            problems = check(config) + preference.problems(config, self.root)  # DPO: the start run, its adapter
            if problems:
                raise ConfigError(join(problems))  # each problem stays a Msg, shown in the page's language
            self.name = runs.new_run_name(config.run_name, self.root)
            self.config = config.replace(run_name=self.name)
            self.dir = runs.run_dir(self.name, self.root)
        self.resuming = bool(resume)
        self.log = EventLog(self.dir / "events.jsonl")
        self._stop = threading.Event()
        self._thread: threading.Thread | None = None
        self.outcome: str | None = None
        self.workers = None  # with several processes: the `accelerate launch` child (core/train/distributed.py)
        self._good_step = 0  # the step whose weights are safe on disk (named when the run fails)
        self.owner = ""  # who started it (login name), shown when a second Start is refused

    # -- public API -------------------------------------------------------
    def start(self) -> TrainingJob:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.resuming:
            self.config = preference.freeze_votes(self.config, self.dir, self.root)  # votes:RUN -> a file here
            self.config.save_yaml(self.dir / "config.yaml")
        runs.prune_uploads(self.root)  # after our config names its upload: only unused ones go
        self._progress(msg("job.preparing"))  # written before returning, so the run is listed at once
        self._thread = threading.Thread(target=self._run, name=f"train-{self.name}", daemon=True)
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stop.set()

    def join(self, timeout: float | None = None) -> str | None:
        if self._thread:
            self._thread.join(timeout)
        return self.outcome

    @property
    def running(self) -> bool:
        return bool(self._thread and self._thread.is_alive())

    def snapshot(self) -> runs.RunSummary:
        return runs.summarize(self.dir, active=self.running)

    # -- the thread -------------------------------------------------------
    def _run(self) -> None:
        config = self.config
        try:
            while True:
                try:
                    self.outcome = self._train_once(config)
                    return
                except Exception as err:
                    if not (is_out_of_memory(err) and config.oom_retry):
                        raise
                    config = self._smaller(config, err)
        except Exception as err:
            self._record_failure(err)
        finally:
            hardware.release_memory()

    def _record_failure(self, err: Exception) -> None:
        """Write how a run that raised `err` ended, in plain words (each rank of a multi-process run too)."""
        if isinstance(err, DataChanged):  # still resumable (stopped): put the old data back and Resume works
            self.outcome = "stopped"
            self.log.append("stopped", step=err.step, **event_fields(msg("job.data_changed")))
            return
        found = diagnose(err, self._doctor_context(err))  # what it means, what to do, the library's words
        self._fail(found.message, found.detail, found.kind, found.trace, bad_input=found.user_error)

    def _doctor_context(self, err: BaseException) -> dict:
        """What core.doctor needs to name real numbers: this run's settings, the planner's estimate on OOM."""
        c = self.config
        context = dict(model=c.model, dataset=c.dataset, token=bool(self.token), batch_size=c.batch_size,
                       grad_accum=c.grad_accum, max_length=c.max_length, optimizer=c.optimizer,
                       gradient_checkpointing=c.gradient_checkpointing, quantization=c.effective_quantization,
                       precision=c.precision, good_step=self._good_step, log=str(self.dir / "events.jsonl"))
        if is_out_of_memory(err):
            try:
                plan = memory.estimate(c)
            except Exception:  # the estimate is extra advice: a failure here must not hide the real error
                return context
            if plan.peak_bytes:
                context["plan"] = plan.summary()  # "needs 9 GB of 8 GB — try: ...", in the page's language
        return context

    def _fail(self, message: str, detail: str = "", kind: str = "", trace: str = "", bad_input: bool = False) -> None:
        """`detail` is shown folded in the page; `trace` (the traceback) stays in events.jsonl for whoever debugs."""
        self.outcome = "failed"
        try:  # EventLog frees its reserve on a full disk; should even that fail, say it on the console
            self.log.append("failed", **event_fields(message), detail=detail, kind=kind, trace=trace,
                            bad_input=bad_input)  # the user can fix it (the CLI exits 2)
        except OSError:
            print(f"{self.name}: {message}", file=sys.stderr)

    def _smaller(self, config: RunConfig, err: BaseException) -> RunConfig:
        hardware.release_memory()
        if config.batch_size > 1:
            new = config.replace(batch_size=config.batch_size // 2, grad_accum=config.grad_accum * 2)
            notice = msg("job.oom_retry_batch", batch_from=config.batch_size, batch_to=new.batch_size,
                         accum_from=config.grad_accum, accum_to=new.grad_accum)
        elif not config.gradient_checkpointing:
            new, notice = config.replace(gradient_checkpointing=True), msg("job.oom_retry_checkpointing")
        else:
            raise err
        self.log.append("notice", **event_fields(notice),
                        batch_size=new.batch_size, grad_accum=new.grad_accum,
                        gradient_checkpointing=new.gradient_checkpointing)
        new.save_yaml(self.dir / "config.yaml")
        self.config = new
        return new

    def _progress(self, message: str) -> None:
        """A phase line; a Msg (from core.messages) also writes its key and params so the UI can translate it."""
        self.log.append("progress", **event_fields(message))

    def _train_once(self, config: RunConfig, accelerator=None) -> str:
        """Load, train, save. With several processes this thread starts them (core/train/distributed.py)
        instead; each of them runs this again with its `accelerator` (core/train/worker.py)."""
        if accelerator is None and distributed.is_distributed(config):
            return distributed.run(self, config)
        if accelerator is None:
            hardware.set_cpu_threads()
        torch.manual_seed(config.seed)  # the same LoRA initialisation on every rank
        with accelerator.main_process_first() if accelerator else nullcontext():  # caches are written once
            tokenizer = load_tokenizer(config, self.token, self._progress)
            apply_template_choice(tokenizer, config.chat_template)
            data = (preference.prepare if preference.is_dpo(config) else prepare)(config, tokenizer, self.token,
                                                                                  self._progress)
        self._progress(msg("precision.measuring"))
        decision = precisions.decide(config)  # measured on this machine (cached): the dtype to load the base in
        self._progress(decision.reason)
        base = load_base(config, self.token, self._progress, dtype=load_dtype(decision, config))
        precisions.cast_linears(base, decision)  # bf16 weights on CPU: the linears in bf16, the residual stream fp32
        model = preference.policy_model(base, tokenizer, config, self.root) if preference.is_dpo(config) \
            else prepare_for_training(base, tokenizer, config)
        del base
        # a partial, not a lambda: no closure keeps `model` alive past the `del` below
        probe = functools.partial(self._probe, model, tokenizer, config)
        if accelerator and config.distributed != "ddp":  # sharded weights: no rank can generate or checkpoint alone
            probe = None
            self.log.append("notice", **event_fields(msg("job.sharded_limits", strategy=config.distributed)))
        if accelerator is None or accelerator.is_main_process:  # report_to: the same events, to the tracker too
            self.log = trackers.attach(self.log, config, self.dir, self.name)
        engine = dpo.PreferenceTrainer if preference.is_dpo(config) else Trainer
        trainer = engine(model, tokenizer, data.train, data.validation, config, self.log, self.dir,
                          self._stop, probe=probe, precision=decision, accelerator=accelerator)
        self._check_same_data(data)
        checkpoint = self._restore(trainer)
        trainable, total = count_parameters(model)
        self._good_step = trainer.step
        if checkpoint or self._started_before():  # one curve: a resume never writes a second "started"
            self.log.append("resumed", step=trainer.step, total_steps=trainer.total,
                            checkpoint=checkpoint.name if checkpoint else "")
        else:
            self.log.append("started", model=config.model, method=config.method, total_steps=trainer.total,
                            objective=config.objective,
                            device=hardware.device_name(), precision=decision.mode,
                            trainable_params=trainable, total_params=total, data=data.stats,
                            format=data.format, processes=trainer.world,
                            distributed=config.distributed if trainer.world > 1 else "none")
            # the time this run should train, from the same planner as the page's estimate before Start
            cost.record(self.log, cost.run_seconds(config, data.stats, trainer.total, trainer.per_epoch,
                                                   model_config=getattr(model, "config", None)))
        self.log.append("notice", **event_fields(decision.reason), precision=decision.mode)  # what was picked, why
        try:
            outcome = trainer.train()
        except Exception as err:
            # keep what was learned so far before reporting the failure (not half-NaN weights, not onto a full disk)
            self._good_step = trainer.saved_step
            # (with sharded weights saving needs every rank, and one has failed)
            if trainer.step > 0 and not is_out_of_memory(err) and not _disk_full(err) and _finite(trainer.params) \
                    and (accelerator is None or config.distributed == "ddp"):
                self._save_final(model, tokenizer, config, trainer)
                self._good_step = trainer.step
            raise
        if outcome == "stopped" and trainer.step > trainer.saved_step:
            trainer.save_checkpoint()  # Resume continues from exactly this step
        self._good_step = trainer.saved_step
        self._progress(msg("job.saving_adapter" if config.uses_lora else "job.saving_model"))
        self._save_final(model, tokenizer, config, trainer)
        if outcome == "stopped":
            self.log.append("stopped", step=trainer.step,
                            **event_fields(msg("job.stopped", step=trainer.step, total=trainer.total)))
        else:
            self.log.append("finished", step=trainer.step, **event_fields(msg("job.finished", steps=trainer.step)))
        del trainer, model
        return outcome

    def _save_final(self, model, tokenizer, config: RunConfig, trainer: Trainer | None = None) -> None:
        """adapter/ for LoRA runs, merged/ (a full model) for full fine-tuning; written then renamed.

        With several processes rank 0 writes it: with DDP its own copy is the whole model; FSDP and
        DeepSpeed first gather the sharded weights (every rank takes part).
        """
        target = self.dir / ("adapter" if config.uses_lora else "merged")
        acc = trainer.acc if trainer else None
        gathered = acc.get_state_dict(trainer.model) if acc and config.distributed != "ddp" else None
        if acc and not acc.is_main_process:
            return
        if not config.uses_lora:  # the template's end-of-turn token stops generation with plain transformers too
            model.generation_config.eos_token_id = stop_token_ids(model, tokenizer)
        save_folder(model, tokenizer, target, state_dict=gathered)

    def _restore(self, trainer: Trainer) -> Path | None:
        """Load the newest checkpoint that reads; a corrupt one is skipped with a notice."""
        for checkpoint in checkpoints.resumable_checkpoints(self.dir):
            try:
                trainer.load_checkpoint(checkpoint)
                return checkpoint
            except Exception as err:  # torn or corrupt files: any reader error
                error = (str(err).splitlines() or [type(err).__name__])[0][:160]
                self.log.append("notice", **event_fields(msg("job.checkpoint_skipped", name=checkpoint.name,
                                                             error=error)))
        trainer.step = 0
        return None

    def _started_before(self) -> bool:
        return self.resuming and any(e["type"] == "started" for e in self.log.read())

    def _check_same_data(self, data) -> None:
        """A new run records its rows' fingerprint; a resume refuses when the rows are no longer the same."""
        path = self.dir / "data.sha256"
        fingerprint = checkpoints.data_fingerprint(data.train, data.validation)
        if self.resuming and path.exists() and path.read_text().strip() != fingerprint:
            raise DataChanged(runs.summarize(self.dir, active=True).step)
        if not path.exists():
            path.write_text(fingerprint + "\n")

    def _probe(self, model, tokenizer, config: RunConfig, step: int) -> None:
        """Ask the probe prompts and log the answers, so the UI can show learning as it happens."""
        prompts = config.probe_prompts[:4]
        conversations = [build_messages([], prompt, config.system_prompt) for prompt in prompts]
        answers = answer_batch(model, tokenizer, conversations, ["default"] * len(prompts), PROBE_SAMPLING)
        for prompt, text in zip(prompts, answers):
            self.log.append("sample", step=step, prompt=prompt, answer=text)


def load_dtype(decision: precisions.Decision, config: RunConfig) -> torch.dtype:
    """The dtype to load the base in. Full fine-tuning in fp16 keeps fp32 master weights under fp16
    autocast: fp16 weights give fp16 gradients, which GradScaler.unscale_ refuses."""
    dtype = decision.weights_dtype
    return torch.float32 if dtype == torch.float16 and not config.uses_lora else dtype


class DataChanged(Exception):
    """Resume found other training rows than the run started with (`step`: where the run stands)."""

    def __init__(self, step: int):
        super().__init__(step)
        self.step = step


def _disk_full(err: BaseException) -> bool:
    return isinstance(err, OSError) and err.errno == errno.ENOSPC


def _finite(params) -> bool:
    return all(bool(torch.isfinite(p).all()) for p in params)
