"""What stays open across the jobs of one command and must be ended when the command stops
early (Ctrl-C, SIGTERM, an error): a sweep's parent run. Its owner registers how to end
it; the entry point, on its way out, ends it with the command's status and reason. The
entry point does not know the owner: Hydra builds the sweep's callback from the config.
"""

from __future__ import annotations

from collections.abc import Callable

# Each ends what it holds with (status, reason) and returns its run id, or None when it
# had nothing open.
_OPEN: list[Callable[[str, str], str | None]] = []


def interrupted_reason(error: KeyboardInterrupt) -> str:
    """Ctrl-C raises a KeyboardInterrupt without a message; SIGTERM's names its signal."""
    return f"interrupted ({str(error) or 'SIGINT'})"


def on_stop(end: Callable[[str, str], str | None]) -> None:
    """`end(status, reason)` runs when the command stops early (`stop`)."""
    _OPEN.append(end)


def stop(status: str, reason: str) -> list[str]:
    """Ends everything registered, KILLED on an interrupt or FAILED on an error, with the
    reason; returns the ids of the runs it ended."""
    ended = []
    while _OPEN:
        run_id = _OPEN.pop()(status, reason)
        if run_id is not None:
            ended.append(run_id)
    return ended
