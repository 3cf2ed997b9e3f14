"""Starting the web app safely: where it listens, login, exposure warnings, file limits, where to open it.

`launch()` is what `python app.py` calls. Where it listens is decided by
`listen_address`: a --host/--port flag, then TUNELAB_HOST/TUNELAB_PORT, then
the platform's GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (a Space sets them), then
0.0.0.0 on a Space (the only way its proxy reaches the app), else 127.0.0.1;
the port defaults to 7860. Defaults elsewhere are safe: no share link, no
login needed locally (see Safety below for anything others can reach). Once the server is
up it prints the addresses to open (`public_urls`: this machine, a RunPod
pod's proxy, a Space's own address). On a Space whose disk is wiped on
restart, a calm note says so on stderr and in the page. Ctrl-C, or SIGTERM
(docker stop, a pod's Stop, a Space restart), stops a training run cleanly
(what was learned is saved).

Safety: anything others can reach (not loopback, or --share) needs a login
(accounts from TUNELAB_USERS / TUNELAB_AUTH, or Hugging Face sign-in limited to
TUNELAB_HF_USERS) or the owner's --public-demo; otherwise the app refuses to
start with one line saying how to add one. Logins go through `LoginGate`: a
growing delay per source address and user after each failure. Gradio serves no
folder of ours (no runs, no uploads); a download is handed out per request.
The owner's choices (--allow-remote-code, --public-demo) become the
core.access policy every browser action is checked against.
"""
from __future__ import annotations

import asyncio
import contextvars
import html
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from core import access, home, runs
from core.access import Accounts, LoginThrottle, Policy
from core.messages import localize, msg
from ui import build_app, identity
from ui.strings import t

if TYPE_CHECKING:  # the engine (torch) loads only once the arguments are known to be good
    from core.train.manager import JobManager

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ALL_ADDRESSES = ("0.0.0.0", "::", "")  # every interface: this machine opens it at its loopback address
DEFAULT_PORT = 7860
EXIT_OK, EXIT_BAD_INPUT = 0, 2
_login_source: contextvars.ContextVar[str] = contextvars.ContextVar("login_source", default="?")


def listen_address(flag_host: str | None = None, flag_port: int | str | None = None) -> tuple[str, int]:
    """(host, port) to listen on: a flag, then TUNELAB_*, then GRADIO_SERVER_*, then the platform default.

    Host and port are decided apart (TUNELAB_PORT with GRADIO_SERVER_NAME is fine). A bad port raises
    ValueError with a catalogue message naming where the value came from.
    """
    host = _choose("--host", flag_host, ("TUNELAB_HOST", "GRADIO_SERVER_NAME"))
    port = _choose("--port", flag_port, ("TUNELAB_PORT", "GRADIO_SERVER_PORT"))
    chosen_host = host[1] if host else ("0.0.0.0" if home.on_space() else "127.0.0.1")  # a Space's proxy needs 0.0.0.0
    return chosen_host, (_port(*port) if port else DEFAULT_PORT)


def _choose(flag: str, flag_value: object, env_names: tuple[str, ...]) -> tuple[str, str] | None:
    """(where from, value): the flag when given, else the first environment variable set, else None."""
    if flag_value is not None and str(flag_value).strip():
        return flag, str(flag_value).strip()
    for name in env_names:
        value = os.environ.get(name, "").strip()
        if value:
            return name, value
    return None


def _port(name: str, value: str) -> int:
    try:
        port = int(value)
    except ValueError:
        port = 0
    if not 1 <= port <= 65535:
        raise ValueError(msg("host.bad_port", name=name, value=value))
    return port


def public_urls(host: str, port: int) -> list[str]:
    """The addresses a person can open: this machine's, then a RunPod pod's proxy or a Space's own address.

    Bound to every interface (0.0.0.0), this machine opens it at 127.0.0.1 (a browser can't open 0.0.0.0).
    The pod and Space addresses go through the platform's proxy, which can't reach an app bound to
    loopback only, so they are left out then.
    """
    urls = [f"http://{_url_host(host)}:{port}"]
    if host in LOCAL_HOSTS:
        return urls
    pod = os.environ.get("RUNPOD_POD_ID", "").strip()
    if pod:
        urls.append(f"https://{pod}-{port}.proxy.runpod.net")
    space_host = os.environ.get("SPACE_HOST", "").split(",")[0].strip()  # a custom domain comes as a list
    if space_host:
        urls.append(f"https://{space_host.rstrip('/')}")
    return urls


def _url_host(host: str) -> str:
    if host in ALL_ADDRESSES:
        return "[::1]" if host == "::" else "127.0.0.1"
    return f"[{host}]" if ":" in host else host  # an IPv6 address goes in brackets in a URL


def storage_notice(lang: str = "en") -> str:
    """The note for a Space whose runs are wiped on restart, or '' when they are kept."""
    return t("host.storage_lost", lang) if home.storage_is_lost_on_restart() else ""


def exposure_refusal(host: str, login: bool, share: bool, demo: bool = False, lang: str = "en") -> str:
    """The one line refusing a setup others could reach without a login, or '' when it may start."""
    if login or demo:
        return ""
    if share:
        return t("access.share_needs_login", lang)
    if host not in LOCAL_HOSTS:
        return t("access.exposed_needs_login", lang, host=host)
    return ""


class LoginGate:
    """gradio's auth (`check`): the accounts' check behind a growing delay per source address and user.

    A try during the wait after a failure is refused unchecked; each failure also sleeps its delay
    (asynchronously: other visitors are not held up), so guessing gets no faster with more requests.
    """

    def __init__(self, accounts: Accounts, throttle: LoginThrottle | None = None):
        self.accounts, self.throttle = accounts, throttle or LoginThrottle()

    async def check(self, username: str, password: str) -> bool:
        """What gradio calls: a coroutine *function* (gradio tests inspect.iscoroutinefunction; an object with
        an async __call__ would hand it an un-awaited coroutine, which is truthy: everyone would be let in)."""
        source = _login_source.get()
        if self.throttle.wait_left(source, username) > 0:
            await asyncio.sleep(self.throttle.wait_left(source, username))
            return False
        ok = await asyncio.to_thread(self.accounts.check, username, password)  # scrypt: off the event loop
        if ok:
            self.throttle.succeeded(source, username)
            return True
        await asyncio.sleep(self.throttle.failed(source, username))
        return False


class LoginSource:
    """ASGI middleware: the client's address, for LoginGate (gradio passes it only the name and password).

    The socket's peer is used, never X-Forwarded-For, which a guesser could vary at will; behind a
    proxy that makes the delay per user.
    """

    def __init__(self, app):
        self.app = app

    async def __call__(self, scope, receive, send):
        client = scope.get("client") if scope.get("type") == "http" else None
        reset = _login_source.set(client[0] if client else "?")
        try:
            await self.app(scope, receive, send)
        finally:
            _login_source.reset(reset)


def launch(host: str | None = None, port: int | None = None, auth: str | None = None, share: bool = False,
           lang: str | None = None, public_demo: bool = False, allow_remote_code: bool = False,
           presenter: bool = False) -> int:
    """Build the app, queue it, serve it until Ctrl-C; returns the process exit code.

    `presenter` (--presenter): presenter mode on for a browser that has not switched it (ui/presenter.py).

    `lang` (--lang): the page's language for a browser that made no choice on its switch, and the language
    of these terminal lines; None: each browser starts in its own language, the lines are English.

    host/port None: decided by `listen_address` (environment, platform). auth None: TUNELAB_AUTH
    (how a Space secret arrives) and TUNELAB_USERS. Exposed without a login or --public-demo: exit 2.
    """
    page_lang, lang = lang, lang or "en"
    try:
        host, port = listen_address(host, port)
        accounts = access.load_accounts(auth)
    except ValueError as err:  # a bad port, --auth, or TUNELAB_USERS file: one line
        print(t("error_line", lang, message=localize(err.args[0], lang)), file=sys.stderr)
        return EXIT_BAD_INPUT
    if auth:
        print(t("access.auth_in_argv", lang), file=sys.stderr, flush=True)
    policy = Policy.from_flags(allow_remote_code=allow_remote_code, public_demo=public_demo)
    access.configure(policy)
    sign_in = _sign_in(lang)
    identity.configure(accounts, identity.hf_users_from_env(), demo=policy.public_demo)
    refusal = exposure_refusal(host, identity.login_configured(), share, policy.public_demo, lang)
    if refusal:
        print(refusal, file=sys.stderr, flush=True)
        return EXIT_BAD_INPUT
    notice = storage_notice(lang)
    if notice:
        print(f"\n{notice}\n", file=sys.stderr, flush=True)

    # the engine (torch, ~5 s) and gradio load only once the arguments are known to be good
    from starlette.middleware import Middleware  # noqa: PLC0415 - with gradio, after the argument checks

    from core.train.manager import JobManager  # noqa: PLC0415 - torch/transformers, after the argument checks
    from ui.language import HEAD  # noqa: PLC0415 - gradio, after the argument checks
    from ui.style import CSS, theme  # noqa: PLC0415 - gradio, after the argument checks

    runs.runs_root().mkdir(parents=True, exist_ok=True)
    manager = JobManager()
    # the page's notes in each browser's language (the lines above are the terminal's)
    app = build_app(manager, page_lang, notice=lambda code: html.escape(storage_notice(code)), sign_in=sign_in,
                    demo=(lambda code: html.escape(demo_note(policy, code))) if policy.public_demo else "",
                    presenter=presenter)
    # One event of each kind at a time (a second Ask waits its turn); the timers opt out.
    app.queue(default_concurrency_limit=1, max_size=256)
    try:
        # no allowed_paths: gradio serves none of our folders; files are handed out per request
        app.launch(server_name=host, server_port=port, auth=LoginGate(accounts).check if accounts else None,
                   share=bool(share), auth_message=t("subtitle", lang), max_file_size=f"{policy.limits.upload_mb}mb",
                   app_kwargs={"middleware": [Middleware(LoginSource)]},
                   theme=theme(), css=CSS, head=HEAD, show_error=False, ssr_mode=False, mcp_server=False,
                   enable_monitoring=False, run_history=False, footer_links=[], quiet=False,
                   prevent_thread_lock=True)  # returns once it serves, so the addresses print after gradio's line
        print_urls(host, port, lang)
        _stop_on_sigterm()
        app.block_thread()  # until Ctrl-C (or SIGTERM)
    except KeyboardInterrupt:
        pass
    except OSError as err:  # most often: the port is taken
        print(t("port_failed", lang, host=host, port=port, error=str(err).rstrip(".")), file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        _stop_training(manager, lang)
    return EXIT_OK


def demo_note(policy: Policy, lang: str = "en") -> str:
    """The visible "demo mode" note: what a visitor may do here."""
    return t("access.demo_note", lang, models=", ".join(policy.demo_models), steps=policy.demo_max_steps)


def print_urls(host: str, port: int, lang: str = "en") -> None:
    """One "Open TuneLab at …" line per address (a pod's start script looks for the RunPod one)."""
    for url in public_urls(host, port):
        print(t("host.open_at", lang, url=url), flush=True)
    if os.environ.get("RUNPOD_POD_ID") and host in LOCAL_HOSTS:
        print(t("host.runpod_loopback", lang, host=host, port=port), file=sys.stderr, flush=True)


def _stop_on_sigterm() -> None:
    """Treat SIGTERM like Ctrl-C: docker stop, RunPod's Stop and a Space restart send it, and the running
    training must still save what it learned (see _stop_training)."""
    if threading.current_thread() is threading.main_thread():  # only the main thread may set a handler
        signal.signal(signal.SIGTERM, _interrupt)


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def _sign_in(lang: str) -> bool:
    """Whether to show "Sign in with Hugging Face"; says on stderr why not when the Space asked for it."""
    if not identity.sign_in_requested():
        return False
    blocker = identity.sign_in_blocker()
    if blocker:
        print(localize(blocker, lang), file=sys.stderr, flush=True)
    return blocker is None


def _stop_training(manager: JobManager, lang: str = "en", wait_seconds: float = 60) -> None:
    """On exit, stop a running job so its adapter is saved; resume continues it later."""
    job = manager.current
    if job:
        print(t("exit_stopping", lang, run=job.name), file=sys.stderr, flush=True)
        job.stop()
        job.join(wait_seconds)
