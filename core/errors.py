"""Every exception TuneLab raises on purpose.

Each class is a mistake a user can make or a state they can be in; its
message (a `core.messages.Msg` where it was built from the catalogue) says
what is wrong and what to do. Turning any error (these and the libraries')
into what it means and what to do is core.doctor's job: the CLI and the UI
ask it, so neither ever shows a bare traceback. This module imports nothing
from core, so any module may raise these without an import cycle.
"""
from __future__ import annotations

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
