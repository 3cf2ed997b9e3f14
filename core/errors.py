"""Every exception TuneLab raises on purpose, and the one place that turns any error into a sentence.

Each class is a mistake a user can make or a state they can be in; its
message (a `core.messages.Msg` where it was built from the catalogue) says
what is wrong and what to do. `explain()` is used by the CLI and the UI so
neither ever shows a bare traceback. This module imports nothing from core
but the messages, so any module may raise these without an import cycle.
"""
from __future__ import annotations

from core.messages import Msg, msg

BAD_INPUT, FAILED = 2, 1


class TuneLabError(Exception):
    """Base of the errors below: the first argument is the message for people (a Msg or a str)."""

    @property
    def message(self) -> str:
        return self.args[0] if self.args else ""


class ConfigError(TuneLabError, ValueError):
    """A config the user wrote that cannot be used; the message says why."""


class DataError(TuneLabError, ValueError):
    """Data that cannot be used; the message names the problem and the fix."""


class RowProblem(TuneLabError, ValueError):
    """One row that cannot be used; the message is the drop reason shown in the report."""


class ModelError(TuneLabError, RuntimeError):
    """A model that cannot be found or loaded; the message says what to do."""


class ChatError(TuneLabError, RuntimeError):
    """A run that cannot be chatted with (yet); the message says why."""


class ExportError(TuneLabError, RuntimeError):
    """A merge, save or Hub push that cannot be done; the message says why."""


class Busy(TuneLabError, RuntimeError):
    """Another job is using the machine; the message says which."""


class TrainingDiverged(TuneLabError, ArithmeticError):
    """The loss or gradient became NaN/inf at `step`; the weights are still those of the step before."""

    def __init__(self, step: int, value: str):
        super().__init__(f"the loss became {value} at step {step}")
        self.step, self.value = step, value


class AccessDenied(TuneLabError, PermissionError):
    """Something this user may not do here (another user's run, a path outside the allowed folders, remote
    code without the owner's flag, a public demo's limit); the message says which and what the owner can set."""


USER_ERRORS = (ConfigError, DataError, ModelError, ChatError, ExportError, Busy, AccessDenied)


def is_out_of_memory(err: BaseException) -> bool:
    """True for CUDA/CPU out-of-memory errors, whichever library raised them."""
    text = str(err).lower()
    if isinstance(err, MemoryError) or type(err).__name__ == "OutOfMemoryError":  # torch.OutOfMemoryError
        return True
    return "out of memory" in text or "can't allocate memory" in text


def explain(err: BaseException) -> tuple[str, int]:
    """(plain message, exit code) for an error; the message is a Msg where the catalogue has one."""
    if isinstance(err, USER_ERRORS):
        return err.message if isinstance(err.message, Msg) else str(err), BAD_INPUT
    if is_out_of_memory(err):
        return msg("error.out_of_memory"), FAILED
    if isinstance(err, FileNotFoundError):
        return msg("error.not_found", path=err.filename or str(err)), BAD_INPUT
    if isinstance(err, (ValueError, KeyError)):
        return str(err).strip("'\""), BAD_INPUT
    if isinstance(err, ImportError):
        return msg("error.missing_package", package=err.name or str(err)), FAILED
    detail = str(err).splitlines()[0][:300] if str(err) else ""
    return msg("error.unexpected", error=type(err).__name__, detail=detail or "-"), FAILED
