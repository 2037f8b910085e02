"""Shared fixtures: a real Mosquitto + InfluxDB per test, started by villagewatch.stack."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from villagewatch.stack import LocalStack, StackError, wait_until

REPO = Path(__file__).resolve().parent.parent
ARTIFACTS = Path(os.environ.get("VW_TEST_ARTIFACTS", REPO / "test-artifacts"))


@pytest.fixture
def stack(tmp_path: Path):
    """A fresh broker and database on free ports in a temporary folder, stopped by PID after."""
    s = LocalStack(tmp_path / "stack")
    try:
        s.start()
    except StackError as exc:
        pytest.fail(f"local stack did not start: {exc}")
    yield s
    s.stop()


@pytest.fixture
def artifacts_dir() -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    return ARTIFACTS


def eventually(predicate, timeout: float = 30.0, what: str = "condition", interval: float = 0.05):
    """Wait for a condition with a deadline (never a bare sleep)."""
    wait_until(predicate, timeout, what, interval)


@pytest.fixture
def site_dir() -> Path:
    return REPO / "sites"
