"""Hosting decisions, without a server: where the app listens, where to open it, the storage note,
the Hugging Face cache, sign-in and who started a run. Fast: no model, no server."""
from __future__ import annotations

import os
from types import SimpleNamespace

import pytest

from core import home
from core.messages import localize
from ui import identity
from ui.launch import exposure_refusal, launch, listen_address, public_urls, storage_notice

PLATFORM_VARS = ("TUNELAB_HOST", "TUNELAB_PORT", "GRADIO_SERVER_NAME", "GRADIO_SERVER_PORT", "SPACE_ID", "SPACE_HOST",
                 "RUNPOD_POD_ID", "TUNELAB_HOME", "TUNELAB_CACHE", "HF_HOME", "SYSTEM", "TUNELAB_AUTH",
                 *identity.OAUTH_VARS)


@pytest.fixture(autouse=True)
def bare_machine(monkeypatch, tmp_path):
    """No platform variables, and a /data that doesn't exist, whatever machine the tests run on."""
    for name in PLATFORM_VARS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(home, "SPACE_DATA", tmp_path / "no-data")


# --- where to listen ------------------------------------------------------------------------------

def test_a_laptop_listens_on_loopback_7860():
    assert listen_address(None, None) == ("127.0.0.1", 7860)


def test_a_space_listens_on_every_interface(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    assert listen_address(None, None) == ("0.0.0.0", 7860)


def test_gradio_variables_beat_the_platform_default(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    monkeypatch.setenv("GRADIO_SERVER_NAME", "::")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    assert listen_address(None, None) == ("::", 7861)


def test_tunelab_variables_beat_gradio_ones(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("GRADIO_SERVER_PORT", "7861")
    monkeypatch.setenv("TUNELAB_HOST", "127.0.0.1")
    monkeypatch.setenv("TUNELAB_PORT", "8000")
    assert listen_address(None, None) == ("127.0.0.1", 8000)


def test_host_and_port_are_decided_apart(monkeypatch):
    monkeypatch.setenv("GRADIO_SERVER_NAME", "0.0.0.0")
    monkeypatch.setenv("TUNELAB_PORT", "8000")
    assert listen_address(None, None) == ("0.0.0.0", 8000)


def test_a_flag_beats_everything(monkeypatch):
    for name, value in {"TUNELAB_HOST": "0.0.0.0", "TUNELAB_PORT": "8000", "GRADIO_SERVER_NAME": "0.0.0.0",
                        "GRADIO_SERVER_PORT": "7861", "SPACE_ID": "owner/tunelab"}.items():
        monkeypatch.setenv(name, value)
    assert listen_address("127.0.0.1", 9000) == ("127.0.0.1", 9000)
    assert listen_address(None, 9000) == ("0.0.0.0", 9000)


def test_an_empty_variable_counts_as_unset(monkeypatch):
    monkeypatch.setenv("TUNELAB_HOST", " ")
    monkeypatch.setenv("TUNELAB_PORT", "")
    assert listen_address(None, None) == ("127.0.0.1", 7860)


@pytest.mark.parametrize("value", ["abc", "0", "70000", "-1", "78.5"])
def test_a_bad_port_names_where_it_came_from(monkeypatch, value):
    monkeypatch.setenv("GRADIO_SERVER_PORT", value)
    with pytest.raises(ValueError) as caught:
        listen_address(None, None)
    message = caught.value.args[0]
    assert "GRADIO_SERVER_PORT" in message and value in message and message.key == "host.bad_port"
    assert "GRADIO_SERVER_PORT" in localize(message, "ko")


def test_a_bad_port_is_one_line_and_exit_2(monkeypatch, capsys):
    monkeypatch.setenv("TUNELAB_PORT", "http")
    assert launch() == 2
    err = capsys.readouterr().err
    assert "TUNELAB_PORT" in err and "Traceback" not in err and len(err.strip().splitlines()) == 1


def test_a_bad_auth_secret_is_refused_before_anything_loads(monkeypatch, capsys):
    monkeypatch.setenv("TUNELAB_AUTH", "only-a-name")
    assert launch() == 2
    assert "USER:PASS" in capsys.readouterr().err


# --- where to open it -----------------------------------------------------------------------------

def test_local_urls_never_say_0_0_0_0():
    assert public_urls("0.0.0.0", 7860) == ["http://127.0.0.1:7860"]
    assert public_urls("127.0.0.1", 8000) == ["http://127.0.0.1:8000"]
    assert public_urls("::", 7860) == ["http://[::1]:7860"]
    assert public_urls("::1", 7860) == ["http://[::1]:7860"]
    assert public_urls("192.168.1.5", 7860) == ["http://192.168.1.5:7860"]


def test_runpod_gets_its_proxy_address(monkeypatch):
    monkeypatch.setenv("RUNPOD_POD_ID", "abc123xyz")
    assert public_urls("0.0.0.0", 7860) == ["http://127.0.0.1:7860", "https://abc123xyz-7860.proxy.runpod.net"]
    # bound to loopback, the pod's proxy can't reach it: no address that wouldn't open
    assert public_urls("127.0.0.1", 7860) == ["http://127.0.0.1:7860"]


def test_a_space_gets_its_own_address(monkeypatch):
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    monkeypatch.setenv("SPACE_HOST", "owner-tunelab.hf.space,tunelab.example.org")  # a custom domain comes second
    assert public_urls("0.0.0.0", 7860) == ["http://127.0.0.1:7860", "https://owner-tunelab.hf.space"]


def test_the_runpod_hint_when_bound_to_loopback(monkeypatch, capsys):
    from ui.launch import print_urls

    monkeypatch.setenv("RUNPOD_POD_ID", "abc123xyz")
    print_urls("0.0.0.0", 7860)
    out = capsys.readouterr()
    assert "Open TuneLab at https://abc123xyz-7860.proxy.runpod.net" in out.out and not out.err
    print_urls("127.0.0.1", 7860, "ko")
    out = capsys.readouterr()
    assert "http://127.0.0.1:7860" in out.out and "--host 0.0.0.0" in out.err and "RunPod" in out.err


def test_the_refusal_names_the_settings():
    line = exposure_refusal("0.0.0.0", False, False)
    assert "TUNELAB_AUTH" in line and "TUNELAB_USERS" in line and "--public-demo" in line and "\n" not in line
    assert exposure_refusal("0.0.0.0", True, False) == ""


# --- storage ----------------------------------------------------------------------------------------

def test_no_note_off_a_space(monkeypatch):
    monkeypatch.delenv("TUNELAB_RUNS_DIR")
    assert not home.storage_is_lost_on_restart() and storage_notice() == ""


def test_a_space_without_persistent_storage_gets_the_note(monkeypatch):
    monkeypatch.delenv("TUNELAB_RUNS_DIR")
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    assert home.storage_is_lost_on_restart()
    note = storage_notice()
    assert "persistent storage" in note and "Export" in note
    assert "영구 저장소" in storage_notice("ko")


def test_a_space_with_persistent_storage_keeps_its_runs_there(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNELAB_RUNS_DIR")
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(home, "SPACE_DATA", data)
    assert home.runs_root() == data / "tunelab" / "runs" and home.cache_root() == data / "tunelab" / "cache"
    assert not home.storage_is_lost_on_restart() and storage_notice() == ""


def test_a_home_off_the_persistent_disk_is_still_lost(monkeypatch, tmp_path):
    monkeypatch.delenv("TUNELAB_RUNS_DIR")
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    data = tmp_path / "data"
    data.mkdir()
    monkeypatch.setattr(home, "SPACE_DATA", data)
    monkeypatch.setenv("TUNELAB_HOME", str(data / "mine"))
    assert not home.storage_is_lost_on_restart()
    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "elsewhere"))
    assert home.storage_is_lost_on_restart()


def test_the_hf_cache_follows_the_home(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home"))
    home.use_home_for_hf_cache()
    assert os.environ["HF_HOME"] == str((tmp_path / "home" / "huggingface").resolve())


def test_a_users_hf_home_is_kept(monkeypatch, tmp_path):
    monkeypatch.setenv("TUNELAB_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "mine"))
    home.use_home_for_hf_cache()
    assert os.environ["HF_HOME"] == str(tmp_path / "mine")


def test_no_home_leaves_the_hf_cache_alone():
    home.use_home_for_hf_cache()
    assert "HF_HOME" not in os.environ


# --- sign-in and who ----------------------------------------------------------------------------------

def _oauth(monkeypatch):
    for name in identity.OAUTH_VARS:
        monkeypatch.setenv(name, "https://huggingface.co" if name == "OPENID_PROVIDER_URL" else "x")


def test_sign_in_only_when_the_space_asks_for_it(monkeypatch):
    assert not identity.sign_in_requested() and not identity.sign_in_enabled()
    _oauth(monkeypatch)
    assert identity.sign_in_requested()
    # outside a Space gradio would mock the sign-in with this machine's own account: left out
    assert identity.sign_in_blocker().key == "host.sign_in_local" and not identity.sign_in_enabled()


def test_sign_in_on_a_space_needs_gradio_oauth(monkeypatch):
    _oauth(monkeypatch)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setattr(identity, "find_spec", lambda name: None)
    blocker = identity.sign_in_blocker()
    assert blocker.key == "host.sign_in_packages" and "authlib" in blocker and "gradio[oauth]" in blocker
    monkeypatch.setattr(identity, "find_spec", lambda name: object())
    assert identity.sign_in_blocker() is None and identity.sign_in_enabled()


def test_who_prefers_the_hugging_face_name():
    request = SimpleNamespace(username="ann")
    assert identity.who(request, SimpleNamespace(username="ann-hf")) == "ann-hf"
    assert identity.who(request, None) == "ann"
    assert identity.who(SimpleNamespace(username=None), None) == "" and identity.who(None, None) == ""


def test_who_reads_a_real_oauth_profile():
    import gradio as gr

    profile = gr.OAuthProfile({"name": "Ann", "preferred_username": "ann-hf", "profile": "", "picture": ""})
    assert identity.who(gr.Request(username=None), profile) == "ann-hf"


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_app_builds_with_sign_in_and_the_note(tmp_path, monkeypatch, lang):
    """As on a Space with hf_oauth: true. gradio wires the sign-in routes while the page is built."""
    pytest.importorskip("authlib", reason="needs gradio[oauth]")
    pytest.importorskip("itsdangerous", reason="needs gradio[oauth]")
    import gradio as gr

    from core.train.manager import JobManager
    from ui import build_app

    _oauth(monkeypatch)
    for name in identity.OAUTH_VARS:  # gradio.oauth read them when it was imported, before this test set them
        monkeypatch.setattr(gr.oauth, name, os.environ[name])
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setenv("SPACE_ID", "owner/tunelab")
    assert identity.sign_in_enabled()
    app = build_app(JobManager(root=tmp_path), lang, notice="runs are lost", sign_in=True)
    buttons = [b for b in app.blocks.values() if isinstance(b, gr.LoginButton)]
    assert len(buttons) == 1 and app.expects_oauth
    notes = {b.elem_id: str(b.value) for b in app.blocks.values() if isinstance(b, gr.HTML) and b.elem_id}
    assert "runs are lost" in notes["storage-note"] and "security-banner" not in notes


def test_a_space_without_gradio_oauth_builds_without_the_button(tmp_path, monkeypatch, capsys):
    """Sign-in asked for, but gradio[oauth] missing: a note on stderr and a page without the button, no crash."""
    import gradio as gr

    from core.train.manager import JobManager
    from ui import build_app
    from ui.launch import _sign_in

    _oauth(monkeypatch)
    monkeypatch.setenv("SYSTEM", "spaces")
    monkeypatch.setattr(identity, "find_spec", lambda name: None)
    assert _sign_in("en") is False and "gradio[oauth]" in capsys.readouterr().err
    app = build_app(JobManager(root=tmp_path), "en", notice="runs are lost")
    assert not app.expects_oauth and not any(isinstance(b, gr.LoginButton) for b in app.blocks.values())
