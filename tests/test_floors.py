"""The floors are enforced: import-linter's contracts (pyproject.toml) and mypy (strict on the
ground floor villagewatch/, normal on rules/). docs/architecture.md explains the floors."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parent.parent
BIN = Path(sys.executable).parent
CONFIG = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))


def _missing(packages: list[str]) -> list[str]:
    return [p for p in packages if not (REPO / p / "__init__.py").exists()]


def test_import_contracts_are_kept():
    missing = _missing(CONFIG["tool"]["importlinter"]["root_packages"])
    if missing:  # the app/ and simulator/ moves land separately (issue 14)
        pytest.xfail(f"packages of the target layout not there yet: {', '.join(missing)}")
    out = subprocess.run([str(BIN / "lint-imports")], cwd=REPO, capture_output=True, text=True, timeout=300)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_ground_floor_and_rules_type_check():
    missing = [f for f in CONFIG["tool"]["mypy"]["files"] if not (REPO / f).exists()]
    if missing:
        pytest.xfail(f"folders of the target layout not there yet: {', '.join(missing)}")
    out = subprocess.run([str(BIN / "mypy")], cwd=REPO, capture_output=True, text=True, timeout=600)
    assert out.returncode == 0, out.stdout[-4000:] + out.stderr[-2000:]


def test_the_ground_floor_imports_no_part():
    """A quick check without import-linter's graph: every module of villagewatch/ imports only
    villagewatch and third-party code (no `ignore_imports` debt is allowed on the ground floor)."""
    parts = ("edge", "ingest", "alerts", "portal", "dashboards", "reports", "firmware_tools", "simulator",
             "rules", "app")
    offenders = []
    for path in sorted((REPO / "villagewatch").glob("*.py")):
        for n, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
            words = line.strip().split()
            if len(words) >= 2 and words[0] in ("import", "from") and words[1].split(".")[0] in parts:
                offenders.append(f"villagewatch/{path.name}:{n}: {line.strip()}")
    assert not offenders, "\n".join(offenders)
