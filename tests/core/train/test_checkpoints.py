"""core/train/checkpoints.py: the loss watch (collapse warnings) and the data fingerprint."""
from core.events import EventLog, read_events
from core.runs import summarize
from core.train.checkpoints import LossWatch, data_fingerprint
from ui.live import status_html


def test_a_sudden_collapse_is_flagged_once_and_shown_in_the_train_tab(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    log.append("started", model="m", method="qlora", total_steps=100)
    watch = LossWatch(100)
    losses = [2.0 - 0.01 * i for i in range(30)] + [0.9, 0.4, 0.05, 0.01, 0.008, 0.007]
    flagged = [step for step, loss in enumerate(losses, 1) if watch.check(step, loss, log)]
    assert flagged == [35]  # 1.7 -> 0.05, 0.01, 0.008: the fall held for 3 logged steps; once only
    notice = [e for e in read_events(log.path) if e["type"] == "notice"][0]
    assert notice["warning"] and notice["key"] == "train.loss_collapse" and "bitsandbytes" in notice["message"]
    summary = summarize(tmp_path, active=True)
    assert summary.warnings and "bitsandbytes" in status_html(summary) and "bitsandbytes" in status_html(summary, "ko")


def test_ordinary_learning_is_not_flagged(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    watch = LossWatch(200)
    assert not any(watch.check(step, 3.0 * 0.97 ** step, log) for step in range(1, 201))  # 3.0 -> 0.007, smoothly
    early = LossWatch(1000)
    assert not any(early.check(step, loss, log) for step, loss in enumerate([9.0, 5.0, 2.0, 0.8, 0.5], 1))  # warm-up


def test_one_low_batch_among_ordinary_ones_is_not_flagged(tmp_path):
    # the built-in demo: a batch of short, learned Korean answers scores 0.085 between English ones near 1
    log = EventLog(tmp_path / "events.jsonl")
    watch = LossWatch(245)
    losses = [3.0, 2.5, 2.0, 1.6, 1.4] * 4 + [1.17, 0.9, 1.2, 1.0, 0.0853, 1.1, 0.9, 0.12, 1.0, 0.8]
    assert not any(watch.check(step, loss, log) for step, loss in enumerate(losses, 1))


def test_loss_near_zero_while_validation_rises_is_flagged(tmp_path):
    log = EventLog(tmp_path / "events.jsonl")
    watch = LossWatch(1000)
    watch.val_losses += [1.2, 1.5]
    assert not watch.check(1, 0.3, log)
    assert watch.check(2, 0.004, log)


def test_the_fingerprint_follows_the_rows_and_their_order():
    rows = [{"input_ids": [1, 2, 3], "labels": [-100, 2, 3]}, {"input_ids": [4], "labels": [4]}]
    same = [dict(r) for r in rows]
    assert data_fingerprint(rows, []) == data_fingerprint(same, [])
    assert data_fingerprint(rows, []) != data_fingerprint(rows[::-1], [])
    assert data_fingerprint(rows, []) != data_fingerprint(rows[:1], rows[1:])
    assert data_fingerprint(rows, []) != data_fingerprint([rows[0], {"input_ids": [4], "labels": [-100]}], [])
