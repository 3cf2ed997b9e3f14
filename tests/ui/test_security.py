"""Safety in the UI glue, with real runs, real locks and real files (no browser): refusal to start exposed,
the login delay, remote code (a tokenizer whose auto_map would write a marker file), run ownership for
every action, chat while training, public demo limits and input bounds."""
from __future__ import annotations

import asyncio
import inspect
import time
from types import SimpleNamespace

import pytest

from core import access, runs
from core.access import Accounts, LoginThrottle, Policy, User, hash_password
from core.errors import AccessDenied, Busy
from core.infer.generate import Sampling
from core.train.manager import JobManager
from tests.core.test_devicelock import hold_in_another_process
from ui import identity
from ui import train_actions as act
from ui.form import values_from_config

ANN, BOB, ADMIN = User("ann"), User("bob"), User("root", admin=True)
LOGIN_VARS = ("TUNELAB_AUTH", "TUNELAB_USERS", "TUNELAB_HF_USERS", "TUNELAB_PUBLIC_DEMO", "TUNELAB_HOST",
              "GRADIO_SERVER_NAME", "SPACE_ID", *identity.OAUTH_VARS)


@pytest.fixture(autouse=True)
def fresh_policy(monkeypatch):
    for name in LOGIN_VARS:
        monkeypatch.delenv(name, raising=False)
    access.configure(Policy())
    identity.configure(Accounts())
    yield
    access.configure(Policy())
    identity.configure(Accounts())


def _request(name: str = "", session: str = "s1"):
    return SimpleNamespace(username=name or None, session_hash=session)


@pytest.mark.parametrize("args", [{"host": "0.0.0.0"}, {"host": "192.168.1.5"}, {"share": True}])
def test_exposed_without_a_login_refuses_to_start(args, capsys):
    from ui.launch import launch

    began = time.monotonic()
    assert launch(**args) == 2
    err = capsys.readouterr().err.strip()
    assert len(err.splitlines()) == 1 and "TUNELAB_USERS" in err and "--public-demo" in err, err
    assert time.monotonic() - began < 5  # refused before gradio and the engine load


def test_a_failed_login_slows_the_next_try():
    from ui.launch import LoginGate, _login_source

    gate = LoginGate(Accounts({"ann": hash_password("right")}), LoginThrottle(base=0.4, cap=5))

    async def attempt(password: str, source: str = "10.0.0.1") -> tuple[bool, float]:
        _login_source.set(source)
        began = time.monotonic()
        ok = await gate.check("ann", password)
        return ok, time.monotonic() - began

    async def story():
        first, second = await attempt("wrong"), await attempt("wrong")  # each failure sleeps its (doubled) delay
        third = asyncio.create_task(attempt("wrong"))  # sets a 1.6 s wait…
        await asyncio.sleep(0.2)
        during = await attempt("right")  # …inside which even the right password is refused, unchecked
        other_source = await attempt("right", "10.0.0.2")
        await third
        after = await attempt("right")
        return first, second, during, other_source, after

    assert inspect.iscoroutinefunction(gate.check)  # what gradio tests before it awaits the answer
    (ok1, t1), (ok2, t2), (ok3, t3), (ok4, t4), (ok5, _) = asyncio.run(story())
    assert not ok1 and not ok2 and not ok3 and ok4 and ok5
    assert t1 >= 0.35 and t2 >= 0.75 and t3 >= 1.2 and t4 < 0.5, (t1, t2, t3, t4)


def _marker_model(folder, marker):
    """A model folder whose tokenizer's auto_map points at Python that writes `marker` when imported."""
    folder.mkdir()
    (folder / "tokenizer_config.json").write_text(
        '{"tokenizer_class": "MarkerTokenizer", "auto_map": {"AutoTokenizer": ["marker_tok.MarkerTokenizer", null]}}')
    (folder / "config.json").write_text('{"model_type": "llama", "auto_map": {"AutoConfig": "marker_tok.Cfg"}}')
    (folder / "marker_tok.py").write_text(
        f"from pathlib import Path\nPath({str(marker)!r}).write_text('remote code ran')\n"
        "from transformers import PreTrainedTokenizer, PretrainedConfig\n"
        "class MarkerTokenizer(PreTrainedTokenizer):\n    pass\n"
        "class Cfg(PretrainedConfig):\n    model_type = 'marker'\n")


def test_remote_code_runs_only_with_the_owners_flag(tmp_path, monkeypatch):
    from ui.data_tab import check_data

    model, marker = tmp_path / "remote-model", tmp_path / "MARKER"
    _marker_model(model, marker)
    monkeypatch.setenv("TUNELAB_DATA_DIRS", str(tmp_path))
    monkeypatch.setenv("HF_MODULES_CACHE", str(tmp_path / "modules"))
    values = {"model": str(model), "trust_remote_code": True, "dataset": "builtin:demo"}
    summary = check_data(values, "", "en", ANN)[0]
    assert "--allow-remote-code" in summary and not marker.exists()
    summary = check_data({**values, "trust_remote_code": False}, "", "en", ANN)[0]  # ticked off: transformers refuses
    assert not marker.exists(), summary
    access.configure(Policy(allow_remote_code=True))
    check_data(values, "", "en", ANN)
    assert marker.read_text() == "remote code ran"  # the owner allowed it: it does run


def test_the_form_offers_remote_code_only_with_the_flag(tmp_path):
    from ui import build_app

    def box(app):
        return next(b for b in app.blocks.values() if getattr(b, "elem_id", None) == "f-trust_remote_code")

    assert box(build_app(JobManager(root=tmp_path), "en")).visible is False
    access.configure(Policy(allow_remote_code=True))
    assert box(build_app(JobManager(root=tmp_path), "en")).visible is not False


@pytest.fixture
def allowed_tiny(tiny_config, tiny_model_dir, monkeypatch):
    monkeypatch.setenv("TUNELAB_DATA_DIRS", str(tiny_model_dir))
    return tiny_config


@pytest.mark.slow
def test_each_user_acts_on_their_own_runs_only(allowed_tiny, runs_root):
    from ui import chat_answers, chat_eval, export_tab

    identity.configure(Accounts({"ann": hash_password("a"), "bob": hash_password("b")}, admins={"root"}))
    manager = JobManager(runs_root)
    done = manager.start(allowed_tiny.replace(max_steps=2, eval_steps=100, save_steps=1), who=ANN)
    assert done.join(120) == "finished" and access.owner_of(done.dir) == "ann"
    (done.dir / "events.jsonl").open("a").write('{"type": "stopped", "time": 1, "step": 2}\n')  # resumable now

    assert [s.name for s in manager.list_runs(BOB)] == [] and [s.name for s in manager.list_runs(ANN)] == [done.name]
    assert [s.owner for s in manager.list_runs(ADMIN)] == ["ann"]
    assert act.run_picker(manager, "en", None, BOB)["choices"] == []
    assert "not one of yours" in act.resume(manager, done.name, "", BOB, "en")[0]
    assert act.render(manager, done.name, "en", BOB)[4] == ""  # no settings shown
    assert "not one of yours" in act.settings_of(manager, done.name, "en", ["model"], BOB)[-1]
    with pytest.raises(AccessDenied):
        identity.own_run(manager, done.name, _request("bob"))  # Export's merge, zip, push, download
    assert identity.own_run(manager, done.name, _request("root")).admin
    asked = list(chat_answers.answer(manager, "en", done.name, "", "hi", [], Sampling(max_new_tokens=4), user=BOB))
    assert "not one of yours" in asked[-1][2]
    assert "not one of yours" in chat_eval.run_eval(manager, "en", done.name, 1, lambda *a, **k: None, user=BOB)[0]
    assert export_tab._refresh(manager, "en", None, BOB)["choices"] == []

    live = manager.start(allowed_tiny.replace(max_steps=100000, eval_steps=100000, save_steps=100000), who=ANN)
    try:
        assert "not one of yours" in act.stop(manager, "en", BOB) and live.running
        asked = list(chat_answers.answer(manager, "en", "", "", "hi", [], Sampling(max_new_tokens=4), user=ANN))
        assert "is training on this machine" in asked[-1][2]  # chat while training: refused, says which run
        with pytest.raises(Busy, match=f"training of run '{live.name}' by ann"):  # a second app, same runs folder
            JobManager(runs_root).start(allowed_tiny, who=BOB)
    finally:
        assert "Stopping" in act.stop(manager, "en", ANN)
        live.join(60)


def test_chat_behind_another_process_is_refused_with_who_holds_it(runs_root):
    from ui import chat_answers

    proc = hold_in_another_process("train", "cli-run")
    try:
        asked = list(chat_answers.answer(JobManager(runs_root), "en", "", "", "hi", [], Sampling(max_new_tokens=4),
                                         user=ANN))
        assert "training of run 'cli-run' by cli-user" in asked[-1][2] and f"pid {proc.pid}" in asked[-1][2]
    finally:
        proc.kill()
        proc.wait()


def test_input_bounds_have_plain_messages(runs_root):
    from ui import chat_answers

    manager, limits = JobManager(runs_root), access.current().limits

    def refused(question="hi", system="", max_new=64):
        asked = list(chat_answers.answer(manager, "en", "", system, question, [], Sampling(max_new_tokens=max_new),
                                         user=ANN))
        return asked[-1][2]

    assert f"at most {limits.question_chars}" in refused("x" * (limits.question_chars + 1))
    assert "system prompt" in refused(system="s" * (limits.system_chars + 1))
    assert "Max new tokens" in refused(max_new=limits.max_new_tokens + 1)


def test_uploads_are_per_user_and_capped(tmp_path, runs_root):
    from ui.data_tab import save_upload

    access.configure(Policy(limits=access.Limits(upload_mb=1, uploads_per_user=2)))
    files = []
    for i in range(3):
        files.append(tmp_path / f"d{i}.csv")
        files[-1].write_text(f"question,answer\nq{i},a\n")
    first = save_upload(str(files[0]), ANN)
    assert first.startswith(str(runs_root / "uploads" / "ann"))
    save_upload(str(files[1]), ANN)
    with pytest.raises(AccessDenied, match="2 files"):
        save_upload(str(files[2]), ANN)
    assert save_upload(str(files[2]), BOB).startswith(str(runs_root / "uploads" / "bob"))
    big = tmp_path / "big.csv"
    big.write_bytes(b"q,a\n" + b"x" * (2 * 2**20))
    with pytest.raises(AccessDenied, match="at most 1 MB"):
        save_upload(str(big), BOB)


def test_public_demo_mode(runs_root, tmp_path):
    from core.config import RunConfig
    from ui import build_app, export_tab
    from ui.data_tab import check_data
    from ui.launch import demo_note, exposure_refusal

    demo = Policy(public_demo=True)
    access.configure(demo)
    identity.configure(Accounts(), demo=True)
    visitor = identity.user_of(_request(session="abcdef123456789"))
    assert visitor.name == "demo-abcdef123456" and not visitor.admin
    assert identity.user_of(_request(session="other")).name != visitor.name  # each tab its own visitor
    assert exposure_refusal("0.0.0.0", False, False, demo=True) == ""
    refused = check_data({"dataset": "HuggingFaceH4/no_robots"}, "", "en", visitor)[0]
    assert "uses the built-in data or a file you upload" in refused and "steps" not in refused
    assert "between 1 and 60" in act.start(JobManager(runs_root), values_from_config(RunConfig(max_steps=1000)), "",
                                     visitor, "en")[0]
    pushed = export_tab.do_push(JobManager(runs_root), "en", "x", "merged", "me/x", "hf_x", True, visitor)
    assert "does not push" in pushed[1]
    app = build_app(JobManager(root=tmp_path), "en", demo=demo_note(demo))
    notes = {b.elem_id: b.value for b in app.blocks.values() if getattr(b, "elem_id", None) == "demo-note"}
    assert "Demo mode" in notes["demo-note"] and "at most 60 steps" in notes["demo-note"]


def test_hugging_face_sign_in_lets_in_only_listed_names():
    identity.configure(Accounts(), hf_users={"ann"})
    assert identity.user_of(None, SimpleNamespace(username="ann")) == ANN
    with pytest.raises(AccessDenied, match="not one this app's owner allows"):
        identity.user_of(None, SimpleNamespace(username="mallory"))


def test_the_servers_hub_token_is_the_admins_only(monkeypatch):
    monkeypatch.setenv("HF_TOKEN", "hf_owner")
    assert identity.hub_token("", "", ANN) is None and identity.hub_token("", "", ADMIN) == "hf_owner"
    assert identity.hub_token("", "hf_session", ANN) == "hf_session" and identity.hub_token("hf_typed", "x", ANN) == "hf_typed"


def test_a_download_is_a_private_link(tmp_path, runs_root):
    archive = tmp_path / "merged.zip"
    archive.write_bytes(b"PK")
    one, two = identity.private_download(archive, runs_root), identity.private_download(archive, runs_root)
    assert one != two and open(one, "rb").read() == b"PK"
    assert len(runs.Path(one).parent.name) >= 30  # an unguessable folder name
