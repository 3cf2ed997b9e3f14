"""Who started a run, and who may see and act on it.

The owner is written to runs/<run>/owner.json before the run's first event, so a
run is never listed without one. An admin sees and acts on every run; other users
only on their own; a run with no owner (the CLI's, or one made before accounts
existed) belongs to the admins.
"""
from __future__ import annotations

import json
from pathlib import Path

from core.access.accounts import User
from core.errors import AccessDenied
from core.messages import msg

OWNER_FILE = "owner.json"


def write_owner(run_dir: Path, user: User) -> None:
    run_dir.mkdir(parents=True, exist_ok=True)
    (run_dir / OWNER_FILE).write_text(json.dumps({"user": user.name}), encoding="utf-8")


def owner_of(run_dir: Path) -> str:
    """The user name that started the run; '' when unknown."""
    try:
        return str(json.loads((run_dir / OWNER_FILE).read_text(encoding="utf-8")).get("user", ""))
    except (OSError, ValueError, AttributeError):
        return ""


def can_act(user: User | None, owner: str) -> bool:
    """None (the CLI) and admins may act on every run; others on runs they own."""
    return user is None or user.admin or (bool(user.name) and user.name == owner)


def require_owner(user: User | None, run_dir: Path) -> None:
    """Refuse with a plain message (not naming the owner) unless `user` may act on the run."""
    if not can_act(user, owner_of(run_dir)):
        raise AccessDenied(msg("access.not_your_run", run=run_dir.name))
