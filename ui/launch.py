"""Starting the web app safely: login, network exposure warnings, file limits.

`launch()` is what `python app.py` calls. Defaults are safe: 127.0.0.1 only,
no share link, no login needed locally. Anything reachable from other
computers without a login gets a loud warning on stderr and a red banner in
the page. Gradio may serve files only from the runs folder; uploads are
capped. Ctrl-C stops a training run cleanly (what was learned is saved).
"""
from __future__ import annotations

import html
import sys
from typing import TYPE_CHECKING

from core import runs
from core.messages import localize, msg
from ui import build_app
from ui.strings import t

if TYPE_CHECKING:  # the engine (torch) loads only once the arguments are known to be good
    from core.train.manager import JobManager

LOCAL_HOSTS = ("127.0.0.1", "localhost", "::1")
MAX_UPLOAD = "200mb"
EXIT_OK, EXIT_BAD_INPUT = 0, 2


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
        return t("banner_open", lang, host=host)
    return ""


def launch(host: str = "127.0.0.1", port: int = 7860, auth: str | None = None, share: bool = False,
           lang: str = "en") -> int:
    """Build the app, queue it, serve it until Ctrl-C; returns the process exit code."""
    try:
        credentials = parse_auth(auth)
    except ValueError as err:
        print(t("error_line", lang, message=localize(err.args[0], lang)), file=sys.stderr)
        return EXIT_BAD_INPUT
    warning = exposure_warning(host, credentials, share, lang)
    if warning:
        bar = "!" * 78
        print(f"\n{bar}\n{warning}\n{bar}\n", file=sys.stderr, flush=True)

    # the engine (torch, ~5 s) and gradio load only once the arguments are known to be good
    from core.train.manager import JobManager  # noqa: PLC0415 - torch/transformers, after the argument checks
    from ui.style import CSS, theme  # noqa: PLC0415 - gradio, after the argument checks

    root = runs.runs_root()
    root.mkdir(parents=True, exist_ok=True)
    manager = JobManager()
    app = build_app(manager, lang, banner=html.escape(warning))
    # One event of each kind at a time (a second Ask waits its turn); the timers opt out.
    app.queue(default_concurrency_limit=1, max_size=256)
    try:
        app.launch(server_name=host, server_port=port, auth=credentials, share=bool(share),
                   auth_message=t("subtitle", lang), allowed_paths=[str(root)], max_file_size=MAX_UPLOAD,
                   theme=theme(), css=CSS, show_error=False, ssr_mode=False, mcp_server=False,
                   enable_monitoring=False, run_history=False, footer_links=[], quiet=False)
    except KeyboardInterrupt:
        pass
    except OSError as err:  # most often: the port is taken
        print(t("port_failed", lang, host=host, port=port, error=str(err).rstrip(".")), file=sys.stderr)
        return EXIT_BAD_INPUT
    finally:
        _stop_training(manager, lang)
    return EXIT_OK


def _stop_training(manager: JobManager, lang: str = "en", wait_seconds: float = 60) -> None:
    """On exit, stop a running job so its adapter is saved; resume continues it later."""
    job = manager.current
    if job:
        print(t("exit_stopping", lang, run=job.name), file=sys.stderr, flush=True)
        job.stop()
        job.join(wait_seconds)
