"""A growing delay after failed logins, per source address and user name.

Each failure doubles the wait before the next try from that source for that name
(1 s, 2 s, 4 s … up to a minute); a try during the wait is refused without
checking the password, so guessing gets no faster by sending more. A success
clears the record. Kept in memory: a restart forgets it, which costs a guesser a
restart of the server they cannot cause.
"""
from __future__ import annotations

import threading
import time

BASE_DELAY, MAX_DELAY = 1.0, 60.0


class LoginThrottle:
    def __init__(self, base: float = BASE_DELAY, cap: float = MAX_DELAY, clock=time.monotonic):
        self.base, self.cap, self.clock = base, cap, clock
        self._failures: dict[tuple[str, str], tuple[int, float]] = {}  # (source, user) -> (count, last time)
        self._lock = threading.Lock()

    def wait_left(self, source: str, user: str) -> float:
        """Seconds until (source, user) may try again; 0 when it may now."""
        with self._lock:
            count, last = self._failures.get((source, user), (0, 0.0))
        return max(0.0, last + self.delay(count) - self.clock()) if count else 0.0

    def delay(self, failures: int) -> float:
        return min(self.cap, self.base * 2 ** (failures - 1)) if failures > 0 else 0.0

    def failed(self, source: str, user: str) -> float:
        """Record a failure; returns the wait it sets."""
        with self._lock:
            count = self._failures.get((source, user), (0, 0.0))[0] + 1
            self._failures[(source, user)] = (count, self.clock())
            if len(self._failures) > 10_000:  # a flood of made-up names must not grow memory without end
                oldest = sorted(self._failures, key=lambda k: self._failures[k][1])[:5_000]
                for key in oldest:
                    del self._failures[key]
        return self.delay(count)

    def succeeded(self, source: str, user: str) -> None:
        with self._lock:
            self._failures.pop((source, user), None)
