"""The event log: append, read back, survive a torn last line, rebuild a run."""
import json

from core.events import EventLog, read_events
from core.runs import new_run_name, run_dir, safe_name, summarize


def test_append_and_read(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append("started", total_steps=3, model="m", method="lora")
    log.append("log", step=1, loss=2.0)
    assert [e["type"] for e in log.read()] == ["started", "log"]


def test_torn_last_line_is_skipped(tmp_path):
    path = tmp_path / "events.jsonl"
    EventLog(path).append("log", step=1, loss=2.0)
    with open(path, "a") as fh:
        fh.write('{"type": "log", "step": 2, "lo')  # killed mid-write
    assert [e["step"] for e in read_events(path)] == [1]


def test_summary_status_from_events(tmp_path):
    run = tmp_path / "r1"
    log = EventLog(run / "events.jsonl")
    log.append("started", total_steps=4)
    log.append("log", step=1, loss=3.0)
    assert summarize(run).status == "interrupted"  # no live job owns it
    assert summarize(run, active=True).status == "running"
    log.append("stopped", step=1, message="Stopped at step 1")
    assert summarize(run).status == "stopped" and summarize(run).step == 1


def test_resume_replaces_the_tail_of_the_curve(tmp_path):
    run = tmp_path / "r1"
    log = EventLog(run / "events.jsonl")
    log.append("started", total_steps=4)
    for step in (1, 2, 3):
        log.append("log", step=step, loss=1.0)
    log.append("resumed", step=2, total_steps=4)
    log.append("log", step=3, loss=0.5)
    assert [(e["step"], e["loss"]) for e in summarize(run).logs] == [(1, 1.0), (2, 1.0), (3, 0.5)]


def test_run_names_are_safe(tmp_path):
    assert safe_name("../../etc/passwd") == "etc-passwd"
    assert safe_name("/abs/path") == "abs-path"
    assert "/" not in new_run_name("a/b", tmp_path)
    (tmp_path / "demo").mkdir()
    assert new_run_name("demo", tmp_path) == "demo-2"
    for bad in ("..", "../x", "a/b", "", ".hidden"):
        try:
            run_dir(bad, tmp_path)
        except ValueError:
            continue
        raise AssertionError(f"{bad!r} was accepted")
    json.dumps(str(run_dir("ok-name", tmp_path)))
