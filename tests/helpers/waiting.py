"""Waiting in a test for something another process does."""

from __future__ import annotations

import time


def wait_for(condition, what: str, timeout: float = 180, interval: float = 0.5):
    """`condition()`'s first true value, asked every `interval` seconds; an assertion
    naming `what` after `timeout` seconds."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        found = condition()
        if found:
            return found
        time.sleep(interval)
    raise AssertionError(f"timed out waiting for {what}")
