"""Who may do what when the app is reachable by others: accounts, paths, remote code, runs, demo limits.

The browser glue (ui/) asks this package before core reads or runs anything a
visitor typed; the CLI runs as the local user and keeps full access.

- `accounts`: users from TUNELAB_USERS (a file of `user:scrypt-hash[:admin]` lines) or
  TUNELAB_AUTH (one user, the owner), password hashes with hashlib.scrypt, the admin role.
- `throttle`: a growing delay after failed logins, per source address and user name.
- `policy`: what the owner allowed when starting the app (--allow-remote-code, --public-demo
  and its limits, input bounds) and the checks a browser's config must pass.
- `paths`: the folders a browser may read from (TUNELAB_DATA_DIRS, the user's uploads, the
  built-in data), symlinks resolved first.
- `ownership`: who started a run (runs/<run>/owner.json) and who may see and act on it.
"""
from core.access.accounts import LOCAL_OWNER, Accounts, User, hash_password, load_accounts, verify_password
from core.access.ownership import can_act, owner_of, require_owner, write_owner
from core.access.paths import allowed_dirs, check_local_paths, uploads_dir
from core.access.policy import Limits, Policy, check_config, configure, current
from core.access.throttle import LoginThrottle

__all__ = ["LOCAL_OWNER", "Accounts", "User", "hash_password", "load_accounts", "verify_password", "can_act",
           "owner_of", "require_owner", "write_owner", "allowed_dirs", "check_local_paths", "uploads_dir",
           "Limits", "Policy", "check_config", "configure", "current", "LoginThrottle"]
