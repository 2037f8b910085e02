"""Flashing ESP32 nodes end to end: provision → flash through esptool → the node boots with the
configuration written into its NVS partition → it connects to the real, production-configured
Mosquitto with those credentials → `villagewatch device monitor` sees it online.

The ESP32 itself is a STAND-IN: app.testing.rom_loader.SimulatedEsp32RomLoader speaks the
ROM bootloader's serial protocol on a pty, because no ESP32 exists on this machine. esptool, the
NVS generator, the partition table, Mosquitto and the TLS handshake are all real. On a pty there
are no DTR/RTS lines, so these tests connect with --connect-mode no-reset and reset with soft-reset.
"""

from __future__ import annotations

import base64
import json
import tempfile
import threading
from pathlib import Path

import pytest

from app import cli
from app.testing.images import make_app_image
from app.testing.rom_loader import FLASH_END, SPI_FLASH_MD5, SimulatedEsp32RomLoader
from app.testing.secure_broker import SecureBroker
from firmware_tools import device_ops
from firmware_tools import partitions as pt
from firmware_tools import provision as prov
from firmware_tools.flashing import FlashError, plan_manifest
from firmware_tools.nvs import read_config
from firmware_tools.workspace import Workspace
from villagewatch import contract, ota
from villagewatch.mqtt_util import connect
from villagewatch.sites import load_site

pytestmark = pytest.mark.integration

COMMUNE, STATION = "tan-thuan-dong", "ao-ca-tra-a1"
SIM = {"connect_mode": "no-reset", "reset_mode": "soft-reset"}
SIM_CLI = ["--connect-mode", "no-reset", "--reset-mode", "soft-reset"]


@pytest.fixture
def site(site_dir: Path):
    return load_site(site_dir / f"{COMMUNE}.yaml")


@pytest.fixture
def env(tmp_path: Path, monkeypatch):
    ws = Workspace(tmp_path / "fw", tmp_path / "secure" / "broker")
    broker = SecureBroker(tmp_path / "secure", ws.ca)
    ws.broker_pid_file = broker.pid_file
    broker.start()
    for var, value in (("VW_FIRMWARE_DIR", ws.data_dir), ("VW_BROKER_DIR", ws.broker_dir),
                       ("VW_BROKER_PIDFILE", broker.pid_file), ("VW_TECHNICIAN", "ky-thuat-vien-an")):
        monkeypatch.setenv(var, str(value))
    ota.generate_keypair(ws.ota_dir)
    yield ws, broker
    broker.stop()


class SimulatedNodeFirmware:
    """Plays the node's firmware after boot: reads ITS OWN NVS from the simulated flash, connects to
    the broker with what it found there (TLS client certificate + password) and publishes its
    status, with a last will, then prints a log line on its UART now and then."""

    def __init__(self, nvs: pt.Partition):
        self.nvs = nvs
        self.config: dict = {}
        self.client = None
        self.error: Exception | None = None
        self.stop = threading.Event()

    def __call__(self, sim: SimulatedEsp32RomLoader) -> None:
        try:
            self.config = read_config(bytes(sim.flash[self.nvs.offset:self.nvs.offset + self.nvs.size]))
            sim.console(f"I (312) vw: config v{self.config['cfg_ver']} device={self.config['device_id']}")
            folder = Path(tempfile.mkdtemp())
            for key in ("ca_pem", "cert_pem", "key_pem"):
                (folder / key).write_text(str(self.config[key]))
            status = contract.station_status_topic(str(self.config["commune"]), str(self.config["node"]))
            self.client = connect(str(self.config["mqtt_url"]), username=str(self.config["mqtt_user"]),
                                  password=str(self.config["mqtt_pass"]), ca_file=folder / "ca_pem",
                                  cert_file=folder / "cert_pem", key_file=folder / "key_pem",
                                  will=(status, contract.encode_json({"online": False, "ts": 0})))
            ts = int(__import__("time").time() * 1000)
            self.client.publish(status, contract.encode_json({"online": True, "ts": ts}), qos=1, retain=True)
            sim.console("I (845) vw: mqtt connected")
            while not self.stop.wait(0.2):
                sim.console("I (9000) vw: heartbeat")
        except Exception as exc:  # noqa: BLE001 - surfaced by the test
            self.error = exc
            sim.console(f"E (900) vw: {exc}")

    def close(self) -> None:
        self.stop.set()
        if self.client is not None:
            self.client.disconnect()
            self.client.loop_stop()


def test_flash_end_to_end_through_esptool_then_node_comes_online(env, site, tmp_path: Path, capsys):
    ws, broker = env
    dev = prov.provision_station(ws, site, STATION, hardware="esp32-devkitc-v4", with_cert=True)
    ops = prov.provision_service(ws, "ops")
    firmware = tmp_path / "vw-node.bin"
    firmware.write_bytes(make_app_image("1.4.2"))
    table = pt.load()
    node = SimulatedNodeFirmware(table.nvs())
    device_url = f"mqtts://127.0.0.1:{broker.tls_port}"
    progress: list[tuple[str, int, int]] = []
    with SimulatedEsp32RomLoader(on_boot=node) as sim:
        try:
            plan, report = device_ops.flash(ws, device_ops.Target(site, station=STATION), sim.port, firmware,
                                            device_url, wifi_ssid="UBND-Tan-Thuan", wifi_pass="wifi-pw",
                                            progress=lambda *p: progress.append(p), **SIM)
            assert report.chip == "ESP32" and report.verified
            # --- progress: monotonic, reaches every byte of the plan
            done = [p[1] for p in progress]
            assert done == sorted(done) and done[-1] == plan.total_bytes == progress[-1][2]
            assert any("ota_0" in p[0] for p in progress) and any("nvs" in p[0] for p in progress)
            # --- each image at its partition table offset, verified by the chip's MD5, then reset
            image = firmware.read_bytes()
            app, nvs, otadata = table.boot_app(), table.nvs(), table.otadata()
            assert bytes(sim.flash[app.offset:app.offset + len(image)]) == image
            assert pt.parse_binary(bytes(sim.flash[pt.TABLE_OFFSET:pt.TABLE_OFFSET + pt.TABLE_MAX_LEN])).partitions \
                == table.partitions
            assert set(sim.flash[otadata.offset:otadata.offset + otadata.size]) == {0xFF}
            assert sim.commands.count(SPI_FLASH_MD5) >= len(plan.parts) and sim.commands[-1] == FLASH_END
            # --- the NVS partition read back from the flash holds this device's configuration
            cfg = read_config(bytes(sim.flash[nvs.offset:nvs.offset + nvs.size]))
            secret = ws.load_secret(dev.device.id)
            assert cfg["device_id"] == cfg["mqtt_user"] == dev.device.id
            assert cfg["mqtt_pass"] == dev.password == secret["password"]
            assert cfg["mqtt_url"] == device_url and cfg["wifi_ssid"] == "UBND-Tan-Thuan"
            assert cfg["cert_pem"] == secret["cert_pem"] and cfg["ca_pem"] == ws.ca.ca_pem().decode()
            assert cfg["interval_s"] == int(site.stations[STATION].interval_s)
            assert base64.b64decode(cfg["ota_pub"]) == (ws.ota_dir / "signing.pub").read_bytes()
            # --- the inventory remembers the flash
            with ws.inventory() as inv:
                d = inv.get(dev.device.id, details=True)
            assert d.firmware_version == "1.4.2"
            last = d.flashes[-1]
            assert (last["ok"], last["verified"], last["by_whom"], last["image_sha256"], last["chip"]) == \
                (1, 1, "ky-thuat-vien-an", plan.image_sha256, "ESP32")
            # --- the booted node comes online with those credentials; the monitor sees it
            capsys.readouterr()
            rc = cli.main(["device", "monitor", "--port", sim.port, "--commune", COMMUNE, "--station", STATION,
                           "--timeout", "20", "--duration", "1.5",
                           "--mqtt-url", f"mqtt://{ops.device.id}:{ops.password}@127.0.0.1:{broker.plain_port}"])
            out = capsys.readouterr().out
            assert node.error is None, node.error
            assert rc == 0, out
            assert "ONLINE" in out and "vw: heartbeat" in out
            assert any(line.startswith("[") and line[3] == ":" for line in out.splitlines())
        finally:
            node.close()


def test_config_rewrites_only_the_nvs_partition(env, site, tmp_path: Path, capsys):
    ws, broker = env
    prov.provision_station(ws, site, STATION)
    table = pt.load()
    nvs, app = table.nvs(), table.boot_app()
    with SimulatedEsp32RomLoader() as sim:
        sim.flash[app.offset:app.offset + 4] = b"\xe9APP"  # what an earlier flash left
        rc = cli.main(["device", "config", "--port", sim.port, "--commune", COMMUNE, "--station", STATION,
                       "--mqtt-url", "mqtt://10.10.0.2:1883", "--wifi-ssid", "Ap-3", *SIM_CLI, "--json"])
        out = capsys.readouterr().out
        assert rc == 0, out
        result = json.loads(out)
        assert [p["name"] for p in result["parts"]] == ["nvs (configuration)"] and result["verified"]
        cfg = read_config(bytes(sim.flash[nvs.offset:nvs.offset + nvs.size]))
        assert cfg["wifi_ssid"] == "Ap-3" and cfg["mqtt_url"] == "mqtt://10.10.0.2:1883"
        assert bytes(sim.flash[app.offset:app.offset + 4]) == b"\xe9APP"
        assert set(sim.flash[pt.TABLE_OFFSET:pt.TABLE_OFFSET + 16]) == {0xFF}  # table untouched


def test_chip_not_in_download_mode_gives_a_hint_and_is_recorded(env, site, tmp_path: Path):
    ws, _ = env
    dev = prov.provision_station(ws, site, STATION)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(make_app_image("1.0.0"))
    with SimulatedEsp32RomLoader(silent=True) as sim, pytest.raises(FlashError) as err:
        device_ops.flash(ws, device_ops.Target(site, station=STATION), sim.port, firmware, "mqtt://10.0.0.2",
                         connect_attempts=1, **SIM)
    assert "BOOT" in err.value.hint and "cáp" in err.value.hint
    with ws.inventory() as inv:
        last = inv.get(dev.device.id, details=True).flashes[-1]
    assert last["ok"] == 0 and last["verified"] == 0 and "cannot talk to the chip" in last["message"]


def test_corrupted_write_is_caught_by_verification(env, site, tmp_path: Path):
    ws, _ = env
    prov.provision_station(ws, site, STATION)
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(make_app_image("1.0.0"))
    with SimulatedEsp32RomLoader(corrupt_writes=True) as sim, pytest.raises(FlashError) as err:
        device_ops.flash(ws, device_ops.Target(site, station=STATION), sim.port, firmware, "mqtt://10.0.0.2", **SIM)
    assert "verification failed" in str(err.value) and "cáp" in err.value.hint


def test_cli_input_errors_are_user_errors(env, site, tmp_path: Path, capsys):
    ws, _ = env
    not_an_image = tmp_path / "fw.elf"
    not_an_image.write_bytes(b"\x7fELF....")
    args = ["device", "flash", "--port", "/dev/ttyUSB9", "--commune", COMMUNE, "--station", STATION,
            "--firmware", str(not_an_image), "--mqtt-url", "mqtt://10.0.0.2"]
    assert cli.main(args) == 2
    assert "villagewatch device provision --commune tan-thuan-dong --station ao-ca-tra-a1" in capsys.readouterr().err
    prov.provision_station(ws, site, STATION)
    assert cli.main(args) == 2
    assert "not an ESP32 application image" in capsys.readouterr().err
    firmware = tmp_path / "fw.bin"
    firmware.write_bytes(make_app_image("1.0.0"))
    args[args.index(str(not_an_image))] = str(firmware)
    assert cli.main(args) == 2
    err = capsys.readouterr().err
    assert "no such port /dev/ttyUSB9" in err and "gợi ý / hint" in err
    assert cli.main(["device", "flash", "--port", "p", "--commune", COMMUNE, "--station", "ao-ca-tra-a9",
                     "--firmware", str(firmware), "--mqtt-url", "mqtt://x"]) == 2
    assert "ao-ca-tra-a1" in capsys.readouterr().err  # nearest station suggested


def test_flasher_args_manifest_places_files_at_their_offsets(tmp_path: Path):
    from firmware_tools.nvs import DeviceConfig
    table = pt.load()
    (tmp_path / "pt.bin").write_bytes(table.to_binary())
    (tmp_path / "app.bin").write_bytes(make_app_image("3.0.1"))
    (tmp_path / "boot.bin").write_bytes(b"\xe9" + b"\0" * 100)
    (tmp_path / "flasher_args.json").write_text(json.dumps({"flash_files": {
        "0x1000": "boot.bin", "0x8000": "pt.bin", hex(table.boot_app().offset): "app.bin"}}))
    cfg = DeviceConfig("c.s", "station", "c", "s", "mqtt://h", "c.s", "pw")
    plan = plan_manifest(tmp_path / "flasher_args.json", cfg)
    assert [p.offset for p in plan.parts] == [0x1000, 0x8000, table.nvs().offset, table.boot_app().offset]
    assert plan.firmware_version == "3.0.1"
    assert read_config(plan.parts[2].data)["device_id"] == "c.s"


def test_monitor_fails_with_a_hint_when_the_node_never_comes_online(env, site, capsys):
    ws, broker = env
    prov.provision_station(ws, site, STATION)
    ops = prov.provision_service(ws, "ops")
    stop = threading.Event()
    with SimulatedEsp32RomLoader() as sim:  # firmware that never gets onto the network
        def complain() -> None:
            while not stop.wait(0.1):
                sim.console("E (120) vw: wifi: auth failed")
        threading.Thread(target=complain, daemon=True).start()
        rc = cli.main(["device", "monitor", "--port", sim.port, "--commune", COMMUNE, "--station", STATION,
                       "--timeout", "1", "--mqtt-url",
                       f"mqtt://{ops.device.id}:{ops.password}@127.0.0.1:{broker.plain_port}"])
        stop.set()
    captured = capsys.readouterr()
    assert rc == 2
    assert "did not report online within 1 s" in captured.err and "Wi-Fi" in captured.err
    assert "wifi: auth failed" in captured.out
