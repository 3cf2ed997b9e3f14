"""Polling helper the tests share: wait until a background job (a run, a worker) reaches a state."""
from __future__ import annotations

import time
from collections.abc import Callable


def wait_for(condition: Callable[[], object], timeout: float = 120.0, every: float = 0.1) -> None:
    """Return once `condition()` is true; fail the test after `timeout` seconds."""
    end = time.time() + timeout
    while time.time() < end:
        if condition():
            return
        time.sleep(every)
    raise AssertionError("timed out")
