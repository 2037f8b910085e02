"""Every command and subcommand answers --help, even when the
environment variables it reads are broken (issue 14: a bad VW_* variable must never be a traceback)."""

from __future__ import annotations

import argparse
import re
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


def _options_without_help(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()) -> list[str]:
    missing = []
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for name, sub in action.choices.items():
                missing += _options_without_help(sub, (*prefix, name))
        elif not isinstance(action, argparse._HelpAction) and not (action.help or "").strip():
            missing.append(f"villagewatch {' '.join(prefix)} {'/'.join(action.option_strings) or action.dest}")
    return missing


def test_every_option_of_every_command_has_a_help_line():
    missing = _options_without_help(build_parser())
    assert not missing, "options without a help line:\n" + "\n".join(missing)


# Commands that speak to technicians in the field: their help is Vietnamese first ("vi / en").
TECHNICIAN_COMMANDS = ("device", "ota", "ca")
_VIETNAMESE = re.compile(r"[àáảãạăắằẳẵặâấầẩẫậđèéẻẽẹêếềểễệìíỉĩịòóỏõọôốồổỗộơớờởỡợùúủũụưứừửữựỳýỷỹỵ]", re.I)


def _help_lines(parser: argparse.ArgumentParser, prefix: tuple[str, ...] = ()):
    for action in parser._actions:
        if isinstance(action, argparse._SubParsersAction):
            for choice in action._choices_actions:
                yield (*prefix, choice.dest), choice.help or ""
            for name, sub in action.choices.items():
                yield from _help_lines(sub, (*prefix, name))
        elif not isinstance(action, argparse._HelpAction):
            yield (*prefix, "/".join(action.option_strings) or action.dest), action.help or ""


def test_technician_commands_speak_vietnamese_first():
    english_only = [f"villagewatch {' '.join(path)}: {text}" for path, text in _help_lines(build_parser())
                    if path[0] in TECHNICIAN_COMMANDS and not _VIETNAMESE.search(text.split(" / ")[0])]
    assert not english_only, "help lines without Vietnamese first:\n" + "\n".join(english_only)
