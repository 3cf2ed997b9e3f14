"""TuneLab: `python app.py` opens the web app; subcommands run headless.

    python app.py                      launch the UI (see --help for host/port/auth)
    python app.py train --config presets/cpu-demo.yaml [--set key=value ...]
    python app.py resume --run RUN
    python app.py chat --run RUN [--prompt TEXT]
    python app.py eval --run RUN
    python app.py export --run RUN [--zip] [--push REPO]

Exit codes: 0 success, 1 the run failed, 2 bad input (config, data, paths),
130 stopped with Ctrl-C (what was learned is saved).

The web app listens where the platform says (ui/launch.py: a flag, then
TUNELAB_HOST/TUNELAB_PORT, then GRADIO_SERVER_NAME/GRADIO_SERVER_PORT, then
0.0.0.0 on a Hugging Face Space, else 127.0.0.1:7860) and prints where to open
it. Files live where core/home.py says (TUNELAB_HOME, a Space's /data); the
Hugging Face cache follows unless HF_HOME is set. HF_TOKEN is the Hub token.

What it prints comes from the text catalogue (core/catalog/en/cli.yaml and the
others), in English. Only light modules are imported at the top: torch,
transformers and gradio load inside the command that needs them, so `--help`
answers at once and a bad config file is refused before the engine loads
(those imports carry `# noqa: PLC0415` with their reason).
"""
from __future__ import annotations

import argparse
import os
import sys
import time
import warnings

from tqdm import tqdm

from core import home, runs
from core.config import RunConfig
from core.errors import ConfigError, explain
from core.messages import LANGS, join, msg
from ui.launch import launch

EXIT_OK, EXIT_FAILED, EXIT_BAD_INPUT, EXIT_STOPPED = 0, 1, 2, 130


def main(argv: list[str] | None = None) -> int:
    home.use_home_for_hf_cache()  # first: huggingface_hub reads HF_HOME once, when it is imported
    args = build_parser().parse_args(argv)
    os.environ.setdefault("TOKENIZERS_PARALLELISM", "false")
    warnings.filterwarnings("ignore")
    command = args.command or "ui"
    try:
        return COMMANDS[command](args)
    except KeyboardInterrupt:
        print("\n" + msg("cli.interrupted"), file=sys.stderr)
        return EXIT_STOPPED
    except Exception as err:  # the CLI's last line of defence: one readable line, no traceback
        message, code = explain(err)
        print(msg("cli.error", message=message), file=sys.stderr)
        return code


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="app.py", description="TuneLab: fine-tune a language model and chat with it.")
    sub = parser.add_subparsers(dest="command", metavar="COMMAND")
    # `ui` repeats the launch options; its own defaults are suppressed so `app.py --port 8000 ui` keeps 8000
    ui = sub.add_parser("ui", help="launch the web app (the default)", argument_default=argparse.SUPPRESS)
    for p in (parser, ui):
        # host/port/auth default to None, so ui.launch can tell a flag from the environment and the platform
        p.add_argument("--host", help="address to listen on (default: TUNELAB_HOST, else GRADIO_SERVER_NAME, "
                                      "else 0.0.0.0 on a Hugging Face Space, else 127.0.0.1)")
        p.add_argument("--port", type=int, help="port (default: TUNELAB_PORT, else GRADIO_SERVER_PORT, else 7860)")
        p.add_argument("--auth", help="USER:PASS to require a login (default: TUNELAB_AUTH)")
        p.add_argument("--share", action="store_true", help="create a public gradio.live link (off by default)")
        p.add_argument("--lang", choices=LANGS, help="interface language (default: TUNELAB_LANG, else en)")
    parser.set_defaults(lang=os.environ.get("TUNELAB_LANG", "en"))
    train = sub.add_parser("train", help="train from a config file")
    train.add_argument("--config", required=True, help="a YAML file of RunConfig fields, e.g. presets/cpu-demo.yaml")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override fields, e.g. max_steps=3")
    resume = sub.add_parser("resume", help="continue an interrupted or stopped run from its last checkpoint")
    resume.add_argument("--run", required=True)
    chat = sub.add_parser("chat", help="ask a run's base and tuned model")
    chat.add_argument("--run", required=True)
    chat.add_argument("--prompt", help="one question; without it, an interactive chat")
    chat.add_argument("--max-new-tokens", type=int, default=150)
    ev = sub.add_parser("eval", help="held-out questions: share answered with the right fact, base vs tuned")
    ev.add_argument("--run", required=True)
    ev.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    export = sub.add_parser("export", help="merge the adapter into the base and save it")
    export.add_argument("--run", required=True)
    export.add_argument("--zip", action="store_true", help="also write merged.zip")
    export.add_argument("--push", metavar="REPO", help="push the merged model to this Hub repo (needs HF_TOKEN)")
    return parser


def cmd_ui(args) -> int:
    return launch(host=args.host, port=args.port, auth=args.auth, share=args.share, lang=args.lang)


def cmd_train(args) -> int:
    config = RunConfig.load_yaml(args.config).with_overrides(args.set)  # a bad file or key fails here, in a blink
    from core.plan.checks import check  # noqa: PLC0415 - loads torch and transformers (seconds): only for a readable config
    from core.train.job import TrainingJob  # noqa: PLC0415 - the engine (torch, transformers, peft): only for a readable config

    problems = check(config)
    if problems:
        raise ConfigError(join(problems))  # each problem stays a catalogue message (localizable)
    if not _preflight_ok(config):
        return EXIT_BAD_INPUT
    return follow(TrainingJob(config, token=os.environ.get("HF_TOKEN")).start())


def _preflight_ok(config) -> bool:
    """Print the data pre-flight report (rows, tokens, trained share); False when training would learn nothing."""
    from core.data.preflight import format_report, run_preflight  # noqa: PLC0415 - datasets and tokenizers: train only
    from core.models import load_tokenizer  # noqa: PLC0415 - transformers and peft: train only

    report = run_preflight(config, load_tokenizer(config, os.environ.get("HF_TOKEN")), os.environ.get("HF_TOKEN"))
    print(format_report(report))
    return bool(report["ok"])


def cmd_resume(args) -> int:
    from core.train.job import TrainingJob  # noqa: PLC0415 - the engine (torch, transformers, peft): resume only
    return follow(TrainingJob(None, token=os.environ.get("HF_TOKEN"), resume=args.run).start())


def follow(job) -> int:
    """Show a progress bar for a running job until it ends; Ctrl-C stops it cleanly."""
    print(msg("cli.run", name=job.name, path=job.dir))
    bar, shown = None, ""
    try:
        while job.running:
            time.sleep(0.5)
            bar, shown = _draw(job.snapshot(), bar, shown)
    except KeyboardInterrupt:
        print("\n" + msg("cli.stopping"), file=sys.stderr)
        job.stop()
        job.join()
    summary = job.snapshot()
    _draw(summary, bar, shown)
    if bar:
        bar.close()
    print(msg("cli.outcome", status=summary.status, message=summary.message))
    return {"finished": EXIT_OK, "stopped": EXIT_STOPPED}.get(summary.status, EXIT_FAILED)


def _draw(summary, bar, shown):
    if summary.progress and summary.progress != shown and bar is None:
        print(summary.progress)
        shown = summary.progress
    if summary.total_steps and bar is None:
        bar = tqdm(total=summary.total_steps, unit="step", dynamic_ncols=True)
    if bar is not None and summary.step > bar.n:
        log = summary.last_log
        bar.update(summary.step - bar.n)
        bar.set_postfix(loss=log.get("loss"), tok_s=log.get("tokens_per_sec"))
    return bar, shown


def cmd_chat(args) -> int:
    from core.infer.chat import get_chat_model  # noqa: PLC0415 - torch, transformers, peft: chat only
    from core.infer.generate import Sampling, answer, build_messages, compare  # noqa: PLC0415 - torch: chat only

    chat = get_chat_model(args.run, progress=print)
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=0.0, repetition_penalty=1.1)
    questions = [args.prompt] if args.prompt else iter(lambda: input("\n" + msg("cli.you")), "")
    for question in questions:
        messages = build_messages([], question, chat.config.system_prompt)
        if not chat.has_base:  # full fine-tuning: the saved model is the tuned one only
            print("\n" + msg("cli.tuned_answer", text=answer(chat.model, chat.tokenizer, messages, sampling)))
            continue
        base = tuned = ""
        for pair in compare(chat.model, chat.tokenizer, messages, sampling):  # grows token by token; the last is whole
            base, tuned = pair
        print("\n" + msg("cli.base_answer", text=base) + "\n" + msg("cli.tuned_answer", text=tuned))
    return EXIT_OK


def cmd_eval(args) -> int:
    from core.infer.evaluate import evaluate_run  # noqa: PLC0415 - torch, transformers, peft: eval only
    report = evaluate_run(args.run, limit=args.limit, progress=lambda done, total, line: print(line))
    total = report["total"]
    print("\n" + msg("cli.eval_base", right=report["base_correct"], total=total, share=f"{report['base_share']:.0%}"))
    print(msg("cli.eval_tuned", right=report["tuned_correct"], total=total, share=f"{report['tuned_share']:.0%}"))
    return EXIT_OK


def cmd_export(args) -> int:
    run = runs.run_dir(args.run)  # a bad run name fails before the engine loads
    from core.infer import export  # noqa: PLC0415 - torch, transformers, peft: export only

    merged = export.merge(run, progress=print)
    print(msg("cli.merged", path=merged))
    if args.zip:
        print(msg("cli.zipped", path=export.zip_folder(merged, run / "merged.zip")))
    if args.push:
        print(msg("cli.pushed", url=export.push_to_hub(merged, args.push, os.environ.get("HF_TOKEN"))))
    return EXIT_OK


COMMANDS = {"ui": cmd_ui, "train": cmd_train, "resume": cmd_resume, "chat": cmd_chat,
            "eval": cmd_eval, "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
