"""Accounts: who may log in, their password hashes (hashlib.scrypt) and who is an admin.

TUNELAB_USERS names a file of `user:hash` lines (`user:hash:admin` for an admin; `#` starts a comment);
`python app.py hash-password` prints such a line without the password ever reaching argv.
TUNELAB_AUTH=user:pass (or --auth) is the one-user form: that user is the owner, so an admin.
TUNELAB_ADMINS (comma-separated) makes more users admins, Hugging Face sign-ins included.
"""
from __future__ import annotations

import base64
import hashlib
import hmac
import os
import secrets
from dataclasses import dataclass
from pathlib import Path

from core.errors import ConfigError
from core.messages import msg

SCRYPT_N, SCRYPT_R, SCRYPT_P = 2**14, 8, 1  # ~16 MB and ~50 ms a try: cheap for a login, dear for guessing
PREFIX = "scrypt"


@dataclass(frozen=True)
class User:
    """The person behind a request. `name` '' with admin=True is the local owner (no login configured)."""
    name: str
    admin: bool = False


LOCAL_OWNER = User("", admin=True)  # the app on loopback without a login, and the CLI


def hash_password(password: str, salt: bytes | None = None) -> str:
    """'scrypt$N$r$p$salt$hash' (base64 parts), safe to store in a TUNELAB_USERS file."""
    salt = salt or secrets.token_bytes(16)
    digest = hashlib.scrypt(password.encode("utf-8"), salt=salt, n=SCRYPT_N, r=SCRYPT_R, p=SCRYPT_P, dklen=32)
    b64 = lambda raw: base64.b64encode(raw).decode("ascii")
    return f"{PREFIX}${SCRYPT_N}${SCRYPT_R}${SCRYPT_P}${b64(salt)}${b64(digest)}"


def verify_password(password: str, stored: str) -> bool:
    """True when `password` matches a hash_password() string; False for any malformed hash."""
    try:
        prefix, n, r, p, salt, digest = stored.split("$")
        if prefix != PREFIX:
            return False
        expected = base64.b64decode(digest)
        got = hashlib.scrypt(password.encode("utf-8"), salt=base64.b64decode(salt), n=int(n), r=int(r), p=int(p),
                             dklen=len(expected), maxmem=2**26)
    except (ValueError, TypeError):
        return False
    return hmac.compare_digest(got, expected)


class Accounts:
    """Users and their roles; `check(user, password)` is the whole login decision."""

    def __init__(self, hashes: dict[str, str] | None = None, admins: set[str] | None = None,
                 plain: tuple[str, str] | None = None):
        self.hashes = dict(hashes or {})
        self.admins = set(admins or set())
        self.plain = plain  # TUNELAB_AUTH's one user, compared in constant time
        if plain:
            self.admins.add(plain[0])

    def __bool__(self) -> bool:
        return bool(self.hashes or self.plain)

    def check(self, name: str, password: str) -> bool:
        if self.plain and name == self.plain[0]:
            return hmac.compare_digest(password.encode("utf-8"), self.plain[1].encode("utf-8"))
        stored = self.hashes.get(name)
        if stored is None:
            verify_password(password, hash_password("x", b"0" * 16))  # same time for an unknown name
            return False
        return verify_password(password, stored)

    def user(self, name: str) -> User:
        return User(name, admin=name in self.admins)


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """'USER:PASS' -> (user, pass); '' -> None. Raises ConfigError with a plain message."""
    if not auth:
        return None
    name, sep, password = auth.partition(":")
    if not sep or not name or not password:
        raise ConfigError(msg("bad_auth"))
    return name, password


def read_users_file(path: Path) -> tuple[dict[str, str], set[str]]:
    """({user: hash}, admins) from a TUNELAB_USERS file; a bad line is named, not skipped."""
    try:
        lines = path.read_text(encoding="utf-8").splitlines()
    except OSError as err:
        raise ConfigError(msg("access.users_unreadable", path=str(path), error=err.strerror or str(err))) from err
    hashes, admins = {}, set()
    for number, line in enumerate(lines, 1):
        line = line.strip()
        if not line or line.startswith("#"):
            continue
        name, _, rest = line.partition(":")
        stored, _, role = rest.partition(":")
        if not name or not stored.startswith(PREFIX + "$") or role not in ("", "admin", "user"):
            raise ConfigError(msg("access.users_bad_line", path=str(path), line=number))
        hashes[name] = stored
        if role == "admin":
            admins.add(name)
    return hashes, admins


def load_accounts(auth: str | None = None, env: dict | None = None) -> Accounts:
    """The accounts from --auth/TUNELAB_AUTH and TUNELAB_USERS (both may be set), plus TUNELAB_ADMINS."""
    env = os.environ if env is None else env
    plain = parse_auth(env.get("TUNELAB_AUTH", "") if auth is None else auth)
    hashes, admins = {}, set()
    users_file = env.get("TUNELAB_USERS", "").strip()
    if users_file:
        hashes, admins = read_users_file(Path(users_file).expanduser())
    admins |= {a.strip() for a in env.get("TUNELAB_ADMINS", "").split(",") if a.strip()}
    return Accounts(hashes, admins, plain)
