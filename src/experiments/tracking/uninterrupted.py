"""Store writes that Ctrl-C or SIGTERM cannot cut in half.

A KeyboardInterrupt raised inside SQLAlchemy's commit leaves that connection holding
SQLite's write lock: the next write of the same process, the one that ends the run
KILLED, then waits for it forever. So a signal that arrives during a write is held until
the write is done, then acted on as it would have been at once."""

from __future__ import annotations

import functools
import os
import signal
import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import ParamSpec, TypeVar

HELD = (signal.SIGINT, signal.SIGTERM)

P = ParamSpec("P")
R = TypeVar("R")


@contextmanager
def signals_held() -> Iterator[None]:
    """Holds SIGINT and SIGTERM for the block; the first one that came is delivered to
    the handler in place before it (a KeyboardInterrupt, most often) once the block ends.
    Outside the main thread, where Python runs no signal handler, it does nothing."""
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    arrived: list[int] = []
    previous = {s: signal.signal(s, lambda signum, frame: arrived.append(signum)) for s in HELD}
    try:
        yield
    finally:
        for s, handler in previous.items():
            signal.signal(s, handler)
        if arrived:
            _deliver(arrived[0], previous[arrived[0]])


def _deliver(signum: int, handler) -> None:
    if callable(handler):
        handler(signum, None)
    elif handler == signal.SIG_DFL:
        os.kill(os.getpid(), signum)  # the default action, now that it is back in place


def held(write: Callable[P, R]) -> Callable[P, R]:
    """`write` under `signals_held`."""

    @functools.wraps(write)
    def wrapper(*args: P.args, **kwargs: P.kwargs) -> R:
        with signals_held():
            return write(*args, **kwargs)

    return wrapper
