"""Every command and subcommand answers --help, even when the
environment variables it reads are broken (issue 14: a bad VW_* variable must never be a traceback)."""

from __future__ import annotations

import argparse
import subprocess
import sys

import pytest

from app.cli import build_parser

BROKEN_ENV = {"VW_HTTP_PORT": "abc", "VW_PORTAL_PORT": "x1", "VW_DEMO_DURATION": "soon",
              "VW_MQTT_URL": "not a url", "VW_INFLUX_URL": "::", "VW_DEADLETTER_MAX_BYTES": "lots"}


def commands(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[tuple[str, ...]]:
    found = [prefix]
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                found += commands(sub, (*prefix, name))
    return found


ALL = commands(build_parser())


def test_there_are_many_commands():
    assert len(ALL) > 20, ALL


@pytest.mark.parametrize("path", ALL, ids=lambda p: " ".join(p) or "villagewatch")
def test_help_works_under_broken_environment(path, monkeypatch, capsys):
    for key, value in BROKEN_ENV.items():
        monkeypatch.setenv(key, value)
    from app.cli import main
    with pytest.raises(SystemExit) as exit_:
        main([*path, "--help"])
    assert exit_.value.code == 0
    out = capsys.readouterr()
    assert "Traceback" not in out.out + out.err
    assert "usage:" in out.out


def test_a_broken_variable_is_a_message_when_used():
    env = {"PATH": "/usr/bin:/bin", **BROKEN_ENV}
    out = subprocess.run([sys.executable, "-m", "app.cli", "demo"], capture_output=True, text=True,
                         env=env, timeout=60)
    assert out.returncode == 2
    assert "Traceback" not in out.stderr
    assert "VW_" in out.stderr
