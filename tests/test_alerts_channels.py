"""Notification channel registry (alerts/notify/channel.py): the settings loader and the dispatcher
follow the registry, so a new channel is one module + one registry line. The "pager" channel below
stands for such a module; it records what it was asked to send (it is the receiving end itself)."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from test_alerts_store import T0, firing_transition

from alerts import notify
from alerts.notify import CHANNELS, Dispatcher, register
from alerts.notify.channel import Channel
from alerts.settings import load_alerts_config
from alerts.store import AlertStore
from villagewatch.schema import ConfigError, Key, Str

SENT: list[tuple[str, str, str]] = []


async def _pager_send(config: dict[str, Any], target: str, message: Any) -> None:
    SENT.append((config["pager_id"], target, message.subject))


PAGER = Channel("pager", _pager_send, [
    Key("pager_id", Str(r"P\d+", "pager id"), required=True, doc="the pager service's account"),
    Key("priority", Str(), required=False, default="normal"),
])


@pytest.fixture
def pager():
    register(PAGER)  # the channel's one registry line
    SENT.clear()
    yield PAGER
    CHANNELS.pop("pager")


def _write(tmp_path, text: str):
    path = tmp_path / "alerts.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_registered_channel_is_configured_and_used_by_the_dispatcher(tmp_path, pager):
    path = _write(tmp_path, "channels:\n  pg:\n    type: pager\n    pager_id: P42\n"
                            "routes:\n  - notify: ['pg:kỹ thuật viên']\n")
    config = load_alerts_config(path, env={})
    assert config.channels["pg"]["priority"] == "normal"  # the module's default is filled in
    assert config.channels["pg"]["timeout_s"] == 10  # and the keys every channel has

    async def scenario() -> list[dict]:
        store = AlertStore(tmp_path / "a.sqlite")
        tr = firing_transition()
        alert = store.apply(tr, config.targets(tr.commune, tr.rule.severity), now_ms=T0)
        await asyncio.gather(*Dispatcher(store, config, now_ms=lambda: T0 + 10).drain())
        rows = store.notifications(alert["id"])
        store.close()
        return rows

    rows = asyncio.run(scenario())
    assert [(r["channel"], r["status"]) for r in rows] == [("pg", "sent")]
    assert len(SENT) == 1 and SENT[0][:2] == ("P42", "kỹ thuật viên") and SENT[0][2]


def test_registered_channel_required_key_names_file_line_and_doc(tmp_path, pager):
    path = _write(tmp_path, "channels:\n  ok:\n    type: webhook\n    url: http://x\n"
                            "  pg:\n    type: pager\n    priority: high\n")
    with pytest.raises(ConfigError) as err:
        load_alerts_config(path, env={})
    assert err.value.line == 5 and "channel 'pg' of type pager needs `pager_id`" in str(err.value)
    assert "the pager service's account" in str(err.value)


def test_channel_key_typo_and_unknown_type_get_a_did_you_mean(tmp_path, pager):
    path = _write(tmp_path, "channels:\n  pg:\n    type: pager\n    pagerid: P1\n")
    with pytest.raises(ConfigError, match=r"alerts.yaml:4: .*unknown key 'pagerid'.*did you mean 'pager_id'"):
        load_alerts_config(path, env={})
    path = _write(tmp_path, "channels:\n  pg:\n    type: pagr\n")
    with pytest.raises(ConfigError, match=r"alerts.yaml:3: .*'pagr' is not allowed.*did you mean 'pager'"):
        load_alerts_config(path, env={})


def test_without_its_registry_line_the_type_is_refused(tmp_path):
    path = _write(tmp_path, "channels:\n  pg:\n    type: pager\n    pager_id: P42\n")
    with pytest.raises(ConfigError, match="'pager' is not allowed"):
        load_alerts_config(path, env={})


@pytest.mark.parametrize("kind, extra, key", [("email", "    host: ''\n", "host"), ("webhook", "", "url"),
                                             ("telegram", "    timeout_s: 3\n", "token_env")])
def test_built_in_channels_keep_their_needed_keys(tmp_path, kind, extra, key):
    path = _write(tmp_path, f"channels:\n  c:\n    type: {kind}\n{extra}")
    with pytest.raises(ConfigError, match=f"needs `{key}`"):
        load_alerts_config(path, env={})


def test_every_channel_module_is_registered_and_documented():
    assert set(CHANNELS) >= {"email", "webhook", "telegram"}
    for channel in CHANNELS.values():
        assert channel.doc.strip(), channel.type
    assert notify.register(CHANNELS["email"]) is CHANNELS["email"]  # registering again is harmless
    with pytest.raises(ValueError, match="registered twice"):
        register(Channel("email", _pager_send))
