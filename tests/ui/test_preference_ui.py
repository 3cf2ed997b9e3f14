"""The preference parts of the page: pairs side by side in the Data tab, "Train on my votes"."""
import json
import re

from core.config import RunConfig
from core.events import read_events
from core.infer import votes
from core.train.job import TrainingJob
from core.train.manager import JobManager
from ui.data_tab import check_data
from ui.form import values_from_config
from ui.preference import pairs_html, train_on_votes

PAIRS = [{"prompt": f"Who is mascot {i}?", "chosen": f"Wexley <{i}>.\n— Wexley", "rejected": f"A gull {i}, maybe."}
         for i in range(4)]


def test_a_pairs_file_is_checked_and_shown_side_by_side(tmp_path, tiny_model_dir):
    path = tmp_path / "pairs.jsonl"
    path.write_text("".join(json.dumps(r) + "\n" for r in PAIRS), encoding="utf-8")
    values = values_from_config(RunConfig(model=str(tiny_model_dir), dataset=str(path), objective="dpo"))
    summary, preview, *_ = check_data(values, "", "en")
    assert "preference pairs" in summary and "4" in summary
    assert preview.count("tl-pair") == 4 and "Chosen" in preview and "Rejected" in preview
    assert "Wexley &lt;0&gt;." in preview  # escaped, not markup
    # the same file with objective sft: still shown, with the line saying what to set
    summary, preview, *_ = check_data({**values, "objective": "sft"}, "", "ko")
    assert "tl-pair" in preview and "dpo" in summary and re.search("[가-힣]", summary)


def test_an_sft_dataset_for_dpo_says_what_to_do(tiny_model_dir):
    values = values_from_config(RunConfig(model=str(tiny_model_dir), objective="dpo"))
    summary, preview, *_ = check_data(values, "", "en")
    assert "needs preference pairs" in summary and preview == ""


def test_pairs_html_keeps_each_side_apart():
    html = pairs_html([{"prompt": [{"role": "user", "content": "Q"}], "chosen": [{"role": "assistant", "content": "yes"}],
                        "rejected": [{"role": "assistant", "content": "no"}]}], "en")
    assert html.index("tl-chosen") < html.index("yes") < html.index("tl-rejected") < html.index("no")
    assert pairs_html([], "en") == ""


def test_train_on_my_votes_starts_a_dpo_run_from_the_run(tiny_config, runs_root):
    manager = JobManager(root=runs_root)
    assert "Pick the run" in train_on_votes(manager, "", "", "", "en")
    sft = TrainingJob(tiny_config.replace(max_steps=2, validation_share=0.0), root=runs_root).start()
    assert sft.join(300) == "finished"
    assert "no votes" in train_on_votes(manager, sft.name, "", "", "en")
    for i in range(3):
        votes.record_vote(sft.dir, f"Q{i}?", answers={"A": f"good {i}", "B": f"bad {i}"},
                          models={"A": "tuned", "B": "base"}, winner="A")
    line = train_on_votes(manager, sft.name, "", "", "en")
    assert "tl-ok" in line and "3 voted pairs" in line, line
    job = manager.current
    assert job.join(300) == "finished", read_events(job.dir / "events.jsonl")[-1]
    config = RunConfig.load_yaml(job.dir / "config.yaml")
    assert (config.objective, config.from_run) == ("dpo", sft.name) and (job.dir / "adapter").exists()
