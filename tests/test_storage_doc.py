"""docs/protocol.md describes the status payloads and the storage schema the code owns."""

from __future__ import annotations

import re
from pathlib import Path

import msgspec
from hypothesis import given
from hypothesis import strategies as st

from villagewatch import status, storage

DOC = (Path(__file__).resolve().parent.parent / "docs" / "protocol.md").read_text(encoding="utf-8")


def _section(title: str) -> str:
    start = DOC.index(f"## {title}")
    end = DOC.find("\n## ", start + 3)
    return DOC[start:end if end > 0 else None]


def test_protocol_doc_lists_every_status_field():
    section = _section("Status payloads")
    for struct in status.STATUS_STRUCTS:
        rows = [line for line in section.splitlines() if line.startswith(f"| `{struct.__name__}` |")]
        listed = set(re.findall(r"`(\w+)`", " ".join(r.split("|")[2] for r in rows)))
        missing = set(struct.__struct_fields__) - listed
        assert not missing, f"{struct.__name__}: docs/protocol.md does not list {sorted(missing)}"
        extra = listed - set(struct.__struct_fields__)
        assert not extra, f"{struct.__name__}: docs/protocol.md lists {sorted(extra)}, which the struct lacks"


def test_protocol_doc_lists_every_storage_name():
    section = _section("Storage schema")
    for cls in storage.SCHEMA:
        measurement = cls.MEASUREMENT
        row = next((line for line in section.splitlines() if line.startswith(f"| `{measurement}` |")), None)
        assert row, f"docs/protocol.md has no storage row for {measurement}"
        for attr, name in storage.names(cls).items():
            assert f"`{name}`" in row, f"{cls.__name__}.{attr} = {name!r} is not in the {measurement} row"


def test_edge_status_shape_is_the_stored_shape():
    """The field names the dashboards read come out of the flattening of what the edge sends."""
    gw = status.GatewayStatus(online=True, ts=1, queue=status.QueueStatus(depth=3, drops=0, oldest_age_s=1.5),
                              link=status.LinkStatus(state="connected"))
    fields = storage.status_fields(msgspec.json.decode(status.encode(gw)))
    g = storage.GatewayStatus
    assert fields[g.QUEUE_DEPTH] == 3.0 and fields[g.QUEUE_DROPS] == 0.0
    assert fields[g.QUEUE_OLDEST_AGE_S] == 1.5 and fields[g.LINK_STATE] == "connected"
    assert fields[g.ONLINE] is True and "ts" not in fields


def test_nested_status_fields_are_kept():
    body = {"online": True, "ts": 1, "sources": {"rtu": {"errors": {"timeout": 2}, "stations": ["a", "b"]}},
            "queue": {"drops_by_station": {"ao-1": 4}}, "deep": {"a": {"b": {"c": {"d": 1}}}}}
    fields = storage.status_fields(body)
    assert fields["sources_rtu_errors_timeout"] == 2.0
    assert fields["sources_rtu_stations"] == "a,b"
    assert fields["queue_drops_by_station_ao-1"] == 4.0
    assert fields["deep_a_b_c"] == '{"d": 1}'


def test_status_fields_over_limit_are_counted():
    body = {"online": True, "ts": 1, "many": {f"k{i}": i for i in range(300)}}
    fields = storage.status_fields(body)
    assert len(fields) == storage.MAX_STATUS_FIELDS + 1
    assert fields[storage.STATUS_FIELDS_OVER_LIMIT] == 301 - storage.MAX_STATUS_FIELDS


_json = st.recursive(st.none() | st.booleans() | st.integers() | st.floats() | st.text(max_size=300),
                     lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner, max_size=4),
                     max_leaves=30)


@given(st.dictionaries(st.text(max_size=10), _json, max_size=8))
def test_status_fields_never_raise_and_store_only_stable_types(body):
    fields = storage.status_fields(body)
    for name, value in fields.items():
        assert type(value) in (bool, float, str), (name, value)
        if isinstance(value, str):
            assert len(value) <= storage.MAX_STRING_FIELD


def test_typed_decoding_names_the_wrong_field():
    gw = status.as_gateway({"online": False, "ts": 5, "reason": "lwt", "extra": 1})
    assert gw.online is False and gw.reason == "lwt" and gw.queue is None
    try:
        status.as_gateway({"online": True, "ts": 5, "queue": {"depth": "many"}})
    except ValueError as exc:
        assert "queue.depth" in str(exc)
    else:
        raise AssertionError("a text depth was accepted")


def test_ingest_refuses_a_status_field_of_the_wrong_type():
    """A known field with the wrong type is a bad_status naming it, not a field type conflict later."""
    from ingest.pipeline import status_line
    from villagewatch import contract
    info = contract.TopicInfo("gateway_status", "xa", gateway="gw-1")
    ok = status_line(info, {"online": True, "ts": 1, "queue": {"depth": 3}, "extra": "kept"})
    assert "queue_depth=3" in ok and 'extra="kept"' in ok
    try:
        status_line(info, {"online": True, "ts": 1, "queue": {"depth": "many"}})
    except ValueError as exc:
        assert "queue.depth" in str(exc)
    else:
        raise AssertionError("a text queue depth was stored")


@given(st.dictionaries(st.sampled_from(["online", "ts", "gw", "reason", "queue", "link", "sources", "errors",
                                        "uptime_s", "last_reading_ts", "x"]), _json, max_size=8))
def test_typed_status_check_fails_only_with_a_readable_value_error(body):
    """Whatever JSON a device sends, the typed check answers with the struct or a ValueError (which
    the ingest turns into bad_status) — never another exception that would stop the batch."""
    for check in (status.as_gateway, status.as_station):
        try:
            typed = check(body)
        except ValueError as exc:
            assert str(exc)
        else:
            assert isinstance(typed.online, bool) and isinstance(typed.ts, int)
