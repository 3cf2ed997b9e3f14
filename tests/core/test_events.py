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


def _events(run, *events):
    log = EventLog(run / "events.jsonl")
    for kind, fields in events:
        log.append(kind, **fields)
    return run


def test_preparing_is_a_live_run_before_its_first_step(tmp_path):
    run = _events(tmp_path / "r1", ("progress", {"message": "Preparing…", "key": "job.preparing"}),
                  ("progress", {"message": "Loading model…"}))
    assert summarize(run, active=True).preparing and summarize(run, active=True).status == "running"
    assert not summarize(run).preparing  # no live job: the app died while loading
    _events(run, ("started", {"total_steps": 4}))
    assert summarize(run, active=True).preparing  # started, but no step logged yet
    _events(run, ("log", {"step": 1, "loss": 2.0}))
    assert not summarize(run, active=True).preparing and summarize(run, active=True).status == "running"
    _events(run, ("finished", {"step": 1}))
    assert not summarize(run, active=True).preparing and summarize(run, active=True).status == "finished"


def test_resume_of_a_stopped_run_is_preparing_until_its_next_step(tmp_path):
    run = _events(tmp_path / "r1", ("started", {"total_steps": 4}), ("log", {"step": 1, "loss": 2.0}),
                  ("stopped", {"step": 1}))
    assert summarize(run).status == "stopped"
    _events(run, ("progress", {"message": "Preparing…", "key": "job.preparing"}))  # Resume is loading it
    live = summarize(run, active=True)
    assert live.status == "running" and live.preparing and not live.resumable and live.message == ""
    died = summarize(run)  # the app stopped while the resume was loading
    assert died.status == "interrupted" and died.resumable and not died.preparing
    _events(run, ("resumed", {"step": 1, "total_steps": 4}))
    assert summarize(run, active=True).preparing
    _events(run, ("log", {"step": 2, "loss": 1.5}))
    assert not summarize(run, active=True).preparing and summarize(run, active=True).step == 2


def test_resume_of_an_interrupted_run_is_preparing_while_it_loads(tmp_path):
    run = _events(tmp_path / "r1", ("started", {"total_steps": 4}), ("log", {"step": 1, "loss": 2.0}))
    _events(run, ("progress", {"message": "Preparing…", "key": "job.preparing"}))
    assert summarize(run, active=True).preparing and summarize(run, active=True).logs  # the old curve stays


def test_resumable_is_interrupted_or_stopped(tmp_path):
    cases = {"interrupted": [("started", {"total_steps": 4}), ("log", {"step": 1, "loss": 2.0})],
             "stopped": [("started", {"total_steps": 4}), ("stopped", {"step": 1})],
             "finished": [("started", {"total_steps": 4}), ("finished", {"step": 4})],
             "failed": [("started", {"total_steps": 4}), ("failed", {"message": "boom"})]}
    for status, events in cases.items():
        summary = summarize(_events(tmp_path / status, *events))
        assert summary.status == status and summary.resumable == (status in ("interrupted", "stopped")), status
    assert not summarize(tmp_path / "interrupted", active=True).resumable  # live: it is running, not resumable
