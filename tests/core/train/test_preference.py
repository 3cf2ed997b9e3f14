"""Preference training: the pair format, the DPO loss, votes -> a DPO run -> an adapter plain peft loads."""
import json

import pytest
import torch

from core.config import RunConfig
from core.data.preference import encode_pairs, load_pairs, pairs_report
from core.errors import DataError
from core.events import read_events
from core.infer import votes
from core.runs import summarize
from core.train import dpo, preference
from core.train.job import TrainingJob
from tests.waiting import wait_for

PLAIN = [{"prompt": f"Question {i}?", "chosen": f"Short answer {i}. Wexley", "rejected": f"A long rambling answer {i}."}
         for i in range(6)]
CONVERSATIONAL = [{"prompt": [{"role": "user", "content": f"Q{i}?"}],
                   "chosen": [{"role": "assistant", "content": f"Good {i}."}],
                   "rejected": [{"role": "assistant", "content": f"Bad {i}."}]} for i in range(6)]
IMPLICIT = [{"chosen": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"Good {i}."}],
             "rejected": [{"role": "user", "content": f"Q{i}?"}, {"role": "assistant", "content": f"Bad {i}."}]}
            for i in range(6)]


def _file(tmp_path, rows, name="pairs.jsonl"):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r) + "\n" for r in rows), encoding="utf-8")
    return str(path)


@pytest.mark.parametrize("rows", [PLAIN, CONVERSATIONAL, IMPLICIT], ids=["plain", "conversational", "implicit"])
def test_pair_files_are_detected_and_previewed(rows, tmp_path, tokenizer):
    config = RunConfig(dataset=_file(tmp_path, rows), objective="dpo", validation_share=0.0)
    pairs, report = load_pairs(config)
    assert report["format"] == "preference" and len(pairs) == 6
    assert pairs[0]["prompt"][-1]["role"] == "user" and pairs[0]["chosen"][0]["role"] == "assistant"
    assert pairs[0]["chosen"] != pairs[0]["rejected"]
    shown = pairs_report(config, tokenizer)
    assert shown["ok"] and len(shown["pairs"]) == 5 and shown["examples"] == 6 and shown["trained_tokens"] > 0


def test_only_answer_tokens_carry_labels(tokenizer):
    config = RunConfig(objective="dpo")
    pair = {"prompt": [{"role": "user", "content": "Who is the mascot?"}],
            "chosen": [{"role": "assistant", "content": "Wexley."}],
            "rejected": [{"role": "assistant", "content": "A gull."}]}
    [item], _ = encode_pairs([pair], tokenizer, config)
    chosen = [t for t in item["labels"][: item["split"]] if t != -100]
    rejected = [t for t in item["labels"][item["split"]:] if t != -100]
    assert "Wexley." in tokenizer.decode(chosen) and "Who" not in tokenizer.decode(chosen)
    assert "A gull." in tokenizer.decode(rejected) and "mascot" not in tokenizer.decode(rejected)


def test_the_wrong_objective_for_the_data_says_what_to_do(tmp_path, tokenizer):
    from core.data.pipeline import load_examples
    pairs = _file(tmp_path, PLAIN)
    with pytest.raises(DataError) as err:
        load_examples(RunConfig(dataset=pairs))
    assert err.value.message.key == "preference.needs_dpo" and "Objective" in err.value.message
    with pytest.raises(DataError) as err:
        load_pairs(RunConfig(dataset="builtin:demo", objective="dpo"))
    assert err.value.message.key == "preference.needs_pairs"
    # the Data tab still shows the pairs, with the line that says what to set
    report = pairs_report(RunConfig(dataset=pairs), tokenizer)
    assert report["pairs"] and not report["ok"] and report["problems"][0].key == "preference.needs_dpo"


def test_new_fields_round_trip_and_are_validated(tmp_path):
    config = RunConfig().with_overrides(["objective=dpo", "from_run=run-1", "dpo_beta=0.25", "dataset=votes:run-1"])
    config.save_yaml(tmp_path / "c.yaml")
    again = RunConfig.load_yaml(tmp_path / "c.yaml")
    assert (again.objective, again.from_run, again.dpo_beta, again.dataset) == ("dpo", "run-1", 0.25, "votes:run-1")
    keys = lambda c: {p.key for p in c.validate()}
    assert "preference.beta_range" in keys(config.replace(dpo_beta=0))
    assert "preference.sft_weight_range" in keys(config.replace(dpo_sft_weight=-1))
    assert not keys(config.replace(dpo_sft_weight=0)) & {"preference.sft_weight_range"}
    assert "preference.needs_lora" in keys(config.replace(method="full"))
    assert "preference.from_run_needs_dpo" in keys(config.replace(objective="sft"))
    assert "config.not_a_choice" in keys(config.replace(objective="ppo"))


def test_packed_and_padded_log_probs_agree(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    from core.train.fastpath import fast_attention
    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    config = RunConfig(objective="dpo")
    items, _ = encode_pairs(load_pairs(RunConfig(dataset="x", objective="dpo"), rows=PLAIN[:3])[0], tokenizer, config)
    with torch.no_grad(), fast_attention(model):
        packed = dpo.sequence_logps(model, items, config, "cpu")
        padded = dpo.sequence_logps(model, items, config.replace(packing=False), "cpu")
    assert packed.shape == (6,) and torch.allclose(packed, padded, atol=1e-3)
    losses, margins = dpo.dpo_loss(packed, packed, 0.1)  # policy == reference: loss log(2), margin 0
    assert torch.allclose(losses, torch.full((3,), 0.6931), atol=1e-4) and not margins.any()


def test_the_sft_weight_adds_the_chosen_answers_mean_nll(tiny_model_dir, tokenizer):
    from transformers import AutoModelForCausalLM

    model = AutoModelForCausalLM.from_pretrained(tiny_model_dir, dtype=torch.float32).eval()
    config = RunConfig(objective="dpo", packing=False)
    items, _ = encode_pairs(load_pairs(RunConfig(dataset="x", objective="dpo"), rows=PLAIN[:3])[0], tokenizer, config)
    with torch.no_grad():
        logps = dpo.sequence_logps(model, items, config, "cpu")
        # the model's own mean token loss on each chosen side alone: what the SFT term must add
        nll = torch.stack([model(input_ids=torch.tensor([p["input_ids"][: p["split"]]]),
                                 labels=torch.tensor([p["labels"][: p["split"]]])).loss for p in items])
    reference = logps + torch.tensor([0.5, -0.5] * 3)  # some margin, so DPO's own part is not trivial
    pure, margins = dpo.dpo_loss(logps, reference, 0.1)
    assert torch.equal(dpo.dpo_loss(logps, reference, 0.1, 0.0, dpo.chosen_tokens(items))[0], pure)
    mixed, same = dpo.dpo_loss(logps, reference, 0.1, 2.5, dpo.chosen_tokens(items))
    assert torch.allclose(mixed - pure, 2.5 * nll, atol=1e-4) and torch.equal(margins, same)
    assert (mixed > pure).all()


def _wait_for(condition, timeout=300):
    wait_for(condition, timeout)


def _sft_run(config):
    job = TrainingJob(config.replace(max_steps=2, validation_share=0.0)).start()
    assert job.join(300) == "finished"
    return job


def _vote(run_dir, n=4):
    for i in range(n):
        votes.record_vote(run_dir, f"Who is mascot {i}?", answers={"A": f"Wexley {i}.", "B": f"Some bird {i}, maybe."},
                          models={"A": "tuned", "B": "base"}, winner="A")


def test_votes_train_a_dpo_run_that_stops_and_resumes_with_the_same_reference(tiny_config, tiny_model_dir, runs_root):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM
    sft = _sft_run(tiny_config)
    _vote(sft.dir)
    config = preference.dpo_config(RunConfig.load_yaml(sft.dir / "config.yaml"), sft.name, max_steps=40,
                                   batch_size=2, save_steps=1, eval_steps=100,
                                   dpo_sft_weight=0.0)  # pure DPO: step 1's loss is then exactly log 2
    job = TrainingJob(config).start()
    _wait_for(lambda: summarize(job.dir, True).step >= 1)
    job.stop()
    assert job.join(300) == "stopped", read_events(job.dir / "events.jsonl")[-1]
    stopped_at = summarize(job.dir).step
    reference_before = (job.dir / "reference_logps.json").read_text()
    config_path = job.dir / "config.yaml"
    RunConfig.load_yaml(config_path).replace(max_steps=stopped_at + 1).save_yaml(config_path)  # end soon after
    job = TrainingJob(None, resume=job.name).start()
    assert job.join(300) == "finished", read_events(job.dir / "events.jsonl")[-1]
    assert (job.dir / "reference_logps.json").read_text() == reference_before  # the same reference after Resume
    saved = RunConfig.load_yaml(job.dir / "config.yaml")
    assert saved.dataset == str((job.dir / "preferences.jsonl").resolve())  # the votes, frozen in the run
    assert len((job.dir / "preferences.jsonl").read_text().splitlines()) == 4
    events = read_events(job.dir / "events.jsonl")
    logs = [e for e in events if e["type"] == "log"]
    assert [e["step"] for e in logs] == list(range(1, stopped_at + 2)) and all(e["loss"] > 0 for e in logs)
    assert [e.get("key") for e in events].count("preference.reference") == 1 and "resumed" in [e["type"] for e in events]
    assert abs(logs[0]["loss"] - 0.6931) < 0.05  # step 1: the policy is the reference, the DPO loss is log 2
    assert any(e["type"] == "started" and e["objective"] == "dpo" for e in events)
    reference = json.loads((job.dir / "reference_logps.json").read_text())
    assert len(reference["logps"]) == 4
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), job.dir / "adapter")
    start = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(tiny_model_dir), sft.dir / "adapter")
    moved = [not torch.equal(a, b) for (n, a), (_, b) in zip(model.named_parameters(), start.named_parameters())
             if "lora_" in n]
    assert moved and any(moved)  # the adapter it started from was trained further


def test_a_dpo_run_is_refused_plainly_without_its_start(tiny_config, runs_root):
    from core.errors import ConfigError
    config = tiny_config.replace(objective="dpo", from_run="nowhere", dataset="votes:nowhere")
    with pytest.raises(ConfigError) as err:
        TrainingJob(config)
    assert "nowhere" in err.value.message
    sft = _sft_run(tiny_config)
    with pytest.raises(DataError) as err:
        preference.vote_rows(config.replace(dataset=f"votes:{sft.name}"))
    assert err.value.message.key == "preference.no_votes"
    other = preference.dpo_config(RunConfig.load_yaml(sft.dir / "config.yaml"), sft.name).replace(lora_r=4)
    assert "preference.settings_differ" in {p.key for p in preference.problems(other)}


@pytest.mark.slow
def test_two_dpo_steps_on_the_embedded_model(runs_root):
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    from core.models import resolve
    sft = _sft_run(RunConfig(max_length=128, batch_size=2, lora_r=4, lora_alpha=8, chat_template="chatml"))
    _vote(sft.dir, 3)
    job = TrainingJob(preference.dpo_config(RunConfig.load_yaml(sft.dir / "config.yaml"), sft.name,
                                            max_steps=2, batch_size=2)).start()
    assert job.join(600) == "finished"
    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(resolve(sft.config.model)), job.dir / "adapter")
    assert any("lora_A" in n for n, _ in model.named_parameters())


def test_the_cli_report_reads_voted_pairs_and_says_when_there_are_none(runs_root, tokenizer, embedded_dir):
    from core.data.preflight import format_report
    folder = runs_root / "voted"
    folder.mkdir(parents=True)
    config = RunConfig(model=str(embedded_dir), objective="dpo", dataset="votes:voted", validation_share=0.0)
    empty = format_report(preference.report(config, tokenizer))
    assert "no votes where one answer won" in empty
    _vote(folder, 3)
    text = format_report(preference.report(config, tokenizer))
    assert "Data: 3 rows -> 3 examples, read as preference pairs" in text and "Ready:" in text, text
