"""Who is using the app: a password login (TUNELAB_USERS / TUNELAB_AUTH), "Sign in with Hugging Face" on a
Space, a public demo's visitor, or the local owner.

A Space turns sign-in on with `hf_oauth: true` in its README front matter; the
platform then sets OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OPENID_PROVIDER_URL
and OAUTH_SCOPES, and gradio's `gr.LoginButton` does the rest. Any Hugging Face
account can sign in, so only the usernames in TUNELAB_HF_USERS (and
TUNELAB_ADMINS) are let in: `user_of()` refuses everyone else, and every action
of the page asks it first. `who()` names the person behind a request.

With no login configured (the app on loopback) the visitor is the local owner, an
admin. In a public demo each browser session is its own visitor ("demo-…"), who
sees only the runs it started.
"""
from __future__ import annotations

import os
import secrets
import shutil
import time
from importlib.util import find_spec
from pathlib import Path
from typing import Any

from core.access import LOCAL_OWNER, Accounts, User
from core.errors import AccessDenied
from core.messages import Msg, msg

OAUTH_VARS = ("OAUTH_CLIENT_ID", "OAUTH_CLIENT_SECRET", "OPENID_PROVIDER_URL", "OAUTH_SCOPES")
OAUTH_PACKAGES = ("authlib", "itsdangerous")  # gradio[oauth]: the real sign-in routes and the session cookie


def sign_in_requested() -> bool:
    """True when the platform has set up Hugging Face sign-in (every OAuth variable is set)."""
    return all(os.environ.get(name) for name in OAUTH_VARS)


def sign_in_blocker() -> Msg | None:
    """Why a requested sign-in can't be offered here, or None when it can."""
    # gradio's own test for a Space (gradio.utils.get_space). Elsewhere gradio swaps in a mock sign-in that
    # asks the Hub who this machine's token belongs to when the server starts (a crash offline) and then
    # signs every visitor in as that account: worse than no button.
    if os.environ.get("SYSTEM") != "spaces":
        return msg("host.sign_in_local")
    missing = [name for name in OAUTH_PACKAGES if find_spec(name) is None]
    if missing:
        return msg("host.sign_in_packages", packages=", ".join(missing))
    return None


def sign_in_enabled() -> bool:
    """Show the "Sign in with Hugging Face" button: requested by the Space, and able to work here."""
    return sign_in_requested() and sign_in_blocker() is None


def who(request: Any = None, profile: Any = None) -> str:
    """The person behind a request: the Hugging Face username when signed in, else the --auth user, else ''.

    `request` is a gr.Request and `profile` a gr.OAuthProfile (None when not signed in); gradio passes
    the profile to an event handler that has a parameter annotated `gr.OAuthProfile | None`.
    """
    username = getattr(profile, "username", None) if profile is not None else None
    if username:
        return str(username)
    return str(getattr(request, "username", None) or "") if request is not None else ""


class _Setup:
    """What ui/launch.py configured: the accounts, the Hugging Face names let in, demo mode."""
    accounts: Accounts = Accounts()
    hf_users: frozenset = frozenset()
    demo: bool = False


def configure(accounts: Accounts, hf_users: set[str] | None = None, demo: bool = False) -> None:
    _Setup.accounts, _Setup.hf_users, _Setup.demo = accounts, frozenset(hf_users or ()), demo


def hf_users_from_env() -> set[str]:
    """TUNELAB_HF_USERS: the Hugging Face usernames (comma-separated) that may use the app after signing in."""
    return {name.strip() for name in os.environ.get("TUNELAB_HF_USERS", "").split(",") if name.strip()}


def login_configured() -> bool:
    """Whether anything keeps strangers out: accounts, or a Hugging Face sign-in limited to listed names."""
    return bool(_Setup.accounts) or (bool(_Setup.hf_users) and sign_in_enabled())


def user_of(request: Any = None, profile: Any = None) -> User:
    """The User behind a request; AccessDenied when nobody allowed is signed in."""
    name = who(None, profile)  # a Hugging Face sign-in
    if name:
        if name in _Setup.hf_users or name in _Setup.accounts.admins:
            return _Setup.accounts.user(name)
        raise AccessDenied(msg("access.hf_user_not_listed", user=name))
    login = who(request)  # the password login gradio checked
    if login:
        return _Setup.accounts.user(login)
    if _Setup.demo:
        session = str(getattr(request, "session_hash", None) or "anonymous")
        return User(f"demo-{session[:12]}")
    if login_configured():
        raise AccessDenied(msg("access.sign_in_first"))
    return LOCAL_OWNER


def own_run(manager: Any, name: str | None, request: Any = None, profile: Any = None) -> User:
    """The User behind a request, after checking they may act on run `name` (AccessDenied otherwise)."""
    user = user_of(request, profile)
    if name:
        manager.summary(name, user)
    return user


def hub_token(typed: str | None, session: str | None, user: User) -> str | None:
    """The Hub token for this user's call: typed here, else their browser session's (Train tab); the
    server's HF_TOKEN only for an admin, so one user never pushes or downloads with the owner's token."""
    token = (typed or "").strip() or (session or "").strip()
    return token or (os.environ.get("HF_TOKEN") if user.admin else None)


DOWNLOAD_DIR = ".downloads"
DOWNLOAD_HOURS = 6


def private_download(path: Path, root: Path) -> str:
    """A link to `path` for this request only: a hard link (or copy) in a folder named by a random token,
    served in place (no copy into gradio's cache). Nothing else of the runs folder is served, so another
    user cannot guess a URL to someone's archive; links older than a few hours are removed."""
    import gradio as gr  # noqa: PLC0415 - `import ui.identity` stays light for ui/launch's argument checks

    folder = root / DOWNLOAD_DIR
    for old in folder.iterdir() if folder.exists() else []:
        if old.is_dir() and old.stat().st_mtime < time.time() - DOWNLOAD_HOURS * 3600:
            shutil.rmtree(old, ignore_errors=True)
    target = folder / secrets.token_urlsafe(24) / path.name
    target.parent.mkdir(parents=True)
    try:
        os.link(path, target)
    except OSError:  # another file system: a copy
        shutil.copyfile(path, target)
    gr.set_static_paths([str(target)])
    return str(target)
