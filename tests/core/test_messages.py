"""The text catalogue (core/catalog/<lang>/*.yaml) and translatable messages.

Every key exists in every language with the same {placeholders}; every key the
code names exists; Korean is really Korean; core writes English text plus a
message key, and the UI shows it in its language. Fast: no model is loaded.
"""
from __future__ import annotations

import copy
import json
import pickle
import re
import string
from pathlib import Path

import pytest

from core import messages
from core.doctor import explain
from core.errors import ConfigError
from core.events import EventLog, read_events
from core.messages import LANGS, Msg, catalog, event_fields, join, localize, message_of, msg
from core.runs import summarize
from tests.paths import ROOT
from ui import live

EN, KO = catalog("en"), catalog("ko")


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


@pytest.mark.parametrize("lang", LANGS)
def test_every_language_has_every_key_with_the_same_placeholders(lang):
    table = catalog(lang)
    assert set(table) == set(EN), set(table) ^ set(EN)
    wrong = [key for key in EN if _fields(table[key]) != _fields(EN[key])]
    assert not wrong, wrong


def test_every_catalogue_file_has_its_twin_with_the_same_keys():
    """core/catalog/<lang>/<area>.yaml holds the same keys in every language, so a translation sits where its
    English is (the areas are owned by different people)."""
    import yaml

    def keys(lang: str) -> dict[str, set]:
        folder = messages.CATALOG_DIR / lang
        return {p.name: set(yaml.safe_load(p.read_text(encoding="utf-8")) or {}) for p in folder.glob("*.yaml")}

    english = keys("en")
    for lang in LANGS:
        other = keys(lang)
        assert set(other) == set(english), (lang, set(other) ^ set(english))
        wrong = {name: sorted(other[name] ^ english[name]) for name in english if other[name] != english[name]}
        assert not wrong, (lang, wrong)


# Text that reads the same in both languages: names, symbols, numbers and code.
SAME_IN_BOTH = re.compile(r"^[\W\d_]*$|^(TuneLab|Hugging Face Hub|LoRA\+?|QLoRA|Top-[pk]|GGUF|[A-Za-z0-9 .:/_-]{0,12})$")


def test_korean_is_korean():
    """A Korean entry holds Hangul wherever the English one holds words (not a forgotten copy of it)."""
    untranslated = [key for key, en in EN.items() if not re.search("[가-힣]", KO.get(key, ""))
                    and not SAME_IN_BOTH.match(re.sub(r"\{\w+\}", "", en).strip())]
    assert not untranslated, untranslated


def _keys_named_in(folder: Path, pattern: str) -> set[str]:
    found = set()
    for path in folder.rglob("*.py"):
        found |= set(re.findall(pattern, path.read_text(encoding="utf-8")))
    return found


def test_every_key_the_code_names_exists():
    """A typo in a key would otherwise fail only when its line runs."""
    used = _keys_named_in(ROOT / "core", r"""\b(?:msg|text)\(\s*["']([\w.]+)["']""")
    used |= _keys_named_in(ROOT / "ui", r"""\b(?:t|msg|text)\(\s*["']([\w.]+)["']""")
    used |= set(re.findall(r"""\b(?:msg|text)\(\s*["']([\w.]+)["']""", (ROOT / "app.py").read_text(encoding="utf-8")))
    used = {key for key in used if not key.endswith(("_", ".")) and key != "key"}  # prefixes of built keys; docstrings
    assert len(used) > 100
    assert not used - set(EN), sorted(used - set(EN))


def test_a_key_missing_from_the_catalogue_fails_at_once():
    with pytest.raises(KeyError, match="no.such.key"):
        msg("no.such.key")


def test_every_setting_has_a_label_and_help_in_every_language():
    from core.config import RunConfig
    for lang in LANGS:
        for name in RunConfig.field_names():
            info = RunConfig.field_info(name, lang)
            assert info["label"] and info["help"] and info["help"] != f"field.{name}.help", (lang, name)


def test_a_msg_is_the_english_string():
    m = msg("job.finished", steps=69)
    assert isinstance(m, str) and m == "Finished 69 steps." and str(m) == "Finished 69 steps."
    assert (m.key, m.params) == ("job.finished", {"steps": 69})
    assert "Run: " + m == "Run: Finished 69 steps." and f"{m}" == "Finished 69 steps."
    assert json.dumps(m) == '"Finished 69 steps."'
    for twin in (pickle.loads(pickle.dumps(m)), copy.deepcopy(m)):  # gradio copies values
        assert twin == m and (twin.key, twin.params) == (m.key, m.params)


def test_params_stay_json_friendly(tmp_path):
    m = msg("export.saving", path=tmp_path / "merged")
    assert m.params == {"path": str(tmp_path / "merged")} and m == f"Saving the merged model to {tmp_path / 'merged'}…"
    assert event_fields(m) == {"message": str(m), "key": "export.saving", "params": {"path": str(tmp_path / "merged")}}
    assert event_fields("plain words") == {"message": "plain words"}


def test_out_of_memory_explanation_is_translatable():
    text, _ = explain(MemoryError())
    assert isinstance(text, Msg) and text.startswith("Out of memory.")
    assert localize(text, "ko").startswith("메모리가 부족합니다")
    assert localize(text, "en") == text


def test_localize_falls_back_to_the_english_text():
    assert localize("Loading model x…", "ko") == "Loading model x…"        # no key: an old log
    assert localize(Msg("Some text", "not.a.key"), "ko") == "Some text"      # a key this UI lacks
    assert localize(Msg("Finished 3 steps.", "job.finished", {}), "ko") == "Finished 3 steps."  # params missing
    assert localize(msg("job.finished", steps=3), "xx") == "Finished 3 steps."


# --- events -> summary -> status line ------------------------------------------------------------

def _run(root: Path, name: str, *events: tuple[str, dict]) -> Path:
    log = EventLog(root / name / "events.jsonl")
    for kind, fields in events:
        log.append(kind, **fields)
    return root / name


def test_status_line_in_korean_from_keyed_events(tmp_path):
    loading = msg("model.loading", model="embedded:smollm2-135m-instruct")
    path = _run(tmp_path, "keyed", ("progress", event_fields(msg("job.preparing"))), ("progress", event_fields(loading)))
    stored = read_events(path / "events.jsonl")[-1]
    assert stored["key"] == "model.loading" and stored["params"] == {"model": "embedded:smollm2-135m-instruct"}
    summary = summarize(path, active=True)
    assert summary.progress == loading and summary.progress.key == "model.loading"
    korean = live.status_html(summary, lang="ko")
    assert "모델 embedded:smollm2-135m-instruct을(를) 불러오는 중…" in korean and "Loading model" not in korean
    assert "Loading model embedded:smollm2-135m-instruct…" in live.status_html(summary, lang="en")

    retry = msg("job.oom_retry_batch", batch_from=4, batch_to=2, accum_from=1, accum_to=2)
    _run(tmp_path, "keyed", ("started", {"total_steps": 69}), ("notice", {**event_fields(retry), "batch_size": 2}),
         ("finished", {"step": 69, **event_fields(msg("job.finished", steps=69))}))
    summary = summarize(path)
    assert summary.message == "Finished 69 steps." and summary.notices == [retry]
    korean = live.status_html(summary, lang="ko")
    assert "69단계 학습을 마쳤습니다." in korean and "Finished 69 steps." not in korean
    assert "마이크로배치 4 → 2" in korean and "retrying" not in korean


def test_old_events_without_keys_still_show_their_english(tmp_path):
    path = _run(tmp_path, "old", ("progress", {"message": "Loading model embedded:smollm2-135m-instruct…"}))
    summary = summarize(path, active=True)
    assert type(summary.progress) is str
    assert "Loading model embedded:smollm2-135m-instruct…" in live.status_html(summary, lang="ko")
    _run(tmp_path, "old", ("started", {"total_steps": 4}), ("notice", {"message": "Out of memory; retrying."}),
         ("finished", {"step": 4, "message": "Finished 4 steps."}))
    korean = live.status_html(summarize(path), lang="ko")
    assert "Finished 4 steps." in korean and "Out of memory; retrying." in korean and "완료" in korean


def test_interrupted_run_is_explained_in_korean(tmp_path):
    path = _run(tmp_path, "cut", ("started", {"total_steps": 4}), ("log", {"step": 1, "loss": 2.0}))
    summary = summarize(path)
    assert summary.status == "interrupted" and summary.message.startswith("The app stopped while this run")
    assert "학습 도중 앱이 종료되었습니다" in live.status_html(summary, lang="ko")


def test_message_of_tolerates_odd_events():
    assert message_of({"type": "progress"}) == ""
    assert message_of({"type": "progress", "message": "x", "key": "job.preparing", "params": "bad"}).params == {}
    assert messages.msg("job.preparing") == "Preparing…"


def test_joined_messages_are_localized_part_by_part():
    first, second = msg("job.preparing"), msg("job.finished", steps=2)
    both = join([first, second])
    assert both == "Preparing… Finished 2 steps." and localize(both, "en") == both
    assert localize(both, "ko") == KO["job.preparing"] + " " + KO["job.finished"].format(steps=2)
    stored = message_of(json.loads(json.dumps({**event_fields(both), "type": "failed"})))
    assert localize(stored, "ko") == localize(both, "ko")  # survives events.jsonl


def test_errors_carry_their_message_for_every_language():
    err = ConfigError(msg("job.finished", steps=3))
    text, code = explain(err)
    assert code == 2 and isinstance(text, Msg) and localize(text, "ko") == KO["job.finished"].format(steps=3)


def test_busy_is_told_in_the_page_language():
    from core.errors import Busy
    text, code = explain(Busy(msg("train.busy_by", run="demo", who="alice")))
    assert code == 2 and text.startswith("Run 'demo' is training now (started by alice).")
    korean = localize(text, "ko")
    assert "'demo'" in korean and "alice" in korean and re.search("[가-힣]", korean) and "training now" not in korean
    assert localize(msg("train.busy", run="demo"), "ko").startswith("지금 'demo' 실행이 학습 중입니다")


def test_eval_progress_line_is_translatable():
    line = msg("infer.eval_line", done=3, total=38, base="✗", tuned="✓", question="Who founded it?")
    assert line == "[3/38] base ✗  tuned ✓  Who founded it?"
    assert localize(line, "ko") == "[3/38] 기본 ✗  튜닝 ✓  Who founded it?"
