"""What the owner allowed when starting the app, and the checks a config typed in a browser must pass.

`configure()` is called once by ui/launch.py; `current()` is what every browser
check reads. Nothing here applies to the CLI, which runs as the local user.
Public demo mode (--public-demo / TUNELAB_PUBLIC_DEMO=1) allows only the
built-in data and the visitor's own uploads, models from TUNELAB_DEMO_MODELS
(default: the embedded one), no remote code, no Hub push, and caps steps,
sequence length, batch and uploads.
"""
from __future__ import annotations

import os
from dataclasses import dataclass, field

from core.config import DEFAULT_MODEL, RunConfig
from core.messages import Msg, msg


def _env_int(name: str, default: int) -> int:
    try:
        return int(os.environ.get(name, "") or default)
    except ValueError:
        return default


@dataclass(frozen=True)
class Limits:
    """Input bounds in the page, each refused with a plain message."""
    question_chars: int = 4000
    system_chars: int = 2000
    max_new_tokens: int = 512
    upload_mb: int = 200
    uploads_per_user: int = 50


DEMO_LIMITS = Limits(question_chars=1000, system_chars=500, max_new_tokens=256, upload_mb=10, uploads_per_user=5)


@dataclass(frozen=True)
class Policy:
    allow_remote_code: bool = False
    public_demo: bool = False
    demo_models: tuple[str, ...] = (DEFAULT_MODEL,)
    demo_max_steps: int = 60
    demo_max_length: int = 512
    demo_max_batch: int = 8
    limits: Limits = field(default_factory=Limits)

    @classmethod
    def from_flags(cls, allow_remote_code: bool = False, public_demo: bool = False) -> Policy:
        """The policy for the app: flags, else TUNELAB_PUBLIC_DEMO / TUNELAB_ALLOW_REMOTE_CODE, plus demo settings."""
        demo = public_demo or os.environ.get("TUNELAB_PUBLIC_DEMO", "") == "1"
        remote = (allow_remote_code or os.environ.get("TUNELAB_ALLOW_REMOTE_CODE", "") == "1") and not demo
        models = tuple(m.strip() for m in os.environ.get("TUNELAB_DEMO_MODELS", "").split(",") if m.strip())
        return cls(allow_remote_code=remote, public_demo=demo, demo_models=models or (DEFAULT_MODEL,),
                   demo_max_steps=_env_int("TUNELAB_DEMO_MAX_STEPS", 60),
                   limits=DEMO_LIMITS if demo else Limits())


_current = Policy()


def configure(policy: Policy) -> None:
    """Set what the app allows (ui/launch.py, once, before serving)."""
    global _current
    _current = policy


def current() -> Policy:
    return _current


def check_config(config: RunConfig, policy: Policy | None = None) -> list[Msg]:
    """What a browser's config may not do under the owner's policy (paths are checked in core.access.paths)."""
    policy = policy or _current
    problems = []
    if config.trust_remote_code and not policy.allow_remote_code:
        problems.append(msg("access.remote_code_off"))
    if policy.public_demo:
        problems += _demo_problems(config, policy)
    return problems


def _demo_problems(config: RunConfig, policy: Policy) -> list[Msg]:
    problems = []
    if config.model.strip() not in policy.demo_models:
        problems.append(msg("access.demo_model", model=config.model, allowed=", ".join(policy.demo_models)))
    if not 0 < config.max_steps <= policy.demo_max_steps:
        problems.append(msg("access.demo_steps", value=config.max_steps, cap=policy.demo_max_steps))
    if config.max_length > policy.demo_max_length:
        problems.append(msg("access.demo_length", value=config.max_length, cap=policy.demo_max_length))
    if config.batch_size * config.grad_accum > policy.demo_max_batch:
        problems.append(msg("access.demo_batch", value=config.batch_size * config.grad_accum,
                            cap=policy.demo_max_batch))
    return problems
