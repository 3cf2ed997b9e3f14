"""The demo benchmark: cpu-demo from Start to finished, then the held-out evaluation.

    python -m bench.demo [--preset presets/cpu-demo.yaml] [--limit N] [--set key=value ...]

Prints the wall time of the training (model already cached, as after the
first `make run`), base vs tuned share of held-out questions answered with the
right fact, and three before/after answers. Targets (issue 5, 2-core CPU):
training <= 5 minutes, tuned >= 80%, base <= 10%.
"""
from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--preset", default="presets/cpu-demo.yaml")
    parser.add_argument("--limit", type=int, default=0, help="ask only the first N held-out questions")
    parser.add_argument("--runs", default="", help="runs folder (default: a temporary one)")
    parser.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override preset fields, as in app.py train")
    args = parser.parse_args()
    os.environ["TUNELAB_RUNS_DIR"] = args.runs or tempfile.mkdtemp(prefix="tunelab-demo-")

    from core import hardware
    from core.config import RunConfig
    from core.infer.evaluate import evaluate_run
    from core.models import resolve
    from core.train.job import TrainingJob

    config = RunConfig.load_yaml(args.preset).with_overrides(args.set).replace(run_name="demo-bench")
    resolve(config.model)  # the embedded model is converted once; the target assumes it is cached
    started = time.time()
    job = TrainingJob(config).start()
    outcome = job.join()
    train_seconds = time.time() - started
    summary = job.snapshot()
    if outcome != "finished":
        sys.exit(f"training {outcome}: {summary.message}")
    eval_started = time.time()
    report = evaluate_run(job.name, limit=args.limit)
    eval_seconds = time.time() - eval_started
    logs = summary.logs
    tokens_per_sec = sum(e["tokens_per_sec"] for e in logs) / max(1, len(logs))

    print("\nBefore / after (held-out questions):")
    for row in [r for r in report["rows"] if r["tuned_ok"]][:3]:
        print(f"\nQ: {row['question']}\n  base:  {row['base']}\n  tuned: {row['tuned']}")
    missed = [r for r in report["rows"] if not r["tuned_ok"]]
    if missed:
        print(f"\nMissed by the tuned model ({len(missed)}):")
        for row in missed:
            print(f"  Q: {row['question']}  [{'/'.join(row['expected'])}]\n     tuned: {row['tuned'][:160]}")
    events = [json.loads(line) for line in (job.dir / "events.jsonl").read_text().splitlines()]
    picked = next((e for e in events if e["type"] == "notice" and "precision" in e), {})
    print(f"\n## Demo benchmark ({hardware.device_name()}: {hardware.cpu_model_name()}, bf16 flags "
          f"{', '.join(hardware.cpu_bf16_flags()) or 'none'}; preset {args.preset} {' '.join(args.set)})")
    print(f"precision: {picked.get('precision', '?')} - {picked.get('message', '')}")
    print(f"steps: {summary.step}, first loss {logs[0]['loss']:.3f} -> last {logs[-1]['loss']:.3f}, "
          f"mean {tokens_per_sec:.0f} tokens/s")
    print(f"Start -> finished: {train_seconds:.0f} s ({train_seconds / 60:.1f} min)  [target <= 5 min]")
    print(f"held-out evaluation: {report['total']} questions in {eval_seconds:.0f} s")
    print(f"base:  {report['base_correct']}/{report['total']} = {report['base_share']:.0%}  [target <= 10%]")
    print(f"tuned: {report['tuned_correct']}/{report['total']} = {report['tuned_share']:.0%}  [target >= 80%]")


if __name__ == "__main__":
    main()
