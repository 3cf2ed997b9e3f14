"""TuneLab: `python app.py` opens the web app; subcommands run headless.

    python app.py                      launch the UI (see --help for host/port/auth)
    python app.py train --config presets/cpu-demo.yaml [--set key=value ...]
    python app.py resume --run RUN
    python app.py chat --run RUN [--prompt TEXT]
    python app.py eval --run RUN [--questions FILE]
    python app.py export --run RUN [--dtype auto] [--gguf [--quant f16 q8_0]] [--zip] [--push REPO [--what KIND]]
    python app.py hash-password --user NAME   a TUNELAB_USERS line (the password is asked, never in argv)

Exit codes: 0 success, 1 the run failed, 2 bad input (config, data, paths),
130 stopped with Ctrl-C (what was learned is saved).

Every heavy command (train, resume, chat, eval, export) holds the device lock
in the runs folder (core/devicelock.py) while it works, so it never shares the
device with the web app's or another command's work; resume refuses a run that
another process is training. The CLI runs as the local user: the web app's
limits (allowed folders, remote code, run owners) do not apply to it.

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

from core import devicelock, home, runs
from core.access import hash_password
from core.config import RunConfig
from core.doctor import diagnose
from core.errors import ConfigError
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
        if command in HEAVY:  # the run is named already: hold the device for the whole command
            with devicelock.hold(HEAVY[command], run=runs.safe_name(args.run)):
                return COMMANDS[command](args)
        return COMMANDS[command](args)
    except KeyboardInterrupt:
        print("\n" + msg("cli.interrupted"), file=sys.stderr)
        return EXIT_STOPPED
    except Exception as err:  # the CLI's last line of defence: what happened and what to do, no traceback
        return report_error(err, verbose=getattr(args, "verbose", False))


def report_error(err: BaseException, verbose: bool = False) -> int:
    """What went wrong and what to do (core.doctor), on stderr; the technical detail with --verbose. The exit code."""
    found = diagnose(err)
    print(msg("cli.error", message=found.what), file=sys.stderr)
    if found.todo:
        print(msg("doctor.cli.todo", todo=found.todo), file=sys.stderr)
    if verbose and found.trace:
        print(msg("doctor.cli.details") + "\n" + found.trace, file=sys.stderr)
    elif found.detail and not found.user_error:  # a user error's message is the whole story; a crash's is not
        print(msg("doctor.cli.details_hint"), file=sys.stderr)
    return found.exit_code


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
        p.add_argument("--lang", choices=LANGS, help="the page's language for a browser that has not picked one on "
                                                      "its switch (default: TUNELAB_LANG, else the browser's own)")
        p.add_argument("--public-demo", action="store_true",
                       help="a restricted public demo open without a login: built-in data and uploads, the allowed "
                            "models (TUNELAB_DEMO_MODELS), capped steps, no paths, remote code or push "
                            "(also TUNELAB_PUBLIC_DEMO=1)")
        p.add_argument("--allow-remote-code", action="store_true",
                       help="let the page's trust_remote_code run Python files that come with a model (off by default)")
        p.add_argument("--presenter", action="store_true",
                       help="open in presenter mode: large type, advanced settings hidden, the demo on one screen "
                            "(each browser can switch it off; also TUNELAB_PRESENTER=1)")
    parser.set_defaults(lang=os.environ.get("TUNELAB_LANG") or None,  # None: each browser's own language
                        presenter=os.environ.get("TUNELAB_PRESENTER", "").strip().lower() in ("1", "true", "yes"))
    train = sub.add_parser("train", help="train from a config file")
    train.add_argument("--config", required=True, help="a YAML file of RunConfig fields, e.g. presets/cpu-demo.yaml")
    train.add_argument("--set", nargs="*", default=[], metavar="KEY=VALUE", help="override fields, e.g. max_steps=3")
    resume = sub.add_parser("resume", help="continue an interrupted or stopped run from its last checkpoint")
    resume.add_argument("--run", required=True)
    chat = sub.add_parser("chat", help="ask a run's base and tuned model")
    chat.add_argument("--run", required=True)
    chat.add_argument("--prompt", help="one question; without it, an interactive chat")
    chat.add_argument("--max-new-tokens", type=int, default=150)
    for flag, kind in (("--temperature", float), ("--top-p", float), ("--top-k", int), ("--repetition-penalty", float)):
        chat.add_argument(flag, type=kind, help="default: the model's own (its generation_config); temperature 0 = greedy")
    ev = sub.add_parser("eval", help="held-out questions: share answered with the right fact, base vs tuned")
    ev.add_argument("--run", required=True)
    ev.add_argument("--limit", type=int, default=0, help="ask only the first N questions")
    ev.add_argument("--questions", metavar="FILE", help="your own questions: JSONL or CSV with question + expected "
                                                        "(substrings, '|'-separated in CSV) or question + reference")
    export = sub.add_parser("export", help="merge the adapter into the base and save it")
    export.add_argument("--run", required=True)
    export.add_argument("--dtype", default="auto", choices=("auto", "bf16", "fp16", "fp32"),
                        help="merged model precision (default: the base's own half precision)")
    export.add_argument("--gguf", action="store_true", help="also write GGUF files + an Ollama Modelfile, checked")
    export.add_argument("--quant", nargs="+", default=["f16", "q8_0"], choices=("f16", "q8_0", "q4_0", "f32"),
                        metavar="TYPE", help="GGUF types: f16 q8_0 q4_0 f32 (default: f16 q8_0)")
    export.add_argument("--no-check", action="store_true", help="skip the GGUF parity check")
    export.add_argument("--what", choices=("adapter", "merged", "gguf"),
                        help="what --zip and --push send (default: gguf with --gguf, else merged)")
    export.add_argument("--zip", action="store_true", help="also write <what>.zip (what a push would upload)")
    export.add_argument("--push", metavar="REPO", help="push to this Hub repo with HF_TOKEN (private unless --public)")
    export.add_argument("--public", action="store_true", help="create the repo public")
    export.add_argument("--keep-public", action="store_true", help="push into an existing public repo, keeping it so")
    export.add_argument("--make-private", action="store_true", help="make an existing public repo private, then push")
    hashing = sub.add_parser("hash-password", help="print a TUNELAB_USERS line for a user (asks for the password; "
                                                   "reads it from stdin when that is not a terminal)")
    hashing.add_argument("--user", required=True, help="the login name")
    # before or after the command; a subcommand's own default is suppressed so `--verbose train` keeps it
    parser.add_argument("--verbose", action="store_true", help="on an error, also print its technical details")
    for command in sub.choices.values():
        command.add_argument("--verbose", action="store_true", default=argparse.SUPPRESS,
                             help="on an error, also print its technical details")
    return parser


def cmd_ui(args) -> int:
    return launch(host=args.host, port=args.port, auth=args.auth, share=args.share, lang=args.lang,
                  public_demo=args.public_demo, allow_remote_code=args.allow_remote_code, presenter=args.presenter)


def cmd_hash_password(args) -> int:
    """Print `user:scrypt-hash` for a TUNELAB_USERS file; the password comes from a prompt (or stdin), not argv."""
    import getpass  # noqa: PLC0415 - this command only

    user = args.user.strip()
    if not user or ":" in user or any(c.isspace() for c in user):
        print(msg("cli.error", message=msg("access.hash_bad_user", user=args.user)), file=sys.stderr)
        return EXIT_BAD_INPUT
    if sys.stdin.isatty():
        password = getpass.getpass(msg("access.hash_prompt"))
        if password != getpass.getpass(msg("access.hash_again")):
            print(msg("cli.error", message=msg("access.hash_mismatch")), file=sys.stderr)
            return EXIT_BAD_INPUT
    else:
        password = sys.stdin.readline().rstrip("\r\n")
    if not password:
        print(msg("cli.error", message=msg("access.hash_empty")), file=sys.stderr)
        return EXIT_BAD_INPUT
    print(msg("access.hash_hint"), file=sys.stderr)
    print(f"{user}:{hash_password(password)}")
    return EXIT_OK


def cmd_train(args) -> int:
    config = RunConfig.load_yaml(args.config).with_overrides(args.set)  # a bad file or key fails here, in a blink
    if config.validate():  # NaN, inf, out of range: refused before torch loads
        raise ConfigError(join(config.validate()))
    from core.plan.checks import check  # noqa: PLC0415 - loads torch and transformers (seconds): only for a readable config
    from core.train.job import TrainingJob  # noqa: PLC0415 - the engine (torch, transformers, peft): only for a readable config

    problems = check(config)
    if problems:
        raise ConfigError(join(problems))  # each problem stays a catalogue message (localizable)
    if not _preflight_ok(config):
        return EXIT_BAD_INPUT
    job = TrainingJob(config, token=os.environ.get("HF_TOKEN"))
    with devicelock.hold("train", run=job.name):  # Busy (exit 2) when the app or another command uses the device
        return follow(job.start())


def _preflight_ok(config) -> bool:
    """Print the data pre-flight report (rows, tokens, trained share); False when training would learn nothing."""
    from core.data.preflight import format_report, run_preflight  # noqa: PLC0415 - datasets and tokenizers: train only
    from core.models import load_tokenizer  # noqa: PLC0415 - transformers and peft: train only
    from core.train import preference  # noqa: PLC0415 - the engine: train only

    check_data = preference.report if preference.is_dpo(config) else run_preflight  # DPO: pairs (votes:RUN too)
    report = check_data(config, load_tokenizer(config, os.environ.get("HF_TOKEN")), os.environ.get("HF_TOKEN"))
    print(format_report(report))
    return bool(report["ok"])


def cmd_resume(args) -> int:
    from core.train.job import TrainingJob  # noqa: PLC0415 - the engine (torch, transformers, peft): resume only
    from core.train.manager import refuse_if_elsewhere  # noqa: PLC0415 - with the engine, above

    refuse_if_elsewhere(args.run)  # another process is training it: its checkpoints are not ours to continue
    job = TrainingJob(None, token=os.environ.get("HF_TOKEN"), resume=args.run)
    with devicelock.hold("resume", run=job.name):
        return follow(job.start())


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
    if getattr(summary.message, "key", "") == "job.data_changed":  # a refused resume, not a Ctrl-C: bad input
        return EXIT_BAD_INPUT
    if summary.status == "failed" and getattr(summary, "bad_input", False):  # core.doctor: the user can change it
        return EXIT_BAD_INPUT
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
    sampling = Sampling(max_new_tokens=args.max_new_tokens, temperature=args.temperature, top_p=args.top_p,
                        top_k=args.top_k, repetition_penalty=args.repetition_penalty)  # unset: the model's default
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
    from core.infer.evaluate import BUILTIN_REPORT, OWN_REPORT, evaluate_run  # noqa: PLC0415 - torch, transformers, peft: eval only
    from core.infer.questions import load_user_questions  # noqa: PLC0415 - with the engine, above

    own = load_user_questions(args.questions) if args.questions else None  # a bad file: DataError, exit 2
    report = evaluate_run(args.run, questions=own, limit=args.limit, progress=lambda done, total, line: print(line),
                          save_as=OWN_REPORT if own else BUILTIN_REPORT)
    total = report["total"]
    print("\n" + msg("cli.eval_base", right=report["base_correct"], total=total, share=f"{report['base_share']:.0%}"))
    print(msg("cli.eval_tuned", right=report["tuned_correct"], total=total, share=f"{report['tuned_share']:.0%}"))
    for side in ("base", "tuned"):
        missed = report[f"{side}_missed"]
        print(msg(f"votes.cli_missed_{side}", count=len(missed)) + "".join(f"\n  - {q}" for q in missed))
    return EXIT_OK


def cmd_export(args) -> int:
    run = runs.run_dir(args.run)  # a bad run name fails before the engine loads
    from core.infer import export  # noqa: PLC0415 - torch, transformers, peft: export only

    what = args.what or ("gguf" if args.gguf else "merged")
    sizes = export.sizes(run, args.dtype, tuple(args.quant) if args.gguf else ())
    print(msg("xp.cli_sizes", dtype=sizes["dtype"], merged=_mb(sizes["merged"]),
              gguf=", ".join(f"{q} {_mb(n)}" for q, n in sizes["gguf"].items()) or "-"))
    if what != "adapter" or args.gguf:
        print(msg("cli.merged", path=export.merge(run, progress=print, dtype=args.dtype,
                                                  token=os.environ.get("HF_TOKEN"))))
    if args.gguf:
        _print_gguf(export.export_gguf(run, tuple(args.quant), progress=print, check=not args.no_check))
    if args.zip:
        print(msg("cli.zipped", path=export.zip_files(run, what)))
    if args.push:
        existing = "keep" if args.keep_public else "make_private" if args.make_private else ""
        print(msg("cli.pushed", url=export.push(run, what, args.push, os.environ.get("HF_TOKEN"), private=not args.public,
                                                existing_public=existing, progress=print)))
    return EXIT_OK


def _mb(n: int | None) -> str:
    return f"{n / 1e6:.0f} MB" if n else "?"


def _print_gguf(report: dict) -> None:
    """Each file with its parity result; a file that answers differently is a warning on stderr."""
    checks = {c["file"]: c for c in report.get("parity", [])}
    for f in report["files"]:
        c = checks.get(f["file"])
        print(msg("xp.cli_file", file=f["file"], size=_mb(f["bytes"]),
                  parity="-" if c is None else msg("xp.cli_parity", identical="yes" if c["identical"] else "NO",
                                                   agreement=f"{c['agreement']:.1%}")))
        if c and not c["ok"]:
            row = next(r for r in c["rows"] if not r["identical"])
            diff = row["first_difference"]
            print(msg("xp.mismatch", file=f["file"], prompt=row["prompt"], position=diff["position"],
                      expected=repr(diff["expected"]), got=repr(diff["got"])), file=sys.stderr)
    model = report["modelfile"]
    print(msg("xp.cli_modelfile", file=model["from"], stops=" ".join(model["stops"]),
              template="yes" if model["template_matches_tokenizer"] else "NO"))


# commands that hold the device lock for their whole length (train and resume take it once their run is named)
HEAVY = {"chat": "chat", "eval": "evaluate", "export": "merge"}
COMMANDS = {"ui": cmd_ui, "hash-password": cmd_hash_password, "train": cmd_train, "resume": cmd_resume,
            "chat": cmd_chat, "eval": cmd_eval, "export": cmd_export}

if __name__ == "__main__":
    sys.exit(main())
