"""The error a user can fix, shared by the entry point and the plugins it runs (the
Optuna sweeper): said as one line, exit code 1, and as the reason a sweep's parent run
ends FAILED. Light on purpose: Hydra's plugin scan imports the sweeper on every command."""

from __future__ import annotations


class UserError(RuntimeError):
    """An error the user can fix (data, a store, a folder); its message is one line."""
