"""Errors that are the input's or the device's fault, not bugs: printed with a hint, exit code 2.

Defined here, not in villagewatch/cli.py, so that ``python -m villagewatch.cli`` (where the CLI
module runs as ``__main__``) catches the same class the parts raise.
"""

from __future__ import annotations


class UserError(Exception):
    """The input, the configuration or the device is wrong (not a bug). Printed without traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint
