"""The headless CLI: train from a preset, then chat, evaluate and export, with clear exit codes."""
import json
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


def _run(args, runs_root, timeout=900):
    import os
    env = {**os.environ, "TUNELAB_RUNS_DIR": str(runs_root)}
    return subprocess.run([sys.executable, "app.py", *args], cwd=ROOT, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_help_lists_the_commands(runs_root):
    out = _run(["--help"], runs_root).stdout
    for command in ("train", "chat", "export", "eval", "resume"):
        assert command in out


@pytest.mark.slow
def test_train_preset_then_chat_and_export(runs_root):
    done = _run(["train", "--config", "presets/cpu-demo.yaml", "--set", "max_steps=3", "run_name=cli"], runs_root)
    assert done.returncode == 0, done.stderr[-3000:]
    run = runs_root / "cli"
    for part in ("config.yaml", "events.jsonl", "adapter/adapter_config.json", "adapter/adapter_model.safetensors",
                 "adapter/tokenizer_config.json"):
        assert (run / part).exists(), part
    chat = _run(["chat", "--run", "cli", "--prompt", "Who founded Brindlewick Bakehouse?", "--max-new-tokens", "12"], runs_root)
    assert chat.returncode == 0 and "[base]" in chat.stdout and "[tuned]" in chat.stdout, chat.stderr[-2000:]
    evaluation = _run(["eval", "--run", "cli", "--limit", "3"], runs_root)
    assert evaluation.returncode == 0, evaluation.stderr[-2000:]
    assert "[3/3]" in evaluation.stdout and "Base:  " in evaluation.stdout and "Tuned: " in evaluation.stdout
    assert json.loads((run / "eval.json").read_text(encoding="utf-8"))["total"] == 3
    export = _run(["export", "--run", "cli", "--zip"], runs_root)
    assert export.returncode == 0, export.stderr[-2000:]
    assert (run / "merged" / "config.json").exists() and (run / "merged.zip").exists()


def test_bad_input_gives_one_line_and_exit_code_2(runs_root, tmp_path):
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_rank: 8\n")
    done = _run(["train", "--config", str(bad)], runs_root)
    assert done.returncode == 2 and "lora_rank" in done.stderr and "Traceback" not in done.stderr
    missing = _run(["export", "--run", "no-such-run"], runs_root)
    assert missing.returncode == 2 and "Traceback" not in missing.stderr


def test_config_problems_are_joined_so_each_is_localized(tmp_path, capsys):
    """`train` refuses a config with every problem in one error; each stays a catalogue message."""
    import argparse

    import app
    from core.errors import ConfigError
    from core.messages import localize
    bad = tmp_path / "bad.yaml"
    bad.write_text("lora_r: 0\nlearning_rate: 5\n")
    with pytest.raises(ConfigError) as caught:
        app.cmd_train(argparse.Namespace(config=str(bad), set=[]))
    message = caught.value.message
    assert "LoRA rank must be" in message and "Learning rate must be" in message
    korean = localize(message, "ko")
    assert "LoRA 랭크는" in korean and "학습률은" in korean and "must" not in korean
    assert app.main(["train", "--config", str(bad)]) == 2
    assert capsys.readouterr().err.startswith("Error: LoRA rank must be between 1 and 1024")


def test_chat_after_full_fine_tuning_shows_only_the_tuned_answer(tiny_config, runs_root):
    """A full fine-tune keeps no separate base in the run: the CLI must not label the tuned answer 'base'."""
    from core.train.job import TrainingJob
    job = TrainingJob(tiny_config.replace(method="full", max_steps=2, run_name="full-cli")).start()
    assert job.join(120) == "finished", job.snapshot().message
    chat = _run(["chat", "--run", "full-cli", "--prompt", "Hi", "--max-new-tokens", "4"], runs_root)
    assert chat.returncode == 0, chat.stderr[-2000:]
    assert "[tuned]" in chat.stdout and "[base]" not in chat.stdout


def test_a_resume_refused_for_changed_data_exits_2_not_as_a_stop(capsys):
    """The job ends "stopped" (so Resume works once the data is back), but for the CLI it is bad input."""
    import app
    from core.messages import msg
    from core.runs import RunSummary

    class RefusedResume:
        name, dir, running = "r", Path("r"), False

        def snapshot(self):
            return RunSummary(name="r", path=Path("r"), status="stopped", message=msg("job.data_changed"))

    assert app.follow(RefusedResume()) == app.EXIT_BAD_INPUT
    assert "changed" in capsys.readouterr().out
