"""TrainingJob: one fine-tuning run on a background thread.

`start()` returns at once; the thread loads the model and data, trains, and
writes every step to the run's events.jsonl. `stop()` takes effect within one
micro-batch and keeps what was learned; `snapshot()` is the run's state as
rebuilt from disk, so any page or process sees the same thing. When memory
runs out the job can retry by itself with half the micro-batch and twice the
accumulation (same effective batch), then with gradient checkpointing.
"""
from __future__ import annotations

import functools
import threading
import traceback
from pathlib import Path

import torch

from core import hardware, runs
from core.config import RunConfig
from core.data.pipeline import prepare
from core.data.tokenize import apply_template_choice
from core.errors import USER_ERRORS, ConfigError, is_out_of_memory
from core.events import EventLog
from core.infer.generate import Sampling, answer_batch, build_messages
from core.messages import event_fields, join, msg
from core.models import count_parameters, load_base, load_tokenizer, prepare_for_training, save_folder
from core.plan.checks import check
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
            problems = check(config)
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
        self.owner = ""  # who started it (login name), shown when a second Start is refused

    # -- public API -------------------------------------------------------
    def start(self) -> TrainingJob:
        self.dir.mkdir(parents=True, exist_ok=True)
        if not self.resuming:
            self.config.save_yaml(self.dir / "config.yaml")
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
        except USER_ERRORS as err:
            self._fail(err.message)
        except Exception as err:
            if is_out_of_memory(err):
                self._fail(msg("error.out_of_memory"), err)
            else:
                self._fail(msg("job.failed", error=type(err).__name__, detail=str(err)[:300]), err)
        finally:
            hardware.release_memory()

    def _fail(self, message: str, err: BaseException | None = None) -> None:
        self.outcome = "failed"
        detail = "".join(traceback.format_exception(err))[-4000:] if err else ""
        self.log.append("failed", **event_fields(message), detail=detail)

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

    def _train_once(self, config: RunConfig) -> str:
        hardware.set_cpu_threads()
        torch.manual_seed(config.seed)
        tokenizer = load_tokenizer(config, self.token, self._progress)
        apply_template_choice(tokenizer, config.chat_template)
        data = prepare(config, tokenizer, self.token, self._progress)
        model = prepare_for_training(load_base(config, self.token, self._progress), tokenizer, config)
        # a partial, not a lambda: no closure keeps `model` alive past the `del` below
        trainer = Trainer(model, tokenizer, data.train, data.validation, config, self.log, self.dir,
                          self._stop, probe=functools.partial(self._probe, model, tokenizer, config))
        checkpoint = self._latest_checkpoint()
        trainable, total = count_parameters(model)
        if checkpoint:
            trainer.load_checkpoint(checkpoint)
            self.log.append("resumed", step=trainer.step, total_steps=trainer.total, checkpoint=checkpoint.name)
        else:
            self.log.append("started", model=config.model, method=config.method, total_steps=trainer.total,
                            device=hardware.device_name(), precision=hardware.resolve_precision(config.precision),
                            trainable_params=trainable, total_params=total, data=data.stats,
                            format=data.format)
        try:
            outcome = trainer.train()
        except Exception as err:
            # keep what was learned so far before reporting the failure
            if trainer.step > 0 and not is_out_of_memory(err):
                self._save_final(model, tokenizer, config)
            raise
        self._progress(msg("job.saving_adapter" if config.uses_lora else "job.saving_model"))
        self._save_final(model, tokenizer, config)
        if outcome == "stopped":
            self.log.append("stopped", step=trainer.step,
                            **event_fields(msg("job.stopped", step=trainer.step, total=trainer.total)))
        else:
            self.log.append("finished", step=trainer.step, **event_fields(msg("job.finished", steps=trainer.step)))
        del trainer, model
        return outcome

    def _save_final(self, model, tokenizer, config: RunConfig) -> None:
        """adapter/ for LoRA runs, merged/ (a full model) for full fine-tuning; written then renamed."""
        save_folder(model, tokenizer, self.dir / ("adapter" if config.uses_lora else "merged"))

    def _latest_checkpoint(self) -> Path | None:
        found = sorted(p for p in (self.dir / "checkpoints").glob("step-*") if (p / "state.json").exists())
        return found[-1] if found else None

    def _probe(self, model, tokenizer, config: RunConfig, step: int) -> None:
        """Ask the probe prompts and log the answers, so the UI can show learning as it happens."""
        prompts = config.probe_prompts[:4]
        conversations = [build_messages([], prompt, config.system_prompt) for prompt in prompts]
        answers = answer_batch(model, tokenizer, conversations, ["default"] * len(prompts), PROBE_SAMPLING)
        for prompt, text in zip(prompts, answers):
            self.log.append("sample", step=step, prompt=prompt, answer=text)

