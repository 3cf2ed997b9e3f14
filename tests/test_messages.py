"""Translatable status lines: core writes English text plus a message key, the UI shows them in its language.

Fast: no model is loaded; runs are built from hand-written events.
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
from core.errors import explain
from core.events import EventLog, read_events
from core.messages import CATALOG, Msg, event_fields, message_of, msg
from core.runs import summarize
from ui import live, strings

CORE_DIR = Path(__file__).resolve().parents[1] / "core"


def _fields(text: str) -> set[str]:
    return {name for _, name, _, _ in string.Formatter().parse(text) if name}


def _sample_params(key: str) -> dict:
    return {name: 7 for name in _fields(CATALOG[key])}


@pytest.mark.parametrize("key", sorted(CATALOG))
def test_every_core_message_has_korean_with_the_same_placeholders(key):
    assert key in strings.KO and strings.KO[key] != CATALOG[key], key
    assert _fields(strings.KO[key]) == _fields(CATALOG[key]), key
    params = _sample_params(key)
    english, korean = msg(key, **params), strings.localize(msg(key, **params), "ko")
    assert english == CATALOG[key].format(**params) and "{" not in english
    assert korean == strings.KO[key].format(**params) and korean != english


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


def test_core_uses_exactly_the_catalog_keys():
    """Core uses exactly the catalog's keys: a typo would otherwise fail only when its line runs."""
    used = set()
    for path in CORE_DIR.glob("*.py"):
        for line in path.read_text(encoding="utf-8").splitlines():
            if re.search(r"\bmsg\(", line) and not line.lstrip().startswith(("def ", '"', "#")):
                used |= set(re.findall(r'"([a-z]+\.[a-z_]+)"', line))
    assert used == set(CATALOG), used ^ set(CATALOG)  # no typo, no unused key


def test_out_of_memory_explanation_is_translatable():
    text, _ = explain(MemoryError())
    assert isinstance(text, Msg) and text.startswith("Out of memory.")
    assert strings.localize(text, "ko").startswith("메모리가 부족합니다")
    assert strings.localize(text, "en") == text


def test_localize_falls_back_to_the_english_text():
    assert strings.localize("Loading model x…", "ko") == "Loading model x…"        # no key: an old log
    assert strings.localize(Msg("Some text", "not.a.key"), "ko") == "Some text"      # a key this UI lacks
    assert strings.localize(Msg("Finished 3 steps.", "job.finished", {}), "ko") == "Finished 3 steps."  # params missing
    assert strings.localize("", "ko", key="job.finished", params={"steps": 3}) == "3단계 학습을 마쳤습니다."
    assert strings.localize(msg("job.finished", steps=3), "xx") == "Finished 3 steps."


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
    korean = live.status_html(summary, active=True, lang="ko")
    assert "모델 embedded:smollm2-135m-instruct을(를) 불러오는 중…" in korean and "Loading model" not in korean
    assert "Loading model embedded:smollm2-135m-instruct…" in live.status_html(summary, active=True, lang="en")

    retry = msg("job.oom_retry_batch", batch_from=4, batch_to=2, accum_from=1, accum_to=2)
    _run(tmp_path, "keyed", ("started", {"total_steps": 69}), ("notice", {**event_fields(retry), "batch_size": 2}),
         ("finished", {"step": 69, **event_fields(msg("job.finished", steps=69))}))
    summary = summarize(path)
    assert summary.message == "Finished 69 steps." and summary.notices == [retry]
    korean = live.status_html(summary, active=False, lang="ko")
    assert "69단계 학습을 마쳤습니다." in korean and "Finished 69 steps." not in korean
    assert "마이크로배치 4 → 2" in korean and "retrying" not in korean


def test_old_events_without_keys_still_show_their_english(tmp_path):
    path = _run(tmp_path, "old", ("progress", {"message": "Loading model embedded:smollm2-135m-instruct…"}))
    summary = summarize(path, active=True)
    assert type(summary.progress) is str
    assert "Loading model embedded:smollm2-135m-instruct…" in live.status_html(summary, active=True, lang="ko")
    _run(tmp_path, "old", ("started", {"total_steps": 4}), ("notice", {"message": "Out of memory; retrying."}),
         ("finished", {"step": 4, "message": "Finished 4 steps."}))
    korean = live.status_html(summarize(path), active=False, lang="ko")
    assert "Finished 4 steps." in korean and "Out of memory; retrying." in korean and "완료" in korean


def test_interrupted_run_is_explained_in_korean(tmp_path):
    path = _run(tmp_path, "cut", ("started", {"total_steps": 4}), ("log", {"step": 1, "loss": 2.0}))
    summary = summarize(path)
    assert summary.status == "interrupted" and summary.message.startswith("The app stopped while this run")
    assert "학습 도중 앱이 종료되었습니다" in live.status_html(summary, active=False, lang="ko")


def test_message_of_tolerates_odd_events():
    assert message_of({"type": "progress"}) == ""
    assert message_of({"type": "progress", "message": "x", "key": "job.preparing", "params": "bad"}).params == {}
    assert messages.msg("job.preparing") == "Preparing…"
