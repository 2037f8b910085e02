"""Errors that are the input's or the device's fault, not bugs: printed with a hint, exit code 2.

The ground floor's one user-facing error base. Parts raise these (``from villagewatch.errors import
...``), never import them back from the app layer (app.cli), so a part never depends on the
CLI. Defined here, not in app/cli.py, so that ``python -m app.cli`` (where the CLI
module runs as ``__main__``) catches the same class the parts raise.
"""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping
from typing import TypeVar

T = TypeVar("T")


class UserError(Exception):
    """The input, the configuration or the device is wrong (not a bug). Printed without traceback."""

    def __init__(self, message: str, hint: str | None = None):
        super().__init__(message)
        self.hint = hint


class DeviceError(UserError):
    """A device, cable, port or peer service misbehaves (not our bug): unplugged, refused, timed out."""


class ConfigUserError(UserError):
    """A configuration value (file key, environment variable) is wrong."""


class UsageError(UserError):
    """The command line is wrong: a missing option, options that exclude each other."""


class BadEnvValue:
    """Stands in for an option default whose environment variable does not convert.

    argparse defaults are evaluated while the parser is built, for every subcommand: raising there
    would break ``--help`` and unrelated commands. The app raises ``error`` only when the parsed
    command actually uses the option (see ``raise_bad_env``).
    """

    def __init__(self, error: ConfigUserError):
        self.error = error

    def __repr__(self) -> str:
        return f"<bad environment value: {self.error}>"


def env_value(name: str, convert: Callable[[str], T], default: T,
              env: Mapping[str, str] | None = None) -> T | BadEnvValue:
    """The environment variable ``name`` converted, ``default`` when unset or empty, or a
    ``BadEnvValue`` (naming the variable and the value) when it does not convert."""
    env = os.environ if env is None else env
    raw = env.get(name, "")
    if raw == "":
        return default
    try:
        return convert(raw)
    except (TypeError, ValueError):
        kind = getattr(convert, "__name__", "value")
        return BadEnvValue(ConfigUserError(
            f"biến môi trường {name}={raw!r} không hợp lệ / environment variable {name}={raw!r} "
            f"is not a valid {kind}",
            hint=f"unset it (unset {name}) or set a valid {kind}, e.g. {name}={default!r}"))


def raise_bad_env(values: Mapping[str, object]) -> None:
    """Raise the error of the first option whose default came from a bad environment variable."""
    for value in values.values():
        if isinstance(value, BadEnvValue):
            raise value.error
