"""The folders a browser may read from, and the check of the local paths in a config typed there.

Allowed: each folder in TUNELAB_DATA_DIRS (separated by the system's path separator, ':' on Linux),
the built-in data, and the user's own uploads folder (an admin: every user's). A public demo allows
only the built-in data and the visitor's uploads. Each path is resolved (symlinks followed, '..'
collapsed) before the check, so a link inside an allowed folder that points out of it is refused.
"""
from __future__ import annotations

import os
from pathlib import Path

from core import home
from core.access.accounts import User
from core.access.policy import Policy, current
from core.config import RunConfig
from core.errors import AccessDenied
from core.messages import Msg, msg

BUILTIN_DATA = Path(__file__).resolve().parents[1] / "data" / "builtin"
SETTING = "TUNELAB_DATA_DIRS"


def uploads_root() -> Path:
    return home.runs_root() / "uploads"


def uploads_dir(user: User) -> Path:
    """Where this user's uploads are kept: uploads/ for the local owner, uploads/<name>/ for a named user."""
    if not user.name:
        return uploads_root()
    safe = "".join(c if c.isalnum() or c in "-_." else "-" for c in user.name).strip(".-") or "user"
    return uploads_root() / safe


def allowed_dirs(user: User, policy: Policy | None = None) -> list[Path]:
    """Resolved folders this user may read from in the browser."""
    policy = policy or current()
    mine = uploads_root() if user.admin else uploads_dir(user)
    folders = [BUILTIN_DATA, mine]
    if not policy.public_demo:
        folders += [Path(p).expanduser() for p in os.environ.get(SETTING, "").split(os.pathsep) if p.strip()]
    return [f.resolve() for f in folders]


def _inside(path: Path, folders: list[Path]) -> bool:
    return any(path == folder or path.is_relative_to(folder) for folder in folders)


def _looks_local(text: str) -> bool:
    """Whether core would read `text` from this machine's disk (it exists there, or is written as a path)."""
    path = Path(text).expanduser()
    return path.exists() or path.is_symlink() or text.startswith((".", "/", "~", "\\")) or text.count("/") > 1


def check_path(text: str, user: User, what: str, policy: Policy | None = None) -> Msg | None:
    """A refusal when `text` is a local path outside the allowed folders (or any path in a demo), else None."""
    policy = policy or current()
    text = (text or "").strip()
    if not text or text.startswith("builtin:"):
        return None
    if not _looks_local(text):  # a Hub id: nothing read from this disk
        return msg("access.demo_data_only", source=text) if policy.public_demo and what == "dataset" else None
    if policy.public_demo and what == "model":
        return msg("access.demo_no_paths", path=text)
    resolved = Path(text).expanduser().resolve()
    if not _inside(resolved, allowed_dirs(user, policy)):
        return msg("access.path_refused", path=text, what=msg(f"access.what_{what}"), setting=SETTING)
    return None


def check_local_paths(config: RunConfig, user: User, policy: Policy | None = None) -> list[Msg]:
    """Refusals for the dataset and the model when they are local paths this user may not read."""
    found = [check_path(config.dataset, user, "dataset", policy), check_path(config.model, user, "model", policy)]
    return [problem for problem in found if problem]


def require_path(text: str, user: User, what: str) -> None:
    problem = check_path(text, user, what)
    if problem:
        raise AccessDenied(problem)
