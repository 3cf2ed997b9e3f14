"""The preference demo: a short DPO run on the built-in pairs changes the answers' style, not their facts.

    python -m bench.preference_demo [--runs DIR] [--from-run NAME] [--limit N] [--set key=value ...]

1. the cpu-demo SFT run (presets/cpu-demo.yaml; or `--from-run`, a finished one in `--runs`),
2. a DPO run from its adapter on builtin:demo-preferences (core/data/builtin/demo_preferences.jsonl: the
   chosen answers are two sentences signed "— Wexley", the rejected ones ramble or sign off wrongly),
3. the English held-out questions (demo_eval.jsonl, none of them in either training file) answered
   greedily by both adapters: the share in the wanted style (two sentences + the puffin's sign-off),
   and the share that still names the right fact.
Seeded, so the shares repeat on the same machine; times depend on the machine's load.
"""
from __future__ import annotations

import argparse
import os
import re
import sys
import tempfile
import time

SIGN_OFF = re.compile(r"[—–-]\s*Wexley\s*$")
SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[A-Z\"'])")  # "5:45 a.m. to 2:15" is one sentence
# pure DPO (dpo_sft_weight=0) never learnt the sign-off: at lr 2e-4 0% style, 93% facts; at 1e-3 0%, 77%.
# With the chosen answers' NLL term (weight 1, the default): 2e-4 gives 97% style, 93% facts; 1e-3 100%, 100%.
DPO_DEFAULTS = ["dataset=builtin:demo-preferences", "epochs=2", "learning_rate=1e-3", "dpo_beta=0.1",
                "dpo_sft_weight=1.0",
                "batch_size=4", "validation_share=0.1", "probe_prompts=[]"]


def signed_off(answer: str) -> bool:
    return bool(SIGN_OFF.search(answer.strip()))


def sentence_count(answer: str) -> int:
    body = SIGN_OFF.sub("", answer.strip()).strip()
    return len([s for s in SENTENCE_END.split(body) if s.strip()])


def wanted_style(answer: str) -> bool:
    """Two sentences (or one) and the sign-off with the puffin's name."""
    return signed_off(answer) and sentence_count(answer) <= 2


def _train(config) -> tuple[object, float]:
    from core.train.job import TrainingJob

    started = time.time()
    job = TrainingJob(config).start()
    outcome = job.join()
    if outcome != "finished":
        sys.exit(f"{job.name}: {outcome}: {job.snapshot().message}")
    return job, time.time() - started


def _answers(sft_dir, dpo_dir, questions: list[str]) -> tuple[list[str], list[str]]:
    """Greedy answers of the SFT adapter and the DPO adapter, from one loaded base."""
    import torch
    from peft import PeftModel
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from core.config import RunConfig
    from core.infer.generate import Sampling, answer_batch, build_messages
    from core.models import resolve

    config = RunConfig.load_yaml(sft_dir / "config.yaml")
    tokenizer = AutoTokenizer.from_pretrained(sft_dir / "adapter")
    base = AutoModelForCausalLM.from_pretrained(resolve(config.model), dtype=torch.float32)
    model = PeftModel.from_pretrained(base, str(sft_dir / "adapter"), adapter_name="sft")
    model.load_adapter(str(dpo_dir / "adapter"), adapter_name="dpo")
    model.eval()
    sampling = Sampling(max_new_tokens=96, temperature=0, repetition_penalty=1.0)
    conversations = [build_messages([], q) for q in questions]
    out = {}
    for name in ("sft", "dpo"):
        model.set_adapter(name)  # one adapter per batch: generate uses the active one
        out[name] = []
        for at in range(0, len(conversations), 8):
            chunk = conversations[at: at + 8]
            out[name] += answer_batch(model, tokenizer, chunk, [name] * len(chunk), sampling)
    return out["sft"], out["dpo"]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--runs", default="", help="runs folder (default: a temporary one)")
    parser.add_argument("--from-run", default="", help="a finished cpu-demo run in --runs to start from")
    parser.add_argument("--dpo-run", default="", help="a finished DPO run in --runs: only ask the questions")
    parser.add_argument("--limit", type=int, default=0, help="ask only the first N held-out questions")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="DPO run overrides")
    args = parser.parse_args()
    os.environ["TUNELAB_RUNS_DIR"] = args.runs or tempfile.mkdtemp(prefix="tunelab-pref-")

    from core import hardware, runs
    from core.config import RunConfig
    from core.infer.evaluate import is_correct, load_questions
    from core.train import preference

    sft_seconds = 0.0
    if args.from_run:
        sft_dir, sft_name = runs.run_dir(args.from_run), args.from_run
    else:
        job, sft_seconds = _train(RunConfig.load_yaml("presets/cpu-demo.yaml").replace(run_name="pref-sft"))
        sft_dir, sft_name = job.dir, job.name
    source = RunConfig.load_yaml(sft_dir / "config.yaml")
    dpo_config = preference.dpo_config(source, sft_name).with_overrides(DPO_DEFAULTS + args.set)
    if args.dpo_run:
        dpo_dir, dpo_seconds = runs.run_dir(args.dpo_run), 0.0
        dpo_config = RunConfig.load_yaml(dpo_dir / "config.yaml")
    else:
        dpo_job, dpo_seconds = _train(dpo_config.replace(run_name="pref-dpo"))
        dpo_dir = dpo_job.dir
    steps = runs.summarize(dpo_dir).step

    questions = [q for q in load_questions() if q["lang"] == "en"]
    questions = questions[: args.limit] if args.limit else questions
    before, after = _answers(sft_dir, dpo_dir, [q["question"] for q in questions])
    share = lambda answers, ok: sum(map(ok, answers)) / len(answers)
    facts = lambda answers: sum(is_correct(a, q["expected"]) for a, q in zip(answers, questions)) / len(questions)

    for q, b, a in list(zip(questions, before, after))[:3]:
        print(f"\nQ: {q['question']}\n  SFT: {b}\n  DPO: {a}")
    print(f"\n## Preference demo ({hardware.device_name()}: {hardware.cpu_model_name()}, "
          f"{os.cpu_count()} logical CPUs; shared machine: times are not final)")
    print(f"held-out English questions: {len(questions)}; DPO: {_pair_count()} pairs in the file, "
          f"{steps} steps, beta {dpo_config.dpo_beta}, SFT weight {dpo_config.dpo_sft_weight}, "
          f"lr {dpo_config.learning_rate}")
    print("| | SFT run (before) | after DPO |\n|---|---|---|")
    print(f"| wanted style (<= 2 sentences + '— Wexley') | {share(before, wanted_style):.0%} | "
          f"{share(after, wanted_style):.0%} |")
    print(f"| signs off '— Wexley' | {share(before, signed_off):.0%} | {share(after, signed_off):.0%} |")
    print(f"| <= 2 sentences | {share(before, lambda a: sentence_count(a) <= 2):.0%} | "
          f"{share(after, lambda a: sentence_count(a) <= 2):.0%} |")
    print(f"| right fact | {facts(before):.0%} | {facts(after):.0%} |")
    words = lambda answers: sum(len(a.split()) for a in answers) / len(answers)
    print(f"| words per answer (mean) | {words(before):.1f} | {words(after):.1f} |")
    print(f"time: SFT {sft_seconds:.0f} s, DPO {dpo_seconds:.0f} s from Start to finished (0 = reused)")


def _pair_count() -> int:
    from core.data.sources import BUILTINS

    return len(BUILTINS["builtin:demo-preferences"].read_text(encoding="utf-8").splitlines())


if __name__ == "__main__":
    main()
