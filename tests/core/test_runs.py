"""core/runs.py: the cached replay of events.jsonl, malformed events, folder swaps, uploads, stale merges."""
import json
import os
import time

from core import runs
from core.events import EventLog
from core.runs import list_runs, summarize


def _run(root, name="r"):
    folder = root / name
    folder.mkdir(parents=True)
    return folder, EventLog(folder / "events.jsonl")


def test_the_summary_reads_only_new_lines_and_sees_a_rewritten_log(runs_root):
    folder, log = _run(runs_root)
    log.append("started", model="m", method="lora", total_steps=3)
    log.append("log", step=1, loss=2.0)
    assert summarize(folder, True).step == 1
    opened = []
    real_open = open

    def counting_open(path, *args, **kwargs):
        opened.append(str(path))
        return real_open(path, *args, **kwargs)

    import builtins
    builtins.open, restore = counting_open, builtins.open
    try:
        summarize(folder, True)  # nothing new: the file is not even opened
        assert not [p for p in opened if p.endswith("events.jsonl")]
    finally:
        builtins.open = restore
    log.append("log", step=2, loss=1.5)
    first = summarize(folder, True)
    assert [e["step"] for e in first.logs] == [1, 2]
    first.logs.append({"step": 99})  # a caller's copy: the cache is not touched
    assert summarize(folder, True).step == 2 and len(summarize(folder, True).logs) == 2
    (folder / "events.jsonl").write_text(json.dumps({"type": "started", "time": 1, "total_steps": 9}) + "\n")
    again = summarize(folder, True)
    assert again.logs == [] and again.total_steps == 9


def test_events_missing_fields_are_skipped_like_torn_lines(runs_root):
    folder, log = _run(runs_root)
    log.append("started", model="m", method="lora", total_steps=3)
    with open(folder / "events.jsonl", "a") as fh:
        fh.write('{"type": "log", "time": 1}\n{"type": "log", "step": "2", "time": 1}\n{"type": "eval", "step": 1}\n'
                 '{"type": "sample", "step": 1}\n{"type": "finished"}\n[1, 2]\n{"type": 5}\n{"torn": ')
    EventLog(folder / "events.jsonl").append("log", step=1, loss=1.0)  # a resumed writer ends the torn line first
    summary = summarize(folder)
    assert summary.step == 1 and summary.status == "interrupted" and summary.evals == [] and summary.samples == []
    assert [s.name for s in list_runs(runs_root)] == ["r"]


def test_a_swap_interrupted_between_renames_is_undone(tmp_path):
    target, new = tmp_path / "adapter", tmp_path / "adapter.tmp"
    target.mkdir()
    (target / "a").write_text("old")
    os.replace(target, tmp_path / "adapter.prev")  # the first rename of replace_folder, then a kill
    assert runs.recover_folder(target) and (target / "a").read_text() == "old"
    new.mkdir()
    (new / "a").write_text("new")
    runs.replace_folder(new, target)
    assert (target / "a").read_text() == "new" and not (tmp_path / "adapter.prev").exists()
    assert not runs.recover_folder(target)


def test_uploads_are_kept_once_and_go_with_their_run_or_their_age(runs_root, tmp_path):
    uploads = runs_root / "uploads"
    a, b = tmp_path / "a.jsonl", tmp_path / "b.jsonl"
    a.write_text('{"q": "1"}\n')
    b.write_text('{"q": "1"}\n')
    first = runs.store_upload(a, uploads)
    assert runs.store_upload(b, uploads) == first and len(list(uploads.iterdir())) == 1  # same bytes, other name
    old = runs.store_upload(_written(tmp_path / "old.csv", "q,a\n1,2\n"), uploads)
    os.utime(old, (time.time() - 30 * 86400,) * 2)
    fresh = runs.store_upload(_written(tmp_path / "new.csv", "q,a\n3,4\n"), uploads)
    run = runs_root / "uses-first"
    run.mkdir()
    (run / "config.yaml").write_text(f"dataset: {first}\n")
    assert runs.prune_uploads(runs_root) == [old]  # old and unused; the fresh one may still be previewed
    assert first.exists() and fresh.exists()
    (run / "config.yaml").unlink()  # the run is deleted: its upload goes at the next prune
    assert runs.prune_uploads(runs_root) == [first] and fresh.exists()


def _written(path, text):
    path.write_text(text)
    return path


def test_merged_from_an_older_adapter_is_stale(tmp_path):
    (tmp_path / "merged").mkdir()
    (tmp_path / "merged" / "config.json").write_text("{}")
    assert not runs.merged_is_stale(tmp_path)
    (tmp_path / "adapter").mkdir()
    weights = tmp_path / "adapter" / "adapter_model.safetensors"
    weights.write_bytes(b"0")
    later = time.time() + 5
    os.utime(weights, (later, later))
    assert runs.merged_is_stale(tmp_path)


def test_the_cache_forgets_the_least_recent_runs_past_its_budget(runs_root, monkeypatch):
    monkeypatch.setattr(runs, "CACHED_EVENTS", 5)
    for name in ("a", "b"):
        folder, log = _run(runs_root, name)
        for step in range(1, 5):
            log.append("log", step=step, loss=1.0)
        assert summarize(folder).step == 4
    assert list(runs._replays)[-1] == runs_root / "b" and runs_root / "a" not in runs._replays
    assert summarize(runs_root / "a").step == 4  # read again from the file when asked


def test_a_process_killed_between_the_renames_leaves_the_old_copy(tmp_path):
    """SIGKILL (not an exception) right after the old folder was moved aside: the next reader restores it."""
    import signal
    import subprocess
    import sys

    from tests.paths import ROOT
    (tmp_path / "adapter").mkdir()
    (tmp_path / "adapter" / "adapter_config.json").write_text("old")
    (tmp_path / "adapter.tmp").mkdir()
    (tmp_path / "adapter.tmp" / "adapter_config.json").write_text("new")
    child = ("import os, signal, sys\nfrom pathlib import Path\nfrom core import runs\nreal = os.replace\n"
             "def replace(a, b):\n    real(a, b)\n    os.kill(os.getpid(), signal.SIGKILL)\n"
             "runs.os.replace = replace\nruns.replace_folder(Path(sys.argv[1]) / 'adapter.tmp', Path(sys.argv[1]) / 'adapter')\n")
    done = subprocess.run([sys.executable, "-c", child, str(tmp_path)], cwd=ROOT, timeout=60)
    assert done.returncode == -signal.SIGKILL and not (tmp_path / "adapter").exists()
    assert summarize(tmp_path).has_adapter and (tmp_path / "adapter" / "adapter_config.json").read_text() == "old"
