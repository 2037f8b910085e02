"""A spool damaged on the SD card (torn pages after a power cut) never stops the gateway: the file
is set aside, what can still be read is salvaged into a fresh spool, the counts are reported, and
new readings are spooled. Real SQLite files damaged the ways a card damages them."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from edge.spool import Spool
from villagewatch import contract

PAGE = 4096


def fill(path: Path, n: int = 3000) -> None:
    spool = Spool(path)
    for i in range(0, n, 100):
        spool.append([contract.Reading("xa", f"st-{j % 5}", 1_700_000_000_000 + (i + j) * 1000, 0,
                                       {"ph": 7.0 + (j % 10) / 10}) for j in range(i, i + 100)])
    spool.db.execute("PRAGMA wal_checkpoint(TRUNCATE)")
    spool.close()


def truncate_two_pages(path: Path) -> None:
    os.truncate(path, path.stat().st_size - 2 * PAGE)


def overwrite_last_page(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.seek(path.stat().st_size - PAGE)
        fh.write(b"\xa5" * PAGE)


def overwrite_header(path: Path) -> None:
    with open(path, "r+b") as fh:
        fh.write(b"\x00" * 100)


def garble_wal_tail(path: Path) -> None:
    # a last batch written only to the WAL (no checkpoint), then its tail garbled
    spool = Spool(path)
    spool.append([contract.Reading("xa", "st-0", 1_800_000_000_000 + k, 0, {"ph": 7.0}) for k in range(50)])
    wal = Path(f"{path}-wal")
    at_power_cut = wal.read_bytes()  # closing would checkpoint; a power cut leaves the WAL as it is
    spool.db.close()
    wal.write_bytes(at_power_cut)
    with open(wal, "r+b") as fh:
        fh.seek(max(0, wal.stat().st_size - 600))
        fh.write(os.urandom(600))


@pytest.mark.parametrize("damage", [truncate_two_pages, overwrite_last_page, overwrite_header, garble_wal_tail],
                         ids=lambda f: f.__name__)
def test_damaged_spool_is_set_aside_salvaged_and_new_readings_flow(tmp_path: Path, damage):
    path = tmp_path / "spool.sqlite"
    fill(path)
    damage(path)
    spool = Spool(path)  # must not raise
    seqs_before = dict(spool.next_seq)
    if damage is not garble_wal_tail:  # SQLite itself ignores a torn WAL frame: not damage
        assert spool.salvage is not None, "damage not detected"
        assert Path(spool.salvage["damaged_file"]).exists()
        assert spool.salvage["damaged_file"].startswith(str(path) + ".damaged-")
        if damage is not overwrite_header:
            assert spool.salvage["salvaged"] > 2000, spool.salvage  # most pages were intact
        assert spool.depth == spool.salvage["salvaged"]
    else:
        assert spool.depth >= 3000
    rows = spool.fetch(0, 10_000)
    assert len(rows) == spool.depth
    assert all(row.topic.startswith("vw/v1/xa/st-") and row.payload.startswith(b"{") for row in rows)
    new = spool.append([contract.Reading("xa", "st-0", 1_900_000_000_000, 0, {"ph": 7.1})])
    assert new[0].seq >= seqs_before.get("st-0", 0), "a seq was reused after salvage"
    assert spool.depth == len(rows) + 1
    spool.close()
    again = Spool(path)  # the fresh spool is healthy on the next start
    assert again.salvage is None and again.depth == len(rows) + 1
    again.close()


def test_gateway_starts_on_a_damaged_spool_and_says_so_in_status(tmp_path: Path):
    from test_edge_gateway import write_site

    from edge.gateway import Gateway, GatewayOptions
    from villagewatch.config import MqttUrl
    from villagewatch.sites import load_site

    site = load_site(write_site(tmp_path / "site.yaml", 2))
    data = tmp_path / "edge"
    data.mkdir()
    fill(data / "spool.sqlite", 500)
    overwrite_header(data / "spool.sqlite")
    gw = Gateway(site, "gw-test", GatewayOptions(brokers=[MqttUrl.parse("mqtt://127.0.0.1:1")], data_dir=data))
    salvage = gw.status()["queue"]["salvage"]
    assert salvage and salvage["damaged_file"].startswith(str(data / "spool.sqlite.damaged-"))
    gw.spool.close()
