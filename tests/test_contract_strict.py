"""Issue #11 §1 strict contract: property tests of the decoder's bounds (ids, seq)."""

from __future__ import annotations

import json

from hypothesis import given
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
