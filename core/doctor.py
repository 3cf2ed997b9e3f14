"""The error doctor: what went wrong, what it means and what to do, in plain words, for any exception.

`diagnose(err, context)` is the one path every error takes before a person sees it (the page, the
CLI, a run's "failed" event). It returns a Diagnosis: `what` happened and what to do (`todo`), both
catalogue Msgs (core/catalog/<lang>/doctor.yaml) so each page shows them in its own language, the
technical `detail` for a "Show details" part (the libraries' own words and where it happened, never
a traceback: that, `trace`, goes to the run's log and `--verbose`), and a `kind` id. `context` adds
what the caller knows (the run's settings, the planner's estimate, where the run's log is) so the
advice names real numbers.

Real exception classes are matched where the libraries have them (huggingface_hub's errors,
torch.OutOfMemoryError, errno ENOSPC); a rule that reads the message text says why in a comment.
Those classes are taken from the modules already loaded (an error can only come from a library
that is loaded), so importing this module stays light: app.py imports it before HF_HOME is set.
"""
from __future__ import annotations

import errno
import re
import sys
import traceback
from collections.abc import Callable
from dataclasses import dataclass

from core.errors import BAD_INPUT, FAILED, USER_ERRORS, TrainingDiverged
from core.messages import DEFAULT_LANG, Msg, catalog, join, msg

DETAIL_CHARS = 4000  # the traceback's tail: the frames nearest the fault and the library's text


@dataclass(frozen=True)
class Diagnosis:
    """One error, explained. `todo` is '' when `what` (a message TuneLab wrote) already says what to do."""

    kind: str
    what: Msg
    todo: Msg | str
    detail: str
    exit_code: int = FAILED
    trace: str = ""  # the whole traceback's tail: for the run's log and the CLI's --verbose, not the page

    @property
    def message(self) -> Msg:
        """`what` and `todo` as one Msg (each part localized on its own): for a status line or a log."""
        return join([self.what, self.todo]) if self.todo else self.what

    @property
    def user_error(self) -> bool:
        return self.exit_code == BAD_INPUT


def diagnose(err: BaseException, context: dict | None = None) -> Diagnosis:
    """What `err` means and what to do. `context` keys used when present: model, dataset, token (bool),
    batch_size, grad_accum, max_length, gradient_checkpointing, quantization, optimizer, precision,
    plan (the planner's estimate for these settings: core.plan.memory's Estimate.summary(), a Msg),
    good_step (the last step whose weights are saved), log (where the run's log is)."""
    ctx = dict(context or {})
    chain = _chain(err)
    text = " ".join(str(e) for e in chain).lower()
    detail, trace = _detail(err, chain), "".join(traceback.format_exception(err))[-DETAIL_CHARS:]
    for rule in RULES:
        found = rule(err, chain, text, ctx)
        if found:
            kind, what, todo, code = found
            return Diagnosis(kind, what, todo, detail, code, trace)
    what = msg("doctor.unexpected.what", error=type(err).__name__)
    log = ctx.get("log")
    todo = msg("doctor.unexpected.todo_log", log=str(log)) if log else msg("doctor.unexpected.todo")
    # a plain library ValueError/KeyError is nearly always a value the user gave (a field, a flag)
    code = BAD_INPUT if isinstance(err, (ValueError, KeyError)) else FAILED
    return Diagnosis("unexpected", what, todo, detail, code, trace)


# -- helpers -----------------------------------------------------------------
def _chain(err: BaseException) -> list[BaseException]:
    """The error and what caused it: `raise X from None` hides the cause from tracebacks, not from us."""
    seen: list[BaseException] = []
    while err is not None and err not in seen and len(seen) < 8:
        seen.append(err)
        err = err.__cause__ or err.__context__
    return seen


def _detail(err: BaseException, chain: list[BaseException]) -> str:
    """The technical words: each library error of the chain ("OSError: ..."), then where the first one was
    raised. A TuneLab error's own sentence is already the message, so only what caused it is repeated here
    (e.g. the library text `ModelError(...) from None` hides)."""
    own = isinstance(err, USER_ERRORS + (TrainingDiverged,))
    causes = chain[1:] if own else chain
    lines = [f"{type(e).__name__}: {e}".strip() for e in causes]
    raised = next((e for e in causes if e.__traceback__ is not None), None)
    if raised is not None:
        lines += [f"  at {frame.filename.rpartition('site-packages/')[2]}:{frame.lineno} in {frame.name}"
                  for frame in traceback.extract_tb(raised.__traceback__)[-3:]]
    return "\n".join(lines)[-DETAIL_CHARS:]


def _find(chain: list[BaseException], *classes: type) -> BaseException | None:
    return next((e for e in chain if isinstance(e, classes)), None)


def _loaded(module: str, *names: str) -> tuple[type, ...]:
    """Exception classes of a library, if it is loaded: if it is not, none of its errors can be in hand."""
    found = sys.modules.get(module)
    return tuple(c for c in (getattr(found, n, None) for n in names) if isinstance(c, type)) if found else ()


def _hub_error(chain: list[BaseException], *names: str) -> BaseException | None:
    classes = _loaded("huggingface_hub.errors", *names)
    return _find(chain, *classes) if classes else None


def _key(err: BaseException) -> str:
    first = err.args[0] if err.args else None
    return first.key if isinstance(first, Msg) else ""


def _param(err: BaseException, name: str) -> str:
    first = err.args[0] if err.args else None
    return str(first.params.get(name, "")) if isinstance(first, Msg) else ""


def _choice(field: str, value: str) -> Msg | str:
    """A setting's value in words (the form's own choice labels, core/catalog/*/choices.yaml) where it has them."""
    for key in (f"choice.{field}.{value}", f"choice.{value}"):
        if key in catalog(DEFAULT_LANG):
            return msg(key)
    return value


def _repo_of(text: str) -> str:
    found = re.search(r"huggingface\.co/(?:datasets/)?([\w.-]+/[\w.-]+)", text)
    return found.group(1).rstrip(".") if found else ""


Found = tuple[str, Msg, "Msg | str", int] | None
Rule = Callable[[BaseException, list, str, dict], Found]


# -- the rules, most specific first ---------------------------------------------
def _user_error(err, chain, text, ctx) -> Found:
    """TuneLab's own errors: their message is already plain; known ones get the doctor's advice too."""
    if not isinstance(err, USER_ERRORS):
        return None
    key, what = _key(err), err.message if isinstance(err.message, Msg) else str(err)
    if key == "model.needs_token" or _hub_error(chain, "GatedRepoError"):
        model = _param(err, "model") or ctx.get("model", "")
        return "gated_model", msg("doctor.gated_model.what", model=model), \
            msg("doctor.gated_model.todo", model=model), BAD_INPUT
    if key in ("data.hub_gated", "data.hub_not_found"):
        source = _param(err, "source") or ctx.get("dataset", "")
        return "private_dataset", msg("doctor.private_dataset.what", source=source), \
            msg("doctor.private_dataset.todo", source=source), BAD_INPUT
    if key == "data.hub_offline" or _offline(chain, text):
        return _offline_found(ctx.get("model") or _param(err, "model") or _param(err, "source"))
    if key in NO_TRAINABLE_KEYS:  # the message names the cause (cut answers, wrong column); the doctor the fix
        return "no_trainable_tokens", what, msg("doctor.no_trainable_tokens.todo"), BAD_INPUT
    if key in WRAPPER_KEYS and len(chain) > 1:  # "could not load X: <library text>": the cause may be known
        causes = chain[1:]
        cause_text = " ".join(str(e) for e in causes).lower()  # not the wrapper's words ("check your internet")
        for rule in RULES[1:]:
            found = rule(causes[0], causes, cause_text, ctx)
            if found:
                return found
    return "user_error", what, "", BAD_INPUT


NO_TRAINABLE_KEYS = ("data.nothing_left", "data.all_answers_cut", "data.nothing_tokenized", "data.trained_share_tiny")
# messages that wrap whatever the library raised; the doctor looks at that cause before keeping them
WRAPPER_KEYS = ("model.hub_failed", "data.load_failed", "export.push_failed")


def _diverged(err, chain, text, ctx) -> Found:
    if not isinstance(err, TrainingDiverged):
        return None
    good = ctx.get("good_step", max(0, err.step - 1))
    # train.loss_nan says what happened and what to check, in one sentence: no separate todo
    return "loss_nan", msg("train.loss_nan", value=err.value, step=err.step, good=good), "", FAILED


def _disk_full(err, chain, text, ctx) -> Found:
    # safetensors and tokenizers (Rust) raise without an errno: their text is all there is
    if not (any(getattr(e, "errno", None) == errno.ENOSPC for e in chain) or "no space left on device" in text):
        return None
    if "good_step" in ctx:  # a training run: its message names the step that was kept
        return "disk_full", msg("job.disk_full", step=ctx["good_step"]), "", FAILED
    return "disk_full", msg("doctor.disk_full.what"), msg("doctor.disk_full.todo"), FAILED


def _out_of_memory(err, chain, text, ctx) -> Found:
    oom = _find(chain, MemoryError, *_loaded("torch", "OutOfMemoryError"))
    # CPU allocation failures are a plain RuntimeError ("DefaultCPUAllocator: can't allocate memory"),
    # and older CUDA/ROCm paths raise RuntimeError("CUDA out of memory"): the text is the only sign
    if oom is None and "out of memory" not in text and "can't allocate memory" not in text:
        return None
    gpu = bool(re.search(r"\b(cuda|gpu|hip|mps|xpu)\b", text)) or (oom is not None and not isinstance(oom, MemoryError))
    where = "gpu" if gpu else "cpu"
    parts = [msg(f"doctor.oom.todo_{where}")]
    if "batch_size" in ctx and "max_length" in ctx:
        parts.append(msg("doctor.oom.now", batch_size=ctx["batch_size"], max_length=ctx["max_length"],
                         checkpointing=msg("doctor.on" if ctx.get("gradient_checkpointing") else "doctor.off"),
                         quantization=_choice("quantization", ctx.get("quantization", "none"))))
    if ctx.get("plan"):
        parts.append(msg("doctor.oom.plan", summary=ctx["plan"]))
    return f"oom_{where}", msg(f"doctor.oom.what_{where}"), join(parts), FAILED


def _cuda_faults(err, chain, text, ctx) -> Found:
    # CUDA reports these as torch.AcceleratorError / RuntimeError for every kind of fault: only the text says which
    if "device-side assert triggered" in text or "index out of range in self" in text:
        # "index out of range in self" is the CPU form of the same fault (an embedding lookup past its end)
        return "token_out_of_range", msg("doctor.token_out_of_range.what"), \
            msg("doctor.token_out_of_range.todo"), FAILED
    if ("invalid device ordinal" in text or "cannot re-initialize cuda" in text
            or "cuda has been initialized before" in text):
        return "cuda_init_order", msg("doctor.cuda_init_order.what"), msg("doctor.cuda_init_order.todo"), FAILED
    if "illegal memory access" in text:
        if "8bit" in str(ctx.get("optimizer", "")) and ctx.get("precision", "auto") != "fp32":
            return "optimizer_8bit_mixed", msg("doctor.optimizer_8bit_mixed.what", optimizer=ctx["optimizer"]), \
                msg("doctor.optimizer_8bit_mixed.todo"), BAD_INPUT
        return "gpu_fault", msg("doctor.gpu_fault.what"), msg("doctor.gpu_fault.todo"), FAILED
    return None


def _bitsandbytes(err, chain, text, ctx) -> Found:
    # bitsandbytes raises RuntimeError for every missing-backend case (no class of its own)
    signs = ("bitsandbytes native library", "supported by the bitsandbytes version", "requires bitsandbytes",
             "compatible cuda binary", "libbitsandbytes", "compiled without gpu support", "python -m bitsandbytes")
    missing = isinstance(err, ImportError) and (err.name or "").startswith("bitsandbytes")
    if not (missing or any(s in text for s in signs)):
        return None
    return "bnb_backend", msg("doctor.bnb_backend.what"), msg("doctor.bnb_backend.todo"), BAD_INPUT


def _tokenizer(err, chain, text, ctx) -> Found:
    # transformers raises a plain ValueError for both: the text names the missing piece
    if "does not have a padding token" in text:
        return "no_pad_token", msg("doctor.no_pad_token.what"), msg("doctor.no_pad_token.todo"), BAD_INPUT
    if "chat_template is not set" in text or "no chat template" in text:
        return "no_chat_template", msg("doctor.no_chat_template.what"), msg("doctor.no_chat_template.todo"), BAD_INPUT
    return None


def _architecture(err, chain, text, ctx) -> Found:
    # transformers' auto classes raise a plain ValueError/KeyError: the text is what says "unsupported"
    found = re.search(r"model type `([^`]+)`", text) or re.search(r"configuration_(\w+)\.\w+config", text)
    if not ("unrecognized configuration class" in text or "model type should be one of" in text
            or "does not recognize this architecture" in text):
        return None
    model_type = found.group(1) if found else "?"
    return "unsupported_architecture", msg("doctor.unsupported_architecture.what", model_type=model_type), \
        msg("doctor.unsupported_architecture.todo"), BAD_INPUT


def _hub(err, chain, text, ctx) -> Found:
    gated = _hub_error(chain, "GatedRepoError")
    if gated is not None:
        model = ctx.get("model") or _repo_of(str(gated))
        return "gated_model", msg("doctor.gated_model.what", model=model), \
            msg("doctor.gated_model.todo", model=model), BAD_INPUT
    if _offline(chain, text):
        return _offline_found(ctx.get("model") or ctx.get("dataset") or "")
    if _find(chain, *_loaded("datasets.exceptions", "DatasetNotFoundError")) \
            or _hub_error(chain, "RepositoryNotFoundError"):
        source = ctx.get("dataset") or ctx.get("model") or _repo_of(text)
        return "private_dataset", msg("doctor.private_dataset.what", source=source), \
            msg("doctor.private_dataset.todo", source=source), BAD_INPUT
    return None


def _offline(chain: list[BaseException], text: str) -> bool:
    if _find(chain, ConnectionError) or _hub_error(chain, "LocalEntryNotFoundError", "OfflineModeIsEnabled"):
        return True
    # the HTTP client's errors (httpx ConnectError, requests' ConnectionError) change with huggingface_hub's
    # version, and transformers re-raises them as a plain OSError: the names and the text are what stay
    names = {type(e).__name__ for e in chain}
    return bool(names & {"ConnectError", "ConnectTimeout", "ConnectionError"}) or \
        "couldn't connect to 'https://huggingface.co" in text or "couldn't reach" in text


def _offline_found(name: str) -> Found:
    return "offline", msg("doctor.offline.what", name=name or "?"), msg("doctor.offline.todo"), BAD_INPUT


def _plain_errors(err, chain, text, ctx) -> Found:
    """The Python errors the old explain() knew: a missing file, a missing package, a value with a message."""
    if isinstance(err, FileNotFoundError):
        return "not_found", msg("error.not_found", path=err.filename or str(err)), "", BAD_INPUT
    if isinstance(err, ImportError):
        return "missing_package", msg("error.missing_package", package=err.name or str(err)), "", FAILED
    if isinstance(err, (ValueError, KeyError)) and _key(err):  # core raised it with a catalogue message
        return "user_error", err.args[0], "", BAD_INPUT
    return None


def explain(err: BaseException) -> tuple[Msg, int]:
    """(what and what to do as one Msg, exit code): for a one-line status or the CLI's last line."""
    found = diagnose(err)
    return found.message, found.exit_code


RULES: tuple[Rule, ...] = (_user_error, _diverged, _disk_full, _out_of_memory, _cuda_faults, _bitsandbytes,
                           _tokenizer, _architecture, _hub, _plain_errors)
