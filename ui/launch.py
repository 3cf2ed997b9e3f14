"""Starting the web app safely: where it listens, login, exposure warnings, file limits, where to open it.

`launch()` is what `python app.py` calls. Where it listens is decided by
`listen_address`: a --host/--port flag, then TUNELAB_HOST/TUNELAB_PORT, then
the platform's GRADIO_SERVER_NAME/GRADIO_SERVER_PORT (a Space sets them), then
0.0.0.0 on a Space (the only way its proxy reaches the app), else 127.0.0.1;
the port defaults to 7860. Defaults elsewhere are safe: no share link, no
login needed locally. Anything reachable from other computers without a login
gets a loud warning on stderr and a red banner in the page. Once the server is
up it prints the addresses to open (`public_urls`: this machine, a RunPod
pod's proxy, a Space's own address). On a Space whose disk is wiped on
restart, a calm note says so on stderr and in the page. Gradio may serve
files only from the runs folder (core.home decides where it is); uploads are
capped. Ctrl-C, or SIGTERM (docker stop, a pod's Stop, a Space restart), stops a
training run cleanly (what was learned is saved).
"""
from __future__ import annotations

import html
import os
import signal
import sys
import threading
from typing import TYPE_CHECKING

from core import home, runs
from core.messages import localize, msg
from ui import build_app, identity
from ui.strings import t

if TYPE_CHECKING:  # the engine (torch) loads only once the arguments are known to be good
    from core.train.manager import JobManager

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
ALL_ADDRESSES = ("0.0.0.0", "::", "")  # every interface: this machine opens it at its loopback address
DEFAULT_PORT = 7860
MAX_UPLOAD = "200mb"
EXIT_OK, EXIT_BAD_INPUT = 0, 2


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


def parse_auth(auth: str | None) -> tuple[str, str] | None:
    """'USER:PASS' -> (user, pass); '' -> None. Raises ValueError with a plain message."""
    if not auth:
        return None
    user, sep, password = auth.partition(":")
    if not sep or not user or not password:
        raise ValueError(msg("bad_auth"))
    return user, password


def exposure_warning(host: str, auth: tuple | None, share: bool, lang: str = "en") -> str:
    """The warning for a setup others can reach without a login, or '' when it is safe."""
    if auth:
        return ""
    if share:
        return t("banner_share", lang)
    if host not in LOCAL_HOSTS:
        # on a Space the fix is a secret in its settings, not a restart with a flag
        return t("host.banner_space", lang) if home.on_space() else t("banner_open", lang, host=host)
    return ""


def launch(host: str | None = None, port: int | None = None, auth: str | None = None, share: bool = False,
           lang: str = "en") -> int:
    """Build the app, queue it, serve it until Ctrl-C; returns the process exit code.

    host/port None: decided by `listen_address` (environment, platform). auth None: TUNELAB_AUTH
    (how a Space secret arrives).
    """
    try:
        host, port = listen_address(host, port)
        credentials = parse_auth(os.environ.get("TUNELAB_AUTH", "") if auth is None else auth)
    except ValueError as err:
        print(t("error_line", lang, message=localize(err.args[0], lang)), file=sys.stderr)
        return EXIT_BAD_INPUT
    warning = exposure_warning(host, credentials, share, lang)
    if warning:
        bar = "!" * 78
        print(f"\n{bar}\n{warning}\n{bar}\n", file=sys.stderr, flush=True)
    notice = storage_notice(lang)
    if notice:
        print(f"\n{notice}\n", file=sys.stderr, flush=True)
    sign_in = _sign_in(lang)

    # the engine (torch, ~5 s) and gradio load only once the arguments are known to be good
    from core.train.manager import JobManager  # noqa: PLC0415 - torch/transformers, after the argument checks
    from ui.style import CSS, theme  # noqa: PLC0415 - gradio, after the argument checks

    root = runs.runs_root()
    root.mkdir(parents=True, exist_ok=True)
    manager = JobManager()
    app = build_app(manager, lang, banner=html.escape(warning), notice=html.escape(notice), sign_in=sign_in)
    # One event of each kind at a time (a second Ask waits its turn); the timers opt out.
    app.queue(default_concurrency_limit=1, max_size=256)
    try:
        app.launch(server_name=host, server_port=port, auth=credentials, share=bool(share),
                   auth_message=t("subtitle", lang), allowed_paths=[str(root)], max_file_size=MAX_UPLOAD,
                   theme=theme(), css=CSS, show_error=False, ssr_mode=False, mcp_server=False,
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
