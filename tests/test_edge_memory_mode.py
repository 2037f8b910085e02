"""A gateway whose spool folder cannot be written at start (read-only file system, full disk, a
path that cannot exist) still runs: readings go to a bounded in-memory queue, published as usual,
and the status says ``storage: memory``. Real Mosquitto; real read-only and full file systems
(tmpfs mounts, when the test may mount — root on Linux), and an impossible path everywhere."""

from __future__ import annotations

import contextlib
import os
import subprocess
from pathlib import Path

import pytest
from conftest import eventually
from test_edge_clock import RunningGateway
from test_edge_gateway import Collector, write_site

from edge.gateway import Gateway, GatewayOptions
from edge.spool import Spool
from villagewatch import contract
from villagewatch.config import MqttUrl
from villagewatch.sites import load_site


@contextlib.contextmanager
def tmpfs(path: Path, options: str):
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], capture_output=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here ({done.stderr.decode().strip()})")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def unwritable_path(tmp_path: Path) -> contextlib.AbstractContextManager[Path]:
    blocker = tmp_path / "not-a-folder"
    blocker.write_text("a file where the spool folder should be\n")
    return contextlib.nullcontext(blocker / "edge")


def read_only_fs(tmp_path: Path) -> contextlib.AbstractContextManager[Path]:
    return tmpfs(tmp_path / "ro", "ro,size=1m")


@contextlib.contextmanager
def full_disk(tmp_path: Path):
    with tmpfs(tmp_path / "full", "size=256k") as mnt:
        fd = os.open(mnt / "filler", os.O_WRONLY | os.O_CREAT)
        try:  # fill it to the last byte
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0" * 4096):
                    pass
            with contextlib.suppress(OSError):
                while os.write(fd, b"\0"):
                    pass
        finally:
            os.close(fd)
        yield mnt


@pytest.mark.parametrize("where", [unwritable_path, read_only_fs, full_disk], ids=lambda f: f.__name__)
def test_spool_falls_back_to_a_bounded_memory_queue(tmp_path: Path, where):
    with where(tmp_path) as data:
        spool = Spool(data / "spool.sqlite", budget_bytes=10 * 2**20, memory_budget_bytes=20_000)
        assert spool.storage == "memory" and spool.storage_reason
        n = 1000
        for i in range(0, n, 100):
            spool.append([contract.Reading("xa", "st-1", 1_800_000_000_000 + j, 0, {"ph": 7.0}) for j in range(i, i + 100)])
        # bounded: the oldest are dropped and counted, the newest kept (the disk budget's policy)
        assert spool.bytes <= 20_000 and spool.total_drops == n - spool.depth > 0
        rows = spool.fetch(0, n)
        assert rows[-1].seq == n - 1 and [r.seq for r in rows] == list(range(n - len(rows), n))
        spool.close()


@pytest.mark.parametrize("where", [unwritable_path, read_only_fs], ids=lambda f: f.__name__)
def test_gateway_runs_in_memory_mode_publishes_and_says_so(stack, tmp_path: Path, where):
    with where(tmp_path) as data:
        site = load_site(write_site(tmp_path / "site.yaml", 2))
        col = Collector(stack.mosquitto.port, f"memory-mode-{where.__name__}")
        gw = Gateway(site, "gw-test", GatewayOptions(brokers=[MqttUrl.parse(stack.mqtt_url)], data_dir=data,
                                                     speed=5, status_interval_s=0.5))
        run = RunningGateway(gw)
        try:
            eventually(lambda: all(len(col.seqs(s)) >= 5 for s in site.stations), 30, "readings published")
            topic = contract.gateway_status_topic(site.commune, "gw-test")
            eventually(lambda: col.status.get(topic, {}).get("queue", {}).get("storage") == "memory", 10,
                       "gateway status says memory mode")
            assert col.status[topic]["queue"]["storage_error"]
        finally:
            run.stop()
        eventually(lambda: col.status.get(topic, {}).get("reason") == "stopped", 10, "final status")
        col.stop()
        # what was not yet published at the stop is lost with the memory (the documented cost): the
        # final status counts it, and everything else arrived, without a gap
        left = col.status[topic]["queue"]["depth"]
        arrived = {s: sorted(set(col.seqs(s))) for s in site.stations}
        for s, seqs in arrived.items():
            assert seqs == list(range(len(seqs))), f"{s}: seq gap in memory mode"
        assert sum(len(v) for v in arrived.values()) + left == sum(len(v) for v in run.taken.values())
