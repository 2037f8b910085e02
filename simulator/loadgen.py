"""``villagewatch loadgen``: thousands of simulated stations publishing contract telemetry at QoS 1.

Payload values come from the simulator's per-kind models (edge/sources/simulated/model.py): each
kind contributes a pool of one simulated day of readings, so load has the real metric sets and value
shapes. Each station has its own ``seq`` and timestamps on its own grid, so every message is a
distinct point and the expected count in InfluxDB is exact.

The publisher speaks MQTT 3.1.1 itself over asyncio (CONNECT, PUBLISH QoS 1, PUBACK): paho's
publish path costs several times more CPU per message, and on a 2-core box the load generator must
leave the cores to the broker, the database and the ingest it is measuring. Stations are spread
over a few connections; a station always uses the same one, so its messages stay in order.
"""

from __future__ import annotations

import argparse
import asyncio
import struct
import sys
import time
from collections.abc import Iterator
from dataclasses import dataclass, field

import msgspec

from villagewatch import contract
from villagewatch.aio import wait_event
from villagewatch.config import MqttUrl

KINDS = ("pond", "river", "water_supply", "air", "weather", "waste", "flood_gauge")


# --------------------------------------------------------------------------- payloads


def value_pools(seed: int = 0, samples: int = 288) -> dict[str, list[dict[str, float]]]:
    """Per kind, ``samples`` realistic metric sets from the pilot site's simulated stations."""
    from edge.sources.simulated.model import station_series
    from villagewatch.sites import DEFAULT_SITES_DIR, load_site
    site = load_site(DEFAULT_SITES_DIR / "tan-thuan-dong.yaml")
    pools: dict[str, list[dict[str, float]]] = {}
    start = 1_780_000_000_000
    for st in site.stations.values():
        if st.kind in pools:
            continue
        step = int(86_400_000 / samples)
        _, values, _ = station_series(st, start, start + step * samples, seed)
        names = list(values)
        cols = [values[n].tolist() for n in names]
        pools[st.kind] = [{n: c[i] for n, c in zip(names, cols, strict=True)} for i in range(len(cols[0]))]
    return pools


@dataclass
class Fleet:
    """``stations`` stations spread over communes of 50 (Vietnam's communes × 50 sensors)."""

    stations: int
    per_commune: int = 50
    interval_ms: int = 10_000
    # far enough back that seq offsets of later phases (first_seq) still give past timestamps
    start_ms: int = field(default_factory=lambda: int(time.time() * 1000) - 60 * 86_400_000)
    seed: int = 0

    def __post_init__(self) -> None:
        self.pools = value_pools(self.seed)
        self.ids = [(f"xa-{i // self.per_commune:04d}", f"tram-{i:05d}") for i in range(self.stations)]
        self.topics = [contract.telemetry_topic(c, s).encode() for c, s in self.ids]
        self._enc = msgspec.json.Encoder()

    def payload(self, station: int, seq: int) -> bytes:
        kind = KINDS[station % len(KINDS)]
        pool = self.pools[kind]
        metrics = pool[(seq + station * 7) % len(pool)]
        return self._enc.encode({"ts": self.start_ms + seq * self.interval_ms + station % 997,
                                 "seq": seq, "metrics": metrics})

    def messages(self, rounds: int, first_seq: int = 0) -> Iterator[tuple[int, bytes, bytes]]:
        """(station index, topic, payload), one message per station per round."""
        for r in range(first_seq, first_seq + rounds):
            for i, topic in enumerate(self.topics):
                yield i, topic, self.payload(i, r)


# --------------------------------------------------------------------------- MQTT 3.1.1 QoS 1 publisher


def _varlen(n: int) -> bytes:
    out = bytearray()
    while True:
        byte, n = n % 128, n // 128
        out.append(byte | (0x80 if n else 0))
        if not n:
            return bytes(out)


def _utf8(b: bytes) -> bytes:
    return struct.pack("!H", len(b)) + b


class RawPublisher(asyncio.Protocol):
    """One MQTT connection publishing QoS 1 with a window of unacknowledged messages."""

    def __init__(self, window: int):
        self.window = window
        self.unacked = 0
        self.acked = 0
        self.sent = 0
        self._mid = 0
        self._buf = bytearray()
        self._connack = asyncio.get_running_loop().create_future()
        self._room = asyncio.Event()
        self._room.set()
        self.transport: asyncio.Transport | None = None
        self.ack_times: dict[int, float] = {}
        self.lost: BaseException | None = None

    @classmethod
    async def connect(cls, url: MqttUrl, client_id: str, window: int = 2000) -> RawPublisher:
        loop = asyncio.get_running_loop()
        _, proto = await loop.create_connection(lambda: cls(window), url.host, url.port)
        flags = 0x02  # clean session
        payload = _utf8(client_id.encode())
        if url.username:
            flags |= 0x80
            payload += _utf8(url.username.encode())
            if url.password:
                flags |= 0x40
                payload += _utf8(url.password.encode())
        var = _utf8(b"MQTT") + bytes([4, flags]) + struct.pack("!H", 600)
        body = var + payload
        proto.transport.write(b"\x10" + _varlen(len(body)) + body)
        rc = await asyncio.wait_for(proto._connack, 10)
        if rc != 0:
            raise ConnectionError(f"broker refused the connection (CONNACK {rc})")
        return proto

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        self.transport = transport  # type: ignore[assignment]

    def connection_lost(self, exc: BaseException | None) -> None:
        self.lost = exc or ConnectionError("connection closed by the broker")
        self._room.set()
        if not self._connack.done():
            self._connack.set_exception(self.lost)

    def data_received(self, data: bytes) -> None:
        buf = self._buf
        buf += data
        i, n = 0, len(buf)
        acks = 0
        while n - i >= 2:
            head = buf[i]
            length = buf[i + 1]  # every packet we expect here is shorter than 128 bytes
            if n - i < 2 + length:
                break
            if head == 0x40:
                acks += 1
            elif head == 0x20:
                self._connack.set_result(buf[i + 3])
            i += 2 + length
        del buf[:i]
        if acks:
            self.unacked -= acks
            self.acked += acks
            if self.unacked < self.window:
                self._room.set()

    async def publish_many(self, items: list[tuple[bytes, bytes]]) -> None:
        """Send many PUBLISH packets in one write, respecting the window."""
        parts = []
        for topic, payload in items:
            while self.unacked >= self.window:
                if parts:
                    self.transport.write(b"".join(parts))
                    parts = []
                self._room.clear()
                await self._room.wait()
                if self.lost:
                    raise ConnectionError(f"publisher connection lost: {self.lost}")
            self._mid = self._mid % 65535 + 1
            rem = 2 + len(topic) + 2 + len(payload)
            parts.append(b"\x32" + _varlen(rem) + struct.pack("!H", len(topic)) + topic
                         + struct.pack("!H", self._mid) + payload)
            self.unacked += 1
            self.sent += 1
        if parts:
            self.transport.write(b"".join(parts))

    async def drain(self, timeout: float = 120) -> None:
        deadline = time.monotonic() + timeout
        while self.unacked > 0:
            if self.lost:
                raise ConnectionError(f"publisher connection lost with {self.unacked} unacknowledged")
            if time.monotonic() > deadline:
                raise TimeoutError(f"{self.unacked} messages not acknowledged by the broker")
            self._room.clear()
            await wait_event(self._room, 0.05)  # not wait_for: it can swallow a cancel (villagewatch/aio.py)

    def close(self) -> None:
        if self.transport and not self.transport.is_closing():
            self.transport.write(b"\xe0\x00")
            self.transport.close()


@dataclass
class LoadResult:
    sent: int
    seconds: float

    @property
    def rate(self) -> float:
        return self.sent / self.seconds if self.seconds else 0.0


async def run_load(mqtt_url: str, fleet: Fleet, rounds: int, rate: float | None = None, connections: int = 4,
                   window: int = 2000, chunk: int = 200, first_seq: int = 0, progress=None,
                   messages: list[tuple[int, bytes, bytes]] | None = None,
                   max_seconds: float | None = None) -> LoadResult:
    """Publish ``rounds`` messages per station (or the given pre-built ``messages``); paced when ``rate``."""
    url = MqttUrl.parse(mqtt_url)
    pubs = [await RawPublisher.connect(url, f"vw-loadgen-{i}-{time.monotonic_ns() % 10**8}", window)
            for i in range(connections)]
    source = iter(messages) if messages is not None else fleet.messages(rounds, first_seq)
    t0 = time.perf_counter()
    sent = 0
    try:
        while True:
            per_conn: list[list[tuple[bytes, bytes]]] = [[] for _ in pubs]
            taken = 0
            for station, topic, payload in source:
                per_conn[station % connections].append((topic, payload))
                taken += 1
                if taken >= chunk * connections:
                    break
            if not taken or (max_seconds and time.perf_counter() - t0 >= max_seconds):
                if taken:
                    await asyncio.gather(*(p.publish_many(items) for p, items in zip(pubs, per_conn, strict=True) if items))
                    sent += taken
                break
            await asyncio.gather(*(p.publish_many(items) for p, items in zip(pubs, per_conn, strict=True) if items))
            sent += taken
            if progress:
                progress(sent)
            if rate:
                ahead = sent / rate - (time.perf_counter() - t0)
                if ahead > 0:
                    await asyncio.sleep(ahead)
        await asyncio.gather(*(p.drain() for p in pubs))
        return LoadResult(sent, time.perf_counter() - t0)
    finally:
        for p in pubs:
            p.close()


# --------------------------------------------------------------------------- CLI


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "loadgen", help="mô phỏng hàng nghìn trạm gửi số liệu / simulate thousands of stations publishing (QoS 1)",
        description="Publish realistic contract telemetry for N simulated stations at a target rate. "
                    "Prints progress and the achieved rate. Broker from --mqtt-url or VW_MQTT_URL.")
    p.add_argument("--stations", type=int, default=1000, help="number of stations (1000)")
    p.add_argument("--rate", type=float, default=1000.0, help="messages per second in total (1000; 0 = as fast as possible)")
    p.add_argument("--duration", type=float, default=30.0, help="seconds to run (30)")
    p.add_argument("--connections", type=int, default=4, help="MQTT connections to spread stations over (4)")
    p.add_argument("--mqtt-url", help="broker URL (default VW_MQTT_URL or mqtt://127.0.0.1:1883)")
    p.add_argument("--seed", type=int, default=0, help="hạt giống ngẫu nhiên / random seed (same seed, same readings)")
    p.set_defaults(func=_cli)


def _cli(args: argparse.Namespace) -> int:
    from villagewatch.config import load_settings
    from villagewatch.errors import UserError
    if args.stations < 1 or args.duration <= 0 or args.rate < 0 or args.connections < 1:
        raise UserError("--stations, --duration and --connections must be positive, --rate ≥ 0")
    url = args.mqtt_url or load_settings().mqtt_url
    fleet = Fleet(args.stations, seed=args.seed)
    total = int(args.rate * args.duration) if args.rate else 10**12
    rounds = max(1, -(-total // args.stations))
    started = time.perf_counter()

    shown = [0.0]

    def progress(n: int) -> None:
        elapsed = time.perf_counter() - started
        if elapsed - shown[0] >= 0.5:
            shown[0] = elapsed
            sys.stderr.write(f"\r  đã gửi / sent {n:>10,}  {n / max(elapsed, 1e-9):>9,.0f} msg/s  {elapsed:6.1f} s")
            sys.stderr.flush()

    try:
        result = asyncio.run(run_load(url, fleet, rounds, args.rate or None, args.connections, progress=progress,
                                      max_seconds=args.duration))
    except OSError as exc:
        raise UserError(f"cannot reach the broker {MqttUrl.parse(url).redacted()}: {exc}",
                        hint="is it running? villagewatch stack status") from exc
    sys.stderr.write("\n")
    print(f"đã gửi / sent {result.sent:,} messages from {args.stations:,} stations in {result.seconds:.1f} s "
          f"= {result.rate:,.0f} msg/s (all acknowledged by the broker)")
    return 0
