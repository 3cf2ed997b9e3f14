"""Who is using the app: the password login (--auth) or "Sign in with Hugging Face" on a Space.

A Space turns sign-in on with `hf_oauth: true` in its README front matter; the
platform then sets OAUTH_CLIENT_ID, OAUTH_CLIENT_SECRET, OPENID_PROVIDER_URL
and OAUTH_SCOPES, and gradio's `gr.LoginButton` does the rest. `who()` names
the person behind a request so a run records who started it.

Signing in names people; it does not keep anyone out: any Hugging Face account
can sign in. Restricting which accounts may use the app is a later issue
(security); until then a Space is closed with TUNELAB_AUTH or by making it private.
"""
from __future__ import annotations

import os
from importlib.util import find_spec
from typing import Any

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
