"""core.access: password hashes and accounts, the login delay, allowed folders (symlinks too), remote code,
public demo limits and run ownership. Fast: no model, no server."""
from __future__ import annotations

import pytest

from core import access
from core.access import LOCAL_OWNER, Accounts, LoginThrottle, Policy, User, hash_password, verify_password
from core.access.paths import check_path
from core.config import DEFAULT_MODEL, RunConfig
from core.errors import AccessDenied, ConfigError

ANN, BOB, ROOT_ADMIN = User("ann"), User("bob"), User("root", admin=True)


def test_a_hash_verifies_only_its_password():
    stored = hash_password("correct horse")
    assert stored.startswith("scrypt$") and "correct horse" not in stored
    assert verify_password("correct horse", stored)
    assert not verify_password("correct horse!", stored)
    assert hash_password("same") != hash_password("same")  # salted
    for broken in ("", "plain", "scrypt$1$2$3$!!$!!", "md5$x$y$z$a$b"):
        assert not verify_password("x", broken)


def test_accounts_from_a_users_file_and_the_environment(tmp_path):
    users = tmp_path / "users"
    users.write_text(f"# TuneLab users\nann:{hash_password('a-pw')}\nroot:{hash_password('r-pw')}:admin\n\n")
    accounts = access.load_accounts(None, {"TUNELAB_USERS": str(users), "TUNELAB_AUTH": "owner:o-pw",
                                           "TUNELAB_ADMINS": "ann2"})
    assert accounts.check("ann", "a-pw") and not accounts.check("ann", "r-pw") and not accounts.check("eve", "a-pw")
    assert accounts.check("owner", "o-pw") and not accounts.check("owner", "nope")
    assert accounts.user("root").admin and accounts.user("owner").admin and not accounts.user("ann").admin
    assert accounts.user("ann2").admin
    assert not Accounts() and not access.load_accounts(None, {})


def test_a_bad_users_file_is_named(tmp_path):
    users = tmp_path / "users"
    users.write_text("ann:plaintext-password\n")
    with pytest.raises(ConfigError, match="line 1"):
        access.load_accounts(None, {"TUNELAB_USERS": str(users)})
    with pytest.raises(ConfigError, match="cannot be read"):
        access.load_accounts(None, {"TUNELAB_USERS": str(tmp_path / "missing")})


def test_the_login_delay_grows_per_source_and_user():
    now = [100.0]
    throttle = LoginThrottle(base=1.0, cap=8.0, clock=lambda: now[0])
    assert [throttle.failed("1.2.3.4", "ann") for _ in range(5)] == [1.0, 2.0, 4.0, 8.0, 8.0]
    assert throttle.wait_left("1.2.3.4", "ann") == 8.0
    assert throttle.wait_left("1.2.3.4", "bob") == 0 and throttle.wait_left("5.6.7.8", "ann") == 0
    now[0] += 8.0
    assert throttle.wait_left("1.2.3.4", "ann") == 0
    throttle.succeeded("1.2.3.4", "ann")
    assert throttle.failed("1.2.3.4", "ann") == 1.0  # a success starts over


@pytest.fixture
def folders(tmp_path, runs_root, monkeypatch):
    """An allowed data folder (TUNELAB_DATA_DIRS), a secret outside it, and a symlink inside pointing out."""
    allowed, outside = tmp_path / "allowed", tmp_path / "outside"
    allowed.mkdir()
    outside.mkdir()
    (allowed / "qa.json").write_text('[{"question": "q", "answer": "a"}]')
    secret = outside / "secret.json"
    secret.write_text('{"question": "user alice", "answer": "key S3CRET"}')
    (allowed / "link.json").symlink_to(secret)
    (allowed / "dir-link").symlink_to(outside)
    monkeypatch.setenv("TUNELAB_DATA_DIRS", str(allowed))
    access.configure(Policy())
    yield allowed, secret
    access.configure(Policy())


def test_paths_outside_the_allowed_folders_are_refused(folders, runs_root):
    allowed, secret = folders
    assert check_path(str(allowed / "qa.json"), ANN, "dataset") is None
    for typed in (str(secret), str(allowed / "link.json"), str(allowed / "dir-link" / "secret.json"),
                  str(allowed / ".." / "outside" / "secret.json"), "/etc/passwd", "~/.bashrc"):
        problem = check_path(typed, ANN, "dataset")
        assert problem is not None and "TUNELAB_DATA_DIRS" in problem, typed
    assert check_path("builtin:demo", ANN, "dataset") is None
    assert check_path("HuggingFaceH4/no_robots", ANN, "dataset") is None  # a Hub id reads nothing from this disk
    config = RunConfig(dataset=str(secret), model=str(allowed.parent / "outside"))
    assert [p.key for p in access.check_local_paths(config, ANN)] == ["access.path_refused"] * 2


def test_each_user_reads_only_their_own_uploads(folders, runs_root):
    ann_file = access.uploads_dir(ANN) / "mine.json"
    ann_file.parent.mkdir(parents=True)
    ann_file.write_text("[]")
    assert check_path(str(ann_file), ANN, "dataset") is None
    assert check_path(str(ann_file), BOB, "dataset") is not None
    assert check_path(str(ann_file), ROOT_ADMIN, "dataset") is None


def test_remote_code_needs_the_owners_flag():
    config = RunConfig(trust_remote_code=True)
    assert [p.key for p in access.check_config(config, Policy())] == ["access.remote_code_off"]
    assert "--allow-remote-code" in access.check_config(config, Policy())[0]
    assert access.check_config(config, Policy(allow_remote_code=True)) == []


def test_public_demo_limits(monkeypatch, folders):
    monkeypatch.setenv("TUNELAB_PUBLIC_DEMO", "1")
    monkeypatch.setenv("TUNELAB_ALLOW_REMOTE_CODE", "1")  # a demo never runs remote code, whatever else is set
    demo = Policy.from_flags()
    assert demo.public_demo and not demo.allow_remote_code and demo.demo_models == (DEFAULT_MODEL,)
    assert demo.limits.upload_mb < Policy().limits.upload_mb
    ok = RunConfig(model=DEFAULT_MODEL, dataset="builtin:demo", max_steps=30, batch_size=4)
    assert access.check_config(ok, demo) == [] and access.check_local_paths(ok, ANN, demo) == []
    bad = ok.replace(model="Qwen/Qwen2.5-7B", max_steps=0, max_length=4096, batch_size=64, trust_remote_code=True)
    keys = {p.key for p in access.check_config(bad, demo)}
    assert keys == {"access.remote_code_off", "access.demo_model", "access.demo_steps", "access.demo_length",
                    "access.demo_batch"}
    allowed, _ = folders
    assert check_path("HuggingFaceH4/no_robots", ANN, "dataset", demo).key == "access.demo_data_only"
    assert check_path(str(allowed / "qa.json"), ANN, "dataset", demo) is not None  # TUNELAB_DATA_DIRS: not in a demo
    assert check_path(str(allowed), ANN, "model", demo).key == "access.demo_no_paths"


def test_runs_belong_to_who_started_them(tmp_path):
    run = tmp_path / "r1"
    access.write_owner(run, ANN)
    assert access.owner_of(run) == "ann" and access.owner_of(tmp_path / "none") == ""
    assert access.can_act(ANN, "ann") and not access.can_act(BOB, "ann") and access.can_act(ROOT_ADMIN, "ann")
    assert access.can_act(None, "ann") and access.can_act(LOCAL_OWNER, "")
    assert not access.can_act(User(""), "")  # signed out: nothing, not even ownerless runs
    access.require_owner(ANN, run)
    with pytest.raises(AccessDenied, match="not one of yours"):
        access.require_owner(BOB, run)


def test_the_owners_flags_reach_the_policy(monkeypatch):
    from app import build_parser

    monkeypatch.delenv("TUNELAB_PUBLIC_DEMO", raising=False)
    monkeypatch.delenv("TUNELAB_ALLOW_REMOTE_CODE", raising=False)
    for argv in (["--allow-remote-code"], ["ui", "--allow-remote-code"]):
        args = build_parser().parse_args(argv)
        assert args.allow_remote_code and not args.public_demo
    assert build_parser().parse_args(["ui", "--public-demo"]).public_demo
    assert Policy.from_flags(allow_remote_code=True).allow_remote_code
    assert not Policy.from_flags().allow_remote_code and not Policy.from_flags().public_demo
    assert Policy.from_flags(public_demo=True).public_demo
