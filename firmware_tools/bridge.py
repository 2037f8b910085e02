"""Province topology: a commune's Mosquitto bridged to the central Mosquitto (docs/scaling.md).

Generated from the site files, so the bridge carries exactly its commune's topics:
- commune side: a ``connection`` block (QoS 1, ``cleansession false``) that forwards
  ``vw/v1/<commune>/#`` out; while the link is down the commune broker queues the bridge's messages
  (its config must not cap ``max_queued_messages``: broker_config/mosquitto-dev.conf sets 0 and
  bounds the queue in bytes instead), and the persistent session on the centre survives a reconnect;
- central side: one account per commune bridge whose ACL may write only its own commune's topics, so
  a compromised commune box cannot pretend to be another commune.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass

from villagewatch import contract
from villagewatch.sites import Site


@dataclass(frozen=True)
class BridgeLink:
    commune: str
    central_host: str
    central_port: int
    password: str
    cafile: str | None = None
    certfile: str | None = None
    keyfile: str | None = None

    @property
    def username(self) -> str:
        return bridge_account(self.commune)


def bridge_account(commune: str) -> str:
    return f"bridge-{commune}"


def commune_topic_filter(commune: str) -> str:
    return f"{contract.TOPIC_ROOT}/{commune}/#"


def render_commune_bridge(link: BridgeLink) -> str:
    """The ``connection`` block to include in the commune broker's mosquitto.conf."""
    lines = [
        f"# villagewatch bridge: commune {link.commune} -> central broker (generated; do not edit)",
        f"connection vw-{link.username}",
        f"address {link.central_host}:{link.central_port}",
        "bridge_protocol_version mqttv311",
        # persistent on both ends: what the centre has not acknowledged stays queued here
        "cleansession false",
        f"remote_clientid {link.username}",
        f"local_clientid {link.username}-local",
        f"remote_username {link.username}",
        f"remote_password {link.password}",
        f"topic {commune_topic_filter(link.commune)} out 1",
        "try_private false",
        "start_type automatic",
        # reconnect quickly after a 4G drop, back off to 30 s
        "restart_timeout 2 30",
        "keepalive_interval 30",
        # the centre's ACL does not let a bridge write $SYS; no notifications
        "notifications false",
    ]
    if link.cafile:
        lines.append(f"bridge_cafile {link.cafile}")
    if link.certfile and link.keyfile:
        lines += [f"bridge_certfile {link.certfile}", f"bridge_keyfile {link.keyfile}"]
    return "\n".join(lines) + "\n"


def render_central_acl(communes: Iterable[str], readers: Iterable[str] = ()) -> str:
    """ACL for the central broker: each bridge writes only its commune; ``readers`` (ingest workers,
    alerts) read every commune."""
    out = ["# villagewatch central broker ACL (generated from the site files)"]
    for commune in sorted(set(communes)):
        out += ["", f"user {bridge_account(commune)}", f"topic write {commune_topic_filter(commune)}"]
    for reader in readers:
        out += ["", f"user {reader}", f"topic read {contract.TOPIC_ROOT}/#"]
    return "\n".join(out) + "\n"


def links_for_sites(sites: Iterable[Site], central_host: str, central_port: int,
                    passwords: dict[str, str]) -> list[BridgeLink]:
    return [BridgeLink(s.commune, central_host, central_port, passwords[s.commune]) for s in sites]
