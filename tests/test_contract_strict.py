"""Issue #11 §1 strict contract: property tests of the decoder's bounds (ids, seq)."""

from __future__ import annotations

import json
import math
from datetime import UTC, datetime, timedelta, timezone

import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from villagewatch import contract

NOW_MS = 1_800_000_000_000


@given(st.from_regex(contract.ID_PATTERN, fullmatch=True), st.sampled_from(["\n", "\r\n", " ", "\t"]))
def test_id_with_trailing_whitespace_or_newline_is_not_an_id(ident, tail):
    assert contract.valid_id(ident)
    assert not contract.valid_id(ident + tail)
    for build in (lambda: contract.telemetry_topic("xa", ident + tail),
                  lambda: contract.parse_topic(f"{contract.TOPIC_ROOT}/xa/{ident + tail}/telemetry")):
        try:
            build()
        except (contract.TopicError, ValueError):
            continue
        raise AssertionError(f"station id {ident + tail!r} accepted")


@given(st.integers(min_value=-(2**70), max_value=2**70))
def test_seq_is_accepted_only_in_0_to_2_pow_63_minus_1(seq):
    payload = json.dumps({"ts": NOW_MS - 1000, "seq": seq, "metrics": {"ph": 7.0}}).encode()
    decoded = contract.decode_telemetry("xa", "s1", payload, NOW_MS)
    if 0 <= seq <= contract.SEQ_MAX:
        assert decoded.reading is not None and decoded.reading.seq == seq and not decoded.rejections
    else:
        assert decoded.reading is None
        assert [r.reason for r in decoded.rejections] == [contract.R_BAD_TYPE]


def test_seq_bounds_exactly():
    for seq, ok in ((0, True), (2**63 - 1, True), (2**63, False), (-1, False)):
        payload = json.dumps({"ts": NOW_MS - 1000, "seq": seq, "metrics": {"ph": 7.0}}).encode()
        assert (contract.decode_telemetry("xa", "s1", payload, NOW_MS).reading is not None) is ok, seq


@given(st.integers(min_value=1, max_value=40_000), st.sampled_from(["[", '{"a":']),
       st.sampled_from(["x", "metrics", "flags"]), st.booleans())
def test_deep_nesting_is_bad_json_or_bad_type_never_an_exception(depth, opener, field, non_finite):
    closer = "]" if opener == "[" else "}"
    deep = opener * depth + "1" + closer * depth
    ph = "NaN" if non_finite else "7.0"  # NaN takes the lenient (json module) path
    payload = f'{{"ts": {NOW_MS - 1000}, "seq": 1, "metrics": {{"ph": {ph}}}, "{field}": {deep}}}'.encode()
    decoded = contract.decode_telemetry("xa", "s1", payload[:contract.MAX_PAYLOAD_BYTES], NOW_MS)
    assert decoded.reading is not None or decoded.rejections
    if depth > 5_000 and len(payload) <= contract.MAX_PAYLOAD_BYTES:
        assert [r.reason for r in decoded.rejections] == [contract.R_BAD_JSON]
    status = f'{{"online": true, "ts": {NOW_MS}, "x": {deep}}}'.encode()
    try:
        contract.decode_status(status)
    except ValueError:
        pass


# --------------------------------------------------------------------------- the whole decoder
# A generated payload is a model (what each part is, and what the contract says about it) plus its
# JSON text. The model's verdict is computed here, independently of the decoder, from the rules of
# docs/protocol.md; the decoder must agree exactly: accepted with exactly the expected reading and
# rejected parts, or rejected with the expected reason. Never an exception.

class Obj(list):
    """A JSON object as its list of (key, value) pairs, so duplicate keys can be written."""


def to_json(value, ascii_only: bool) -> str:
    if isinstance(value, Obj):
        return "{" + ",".join(f"{json.dumps(k, ensure_ascii=ascii_only)}:{to_json(v, ascii_only)}"
                              for k, v in value) + "}"
    if isinstance(value, list):
        return "[" + ",".join(to_json(v, ascii_only) for v in value) + "]"
    if isinstance(value, float) and not math.isfinite(value):
        return "NaN" if value != value else ("Infinity" if value > 0 else "-Infinity")
    return json.dumps(value, ensure_ascii=ascii_only)


def has_surrogate(text: str) -> bool:
    """A lone surrogate once through JSON (an adjacent high + low pair is one valid character)."""
    return any(0xD800 <= ord(c) <= 0xDFFF for c in json.loads(json.dumps(text)))


def nested(depth: int):
    """A value ``depth`` levels deep (lists and objects without duplicate keys)."""
    value: object = 1
    for i in range(depth):
        value = [value] if i % 2 else Obj([("k", value)])
    return value


TEXT = st.lists(st.characters(codec="utf-8") | st.sampled_from(":{[\\\"\ud800\udfff"), max_size=8).map("".join)
FLAG = st.sampled_from(contract.QUALITY_FLAGS) | st.from_regex(contract.ID_PATTERN, fullmatch=True) | TEXT


@st.composite
def rfc3339(draw):
    """(text, ms) of an RFC 3339 date-time between 2000 and now; ms computed with timedelta."""
    dt = draw(st.datetimes(datetime(2000, 1, 2), datetime(2027, 1, 1)))
    frac = draw(st.text("0123456789", min_size=0, max_size=9))
    offset_min = draw(st.integers(-23 * 60 - 59, 23 * 60 + 59))
    text = dt.strftime("%Y-%m-%d") + draw(st.sampled_from("Tt")) + dt.strftime("%H:%M:%S")
    if frac:
        text += "." + frac
    if offset_min == 0 and draw(st.booleans()):
        text += draw(st.sampled_from("Zz"))
    else:
        text += f"{'+' if offset_min >= 0 else '-'}{abs(offset_min) // 60:02d}:{abs(offset_min) % 60:02d}"
    micro = int(frac[:6].ljust(6, "0")) if frac else 0
    local = dt.replace(microsecond=micro, tzinfo=timezone(timedelta(minutes=offset_min)))
    ms = (local - datetime(1970, 1, 1, tzinfo=UTC)) // timedelta(milliseconds=1)
    return text, ms


NOT_RFC3339 = st.sampled_from([
    "2026-05-28 20:26:39+07:00", "2026-05-28T20:26:39", "2026-05-28T20:26+07:00", "20260528T202639Z",
    "2026-W22-4T20:26:39Z", " 2026-05-28T20:26:39Z", "2026-05-28T20:26:39Z\n", "2026-05-28T20:26:39.1234567890Z",
    "２０２６-05-28T20:26:39Z", "2026-05-28T24:00:00Z", "2026-05-28T23:59:60Z", "2026-02-30T00:00:00Z",
    "2026-05-28T20:26:39+24:00", "2026-05-28T20:26:39+07", "2026-05-28", "1780000000000", ""])


@st.composite
def metric_entry(draw):
    """(name, value, expected): expected is ('good', float) or a rejection reason."""
    known = draw(st.integers(0, 4)) > 0
    name = draw(st.sampled_from(sorted(contract.METRICS))) if known else draw(TEXT.filter(
        lambda n: n not in contract.METRICS))
    m = contract.METRICS.get(name)
    kind = draw(st.sampled_from(["good"] * 12 + ["good_int"] * 4 + ["low", "high", "nan", "inf", "huge", "bool", "str",
                                                                     "null", "deep", "shallow"]))
    lo, hi = (m.lo, m.hi) if m else (0, 1)
    value = {
        "good": lambda: draw(st.floats(lo, hi)),
        "good_int": lambda: draw(st.integers(math.ceil(lo), math.floor(hi))),
        "low": lambda: draw(st.floats(max_value=lo, exclude_max=True, allow_nan=False, allow_infinity=False)),
        "high": lambda: draw(st.floats(min_value=hi, exclude_min=True, allow_nan=False, allow_infinity=False)),
        "nan": lambda: math.nan,
        "inf": lambda: draw(st.sampled_from([math.inf, -math.inf])),
        "huge": lambda: draw(st.sampled_from([10**30, -(10**30), 2**64])),
        "bool": lambda: draw(st.booleans()),
        "str": lambda: draw(TEXT),
        "null": lambda: None,
        "deep": lambda: nested(draw(st.integers(3, 8))),
        "shallow": lambda: nested(draw(st.integers(1, 2))),
    }[kind]()
    if kind == "deep":
        expected = "too_deep"
    elif m is None:
        expected = contract.R_UNKNOWN_METRIC
    elif kind in ("good", "good_int"):
        expected = ("good", float(value))
    elif kind in ("low", "high", "huge"):
        expected = contract.R_OUT_OF_RANGE
    elif kind in ("nan", "inf"):
        expected = contract.R_NON_FINITE
    else:
        expected = contract.R_BAD_TYPE
    return name, value, expected


@st.composite
def telemetry_case(draw):
    """(payload bytes, expected): expected is ('reject', reason) or ('accept', reading fields, parts)."""
    whole: list[str] = []  # message-level reasons in the decoder's order of checks
    top: list[tuple[str, object]] = []
    ts_kind = draw(st.sampled_from(["int"] * 6 + ["rfc"] * 6 + ["not_rfc", "future", "old", "float", "bool", "missing",
                                                               "null"]))
    ts_ms = None
    if ts_kind == "int":
        ts_ms = draw(st.integers(contract.MIN_TS_MS, NOW_MS + contract.MAX_FUTURE_MS))
        top.append(("ts", ts_ms))
    elif ts_kind == "rfc":
        text, ts_ms = draw(rfc3339())
        top.append(("ts", text))
    elif ts_kind == "not_rfc":
        top.append(("ts", draw(NOT_RFC3339)))
    elif ts_kind == "future":
        top.append(("ts", draw(st.integers(NOW_MS + contract.MAX_FUTURE_MS + 1, 2**80))))
    elif ts_kind == "old":
        top.append(("ts", draw(st.integers(-(2**80), contract.MIN_TS_MS - 1))))
    elif ts_kind in ("float", "bool"):
        top.append(("ts", draw(st.floats(1e12, 2e12) if ts_kind == "float" else st.booleans())))
    elif ts_kind == "null":
        top.append(("ts", None))
    type_error = ts_kind in ("float", "bool")  # msgspec.convert refuses the struct: bad_type
    seq = draw(st.integers(0, 10**6) | st.integers(0, 10**6) | st.integers(-5, contract.SEQ_MAX + 5)
               | st.sampled_from([True, None, 2**64]))
    if seq is not None or draw(st.booleans()):
        top.append(("seq", seq))
    if isinstance(seq, bool):
        type_error = True
    entries = draw(st.lists(metric_entry(), min_size=draw(st.sampled_from([0, 1, 1, 1])), max_size=6,
                            unique_by=lambda e: e[0]))
    metrics_present = draw(st.booleans()) or bool(entries)
    if metrics_present:
        top.append(("metrics", Obj([(n, v) for n, v, _ in entries])))
    gw = draw(st.none() | st.none() | st.from_regex(contract.ID_PATTERN, fullmatch=True) | TEXT | st.integers(0, 9))
    if gw is not None:
        top.append(("gw", gw))
        type_error |= isinstance(gw, int)
    flag_lists = {}
    if entries and draw(st.booleans()):
        for name, _, _ in entries[:3]:
            flag_lists[name] = draw(st.lists(FLAG, max_size=3))
        top.append(("flags", Obj(list(flag_lists.items()))))
    extra_depth = draw(st.sampled_from([0] * 8 + [1, 2, 3, 4, 6]))
    if extra_depth:
        top.append(("extra", nested(extra_depth)))
    top = draw(st.permutations(top))
    duplicate = draw(st.sampled_from([None] * 10 + ["top", "metrics"]))
    if duplicate == "top" and top:
        top.append(top[0])
    elif duplicate == "metrics" and entries:
        entries_pairs = [(n, v) for n, v, _ in entries]
        top = [(k, Obj([*entries_pairs, entries_pairs[0]]) if k == "metrics" else v) for k, v in top]
    else:
        duplicate = None
    body = Obj(top)
    ascii_only = draw(st.booleans())
    text = to_json(body, ascii_only)
    if not ascii_only and any(0xD800 <= ord(c) <= 0xDFFF for c in text):
        text = to_json(body, ascii_only=True)  # a Python str with surrogates has no UTF-8 bytes
    payload = text.encode("utf-8")  # surrogates, if any, are \u escapes in ASCII text

    # the verdict, in the decoder's order: JSON-level rules, then types, then fields, then metrics
    too_deep = extra_depth + 1 > contract.MAX_DEPTH_TELEMETRY or any(e[2] == "too_deep" for e in entries)
    strings = [k for k, _ in top] + [n for n, _, _ in entries] + [f for fl in flag_lists.values() for f in fl]
    strings += [v for _, v in top if isinstance(v, str)] + [v for _, v, _ in entries if isinstance(v, str)]
    if duplicate or too_deep:
        return payload, ("reject", contract.R_BAD_JSON)
    if any(has_surrogate(s) for s in strings):
        return payload, ("reject", contract.R_BAD_UTF8)
    if type_error:
        return payload, ("reject", contract.R_BAD_TYPE)
    if ts_kind in ("missing", "null"):
        whole.append(contract.R_TS_MISSING)
    elif ts_kind == "not_rfc":
        whole.append(contract.R_BAD_TYPE)
    elif ts_kind == "future":
        whole.append(contract.R_TS_FUTURE)
    elif ts_kind == "old":
        whole.append(contract.R_TS_TOO_OLD)
    if seq is None or not 0 <= seq <= contract.SEQ_MAX:
        whole.append(contract.R_BAD_TYPE)
    if not entries:
        whole.append(contract.R_NO_METRICS)
    if gw is not None and not contract.valid_id(gw):
        whole.append(contract.R_BAD_TYPE)
    if whole:
        return payload, ("reject", whole[0])
    good, parts, flags = {}, [], {}
    for name, _, expected in entries:
        if expected[0] != "good":
            parts.append((expected, name))
        elif name in flag_lists and not all(map(contract.valid_id, flag_lists[name])):
            parts.append((contract.R_BAD_TYPE, name))
        else:
            good[name] = expected[1]
            if name in flag_lists:
                flags[name] = flag_lists[name]
    if not good:
        return payload, ("reject_parts", sorted(parts))
    return payload, ("accept", (ts_ms, seq, good, gw, flags), sorted(parts))


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(telemetry_case())
def test_every_payload_is_accepted_exactly_or_rejected_with_its_reason(case):
    payload, expected = case
    decoded = contract.decode_telemetry("xa", "s1", payload, NOW_MS)  # must not raise
    got_parts = sorted((r.reason, r.metric) for r in decoded.rejections)
    assert all(r.reason in contract.REJECTION_REASONS and r.detail for r in decoded.rejections)
    if expected[0] == "reject":
        assert decoded.reading is None, payload
        assert [r.reason for r in decoded.rejections] == [expected[1]], payload
    elif expected[0] == "reject_parts":
        assert decoded.reading is None, payload
        assert got_parts == expected[1], payload
    else:
        ts_ms, seq, good, gw, flags = expected[1]
        assert decoded.reading == contract.Reading("xa", "s1", ts_ms, seq, good, gw, flags), payload
        assert got_parts == expected[2], payload


@settings(max_examples=500, deadline=None)
@given(st.binary(max_size=300) | st.text(max_size=200).map(lambda t: t.encode("utf-8", "surrogatepass")))
def test_arbitrary_bytes_never_raise(payload):
    decoded = contract.decode_telemetry("xa", "s1", payload, NOW_MS)
    assert decoded.reading is not None or decoded.rejections
    assert all(r.reason in contract.REJECTION_REASONS and r.detail for r in decoded.rejections)
    try:
        contract.decode_status(payload)
    except contract.StatusError as exc:
        assert exc.reason in contract.REJECTION_REASONS and str(exc)


@settings(max_examples=400, deadline=None)
@given(st.sampled_from([None, "dup", "deep", "surrogate", "not_rfc"]), st.integers(1, 3))
def test_status_rules(fault, level):
    inner = Obj([("depth", 3), ("salvage", Obj([("lost", 0)]))])
    body = Obj([("online", True), ("ts", "2026-05-28T20:26:39Z"), ("queue", inner)])
    if fault == "dup":
        (body if level == 1 else inner).append(("online" if level == 1 else "depth", False))
    elif fault == "deep":
        body.append(("sources", nested(contract.MAX_DEPTH_STATUS + level - 1)))
    elif fault == "surrogate":
        inner.append(("last_error", "\udc80 " * level))
    elif fault == "not_rfc":
        body[1] = ("ts", "2026-05-28T20:26:39")
    payload = to_json(body, ascii_only=True).encode()
    if fault is None:
        assert contract.decode_status(payload)["ts"] == contract.parse_ts("2026-05-28T20:26:39+00:00")
        return
    with pytest.raises(contract.StatusError) as caught:
        contract.decode_status(payload)
    assert caught.value.reason == {"dup": contract.R_BAD_JSON, "deep": contract.R_BAD_JSON,
                                   "surrogate": contract.R_BAD_UTF8, "not_rfc": contract.R_BAD_STATUS}[fault]
