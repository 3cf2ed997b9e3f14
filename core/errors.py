"""One place that turns any exception into a sentence a user can act on.

Used by the CLI and the UI so that neither shows a bare traceback.
"""
from __future__ import annotations

from core.messages import msg

BAD_INPUT, FAILED = 2, 1


def explain(err: BaseException) -> tuple[str, int]:
    """(plain message, exit code) for an error."""
    from core.chat import ChatError
    from core.config import ConfigError
    from core.export import ExportError
    from core.formats import DataError
    from core.job import is_out_of_memory
    from core.models import ModelError

    if isinstance(err, (ConfigError, DataError, ModelError, ChatError, ExportError)):
        return str(err), BAD_INPUT
    if is_out_of_memory(err):
        return msg("error.out_of_memory"), FAILED  # a Msg: the UI shows it in the page's language
    if isinstance(err, FileNotFoundError):
        return f"File or folder not found: {err.filename or err}", BAD_INPUT
    if isinstance(err, (ValueError, KeyError)):
        return str(err).strip("'\""), BAD_INPUT
    if isinstance(err, ImportError):
        return f"A package is missing: {err.name or err}. Run 'make run' (or pip install -r requirements.txt).", FAILED
    return f"{type(err).__name__}: {str(err).splitlines()[0][:300] if str(err) else 'unexpected error'}", FAILED
