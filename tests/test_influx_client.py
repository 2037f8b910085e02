"""The one InfluxDB client (villagewatch/influx.py) against two real engines.

- InfluxDB 1.6.7 (Debian; the `stack` fixture): v1 `/write` + InfluxQL `/query`, user/password.
- VictoriaMetrics (Debian `victoria-metrics`, started here on a free port in a temp folder, stopped by
  PID): it accepts InfluxDB's `/api/v2/write`, so the v2 write path is exercised for real; points are
  read back through its export API (it has no InfluxQL).
"""

from __future__ import annotations

import asyncio
import json
import shutil
import signal
import subprocess
import urllib.parse
import urllib.request
from pathlib import Path

import pytest
from conftest import eventually

from app.stack import free_port
from villagewatch import influx
from villagewatch.influx import InfluxClient, InfluxTarget, WriteError

VM = shutil.which("victoria-metrics")


@pytest.fixture
def victoria(tmp_path: Path):
    if VM is None:
        pytest.fail("victoria-metrics is not installed (bash scripts/bootstrap.sh setup installs it)")
    port = free_port()
    log = open(tmp_path / "vm.log", "wb")  # noqa: SIM115 - closed below
    proc = subprocess.Popen([VM, f"-storageDataPath={tmp_path / 'vm-data'}", f"-httpListenAddr=127.0.0.1:{port}",
                             "-search.latencyOffset=0s", "-retentionPeriod=100y", "-loggerLevel=ERROR"],
                            stdout=log, stderr=subprocess.STDOUT, stdin=subprocess.DEVNULL, start_new_session=True)
    url = f"http://127.0.0.1:{port}"

    def healthy() -> bool:
        try:
            with urllib.request.urlopen(f"{url}/health", timeout=1) as resp:
                return resp.status == 200
        except OSError:
            return False

    try:
        eventually(healthy, 30, "VictoriaMetrics answers /health")
        yield url
    finally:
        proc.send_signal(signal.SIGTERM)
        try:
            proc.wait(20)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()


def _vm_export(url: str, metric: str) -> list[dict]:
    urllib.request.urlopen(f"{url}/internal/force_flush", timeout=30).read()
    q = urllib.parse.urlencode({"match[]": f'{{__name__="{metric}"}}'})
    with urllib.request.urlopen(f"{url}/api/v1/export?{q}", timeout=30) as resp:
        return [json.loads(line) for line in resp.read().splitlines() if line.strip()]


def test_v2_write_is_readable_back_from_victoriametrics(victoria):
    target = InfluxTarget(victoria, "villagewatch", token="tok-123", org="xa-org", bucket="villagewatch", api="v2")
    lines = b"telemetry,commune=xa,station=ao-1 ph=7.25,seq=1i 1780000000000\n" \
            b"telemetry,commune=xa,station=ao-1 ph=7.5,seq=2i 1780000060000"

    async def scenario() -> None:
        async with InfluxClient(target) as client:
            assert await client.ping()
            await client.write(lines)

    asyncio.run(scenario())
    rows: list[dict] = []

    def arrived() -> bool:
        rows[:] = _vm_export(victoria, "telemetry_ph")
        return bool(rows)

    eventually(arrived, 30, "the v2-written points in VictoriaMetrics")
    (series,) = rows
    assert series["metric"]["station"] == "ao-1" and series["metric"]["commune"] == "xa"
    assert series["values"] == [7.25, 7.5]
    assert series["timestamps"] == [1780000000000, 1780000060000]


def test_sync_v1_write_to_victoriametrics(victoria):
    """The simulator's backfill path (write_sync) on the second engine too."""
    influx.write_sync(InfluxTarget(victoria, "villagewatch"), b"telemetry,station=b1 fill=40 1780000000000")
    eventually(lambda: _vm_export(victoria, "telemetry_fill"), 30, "the v1-written point in VictoriaMetrics")


def test_v1_write_query_and_errors_on_influxdb_167(stack):
    target = InfluxTarget(stack.influx_url, stack.influx_db)

    async def scenario() -> None:
        a, b = InfluxClient(target), InfluxClient(target)
        await a.start()
        await b.start()
        assert a._session is b._session, "clients of one process share one pool"
        await a.write(b"telemetry,commune=xa,station=ao-1 do=4.5,seq=7i 1780000000000")
        (series,) = await b.query('SELECT "do", "seq" FROM "telemetry" GROUP BY "station"')
        assert series.tags == {"station": "ao-1"} and series.values == [[1780000000000, 4.5, 7]]
        with pytest.raises(WriteError) as refused:  # a field type conflict: the data itself is refused
            await a.write(b'telemetry,commune=xa,station=ao-1 do="text" 1780000001000')
        assert not refused.value.retryable and refused.value.status == 400
        await a.close()
        assert not b._session.closed, "the pool lives while a client uses it"
        session = b._session
        await b.close()
        assert session.closed

    asyncio.run(scenario())
    (series,) = influx.query_sync(target, 'SELECT count("seq") FROM "telemetry"')
    assert series.values[0][1] == 1


def test_unreachable_database_is_retryable_and_named():
    target = InfluxTarget(f"http://127.0.0.1:{free_port()}", "villagewatch", timeout_s=2)

    async def scenario() -> None:
        async with InfluxClient(target) as client:
            assert not await client.ping()
            with pytest.raises(WriteError) as down:
                await client.write(b"telemetry,station=a ph=7 1780000000000")
            assert down.value.retryable and "unreachable" in str(down.value)
            with pytest.raises(influx.InfluxUnreachable):
                await client.query("SHOW DATABASES")

    asyncio.run(scenario())
    with pytest.raises(influx.InfluxUnreachable, match="cannot reach"):
        influx.query_sync(target, "SHOW DATABASES")


def test_v1_and_v2_requests_carry_their_auth():
    v1 = InfluxTarget("http://db:8086", "vw", user="ops", password="s3cret")
    url, params, headers = v1.write_request()
    assert url == "http://db:8086/write" and params == {"db": "vw", "precision": "ms", "u": "ops", "p": "s3cret"}
    assert headers == {}
    v2 = InfluxTarget("http://db:8086", "vw", token="tok", org="xa", bucket="vw-b", api="v2")
    url, params, headers = v2.write_request()
    assert url == "http://db:8086/api/v2/write" and params == {"org": "xa", "bucket": "vw-b", "precision": "ms"}
    assert headers == {"Authorization": "Token tok"}
    assert v2.query_request("SHOW DATABASES")[2] == {"Authorization": "Token tok"}
    assert InfluxTarget("http://x", api="v2").missing_v2() == ["VW_INFLUX_ORG", "VW_INFLUX_BUCKET", "VW_INFLUX_TOKEN"]
