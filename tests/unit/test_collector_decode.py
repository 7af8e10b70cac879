"""The collector's msgspec decoder against the pydantic contract: whatever the fast decoder
accepts, the contract accepts with the same rows; whatever it leaves, the contract decides.
Payloads come from hypothesis: valid documents, then mutated ones (wrong types, edge values,
unknown names, odd time formats)."""

from __future__ import annotations

import json
import math
from typing import Any

import msgspec
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.collector.columns import as_columns, count, epoch_us
from luftnett.collector.decode import REAL_MAX, decode_columns, fast_columns
from luftnett.collector.validate import Accepted, Quarantined, payload_rows, validate_message
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import QUANTITIES, ReadingFlag
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS
from luftnett.errors import PayloadError

DEVICE = "dev-001"
TOPIC = contract.readings_topic("t", DEVICE)
QUANTITY_NAMES = sorted(QUANTITIES)
FLAG_NAMES = sorted(f.lower() for f in ReadingFlag.__members__)

# values chosen at and across the contract's limits
numbers = st.one_of(
    st.integers(-3, 3),
    st.sampled_from([0, 0.0, -0.0, 1e-300, 5e-324, 1e300, 3.5e38, -3.5e38, 86_400, 86_400.5]),
    st.sampled_from([1_000_000, 1_000_001, 2**63 - 1, 2**63, -1, 1.5, 1e20]),
    st.floats(allow_nan=False, allow_infinity=False),
)
times = st.sampled_from(
    [
        "2026-11-22T10:00:00Z",
        "2026-11-22T10:00:00+01:00",
        "2026-11-22T10:00:00.123456Z",
        "2026-11-22T10:00:00.1234567Z",
        "2026-11-22T10:00:00.9999995Z",
        "2026-11-22 10:00:00Z",
        "2026-11-22t10:00:00z",
        "2026-11-22T10:00:00",
        "2026-11-22T10:00Z",
        "2026-11-22",
        "2026-11-22T24:00:00Z",
        "2026-11-22T10:00:60Z",
        "2026-02-30T10:00:00Z",
        "0001-01-01T00:00:00Z",
        "9999-12-31T23:59:59+23:59",
        "2026-11-22T10:00:00-00:00",
        "2026-11-22T10:00:00+2400",
        "1700000000",
    ]
)
names = st.one_of(st.sampled_from(QUANTITY_NAMES), st.sampled_from(["pm26", "PM25_ugm3", ""]))
json_scalars = st.one_of(st.none(), st.booleans(), numbers, st.text(max_size=5), times)


@st.composite
def readings(draw: st.DrawFn) -> dict[str, Any]:
    r: dict[str, Any] = {
        "seq": draw(st.integers(0, 10**6)),
        "ts": draw(times),
        "window_s": draw(st.sampled_from([1, 60.0, 0.5])),
        "n_samples": draw(st.integers(0, 100)),
        "values": draw(st.dictionaries(st.sampled_from(QUANTITY_NAMES), numbers, max_size=4)),
    }
    if draw(st.booleans()):
        r["flags"] = draw(st.lists(st.sampled_from(FLAG_NAMES), max_size=2))
    for stat in ("min", "max", "n"):  # quantity -> value; now and then a bad name or value
        if draw(st.integers(0, 3)) == 0:
            r[stat] = draw(st.dictionaries(names, st.one_of(numbers, json_scalars), max_size=2))
    if draw(st.integers(0, 3)) == 0:
        r["n_warmup"] = draw(st.one_of(st.integers(0, 100), numbers))
    if draw(st.integers(0, 4)) == 0:
        r["sensor"] = {"model": draw(st.sampled_from(["pms5003", "x", "sds011\n"]))}
    return r


@st.composite
def documents(draw: st.DrawFn) -> dict[str, Any]:
    doc: dict[str, Any] = {
        "schema_version": 1,
        "device_id": DEVICE,
        "agent_version": draw(st.text(max_size=45)),
        "sensor": {"model": "sds011", "serial": draw(st.one_of(st.none(), st.text(max_size=3)))},
        "readings": draw(st.lists(readings(), min_size=1, max_size=3)),
    }
    # one mutation in most documents: a field replaced, removed or added somewhere
    kind = draw(st.integers(0, 6))
    target = doc if kind < 3 else draw(st.sampled_from(doc["readings"]))
    key = draw(st.sampled_from(sorted(target)))
    if kind in (0, 3):
        target[key] = draw(json_scalars)
    elif kind in (1, 4):
        del target[key]
    elif kind == 5:
        target[draw(names)] = draw(json_scalars)
    elif kind == 6 and isinstance(target.get("values"), dict):
        target["values"][draw(names)] = draw(json_scalars)
    return doc


_I_EXTRA = READING_COLUMNS.index("extra")


def _same(a: Any, b: Any) -> bool:
    if isinstance(a, float) and isinstance(b, float):
        return a == b or (math.isnan(a) and math.isnan(b))
    return bool(a == b)


def _rows_equal(fast: list[tuple[Any, ...]], slow: list[tuple[Any, ...]]) -> bool:
    if len(fast) != len(slow):
        return False
    for f, s in zip(fast, slow, strict=True):
        for i, (x, y) in enumerate(zip(f, s, strict=True)):
            if i == _I_EXTRA and isinstance(x, str) and isinstance(y, str):
                if json.loads(x) != json.loads(y):  # extra: same JSON, any key order
                    return False
            elif not _same(x, y):  # a serial may start with "{" too: compared as text
                return False
    return True


@settings(max_examples=400, deadline=None, suppress_health_check=[HealthCheck.too_slow])
@given(documents(), st.booleans())
def test_fast_decoder_accepts_only_what_the_contract_accepts_with_the_same_rows(
    doc: dict[str, Any], text_ts: bool
) -> None:
    """Either way of parsing the times: msgspec's (small payloads), or numpy's on the texts
    (larger payloads; msgspec's for a text numpy does not take)."""
    data = json.dumps(doc).encode()
    fast = decode_columns(data, DEVICE, text_ts)
    try:
        p = contract.decode_readings(data, topic_device=DEVICE)
    except PayloadError:
        assert fast is None, f"fast decoder accepted what the contract refuses: {data!r}"
        return
    if fast is None:
        return  # the contract's lax forms (or a value too large for a column): the slow way
    device, readings = fast
    assert device == (p.device_id, p.sensor.model, p.sensor.serial, p.agent_version)
    assert count(readings) == len(p.readings)
    assert _rows_equal(as_columns(readings).rows(device), payload_rows(p))


# times of the two forms numpy parses, each field from 0 to just past its limit
canonical_times = st.builds(
    "{:04d}-{:02d}-{:02d}T{:02d}:{:02d}:{:02d}{}Z".format,
    st.sampled_from([0, 1, 1969, 1970, 2000, 2024, 2100, 9999]),
    st.integers(0, 13),
    st.integers(0, 32),
    st.integers(0, 24),
    st.integers(0, 60),
    st.integers(0, 60),
    st.one_of(st.just(""), st.from_regex(r"\.[0-9]{6}", fullmatch=True)),
)


@settings(max_examples=500, deadline=None)
@given(st.lists(st.one_of(canonical_times, times), min_size=1, max_size=4))
def test_numpy_parses_the_times_msgspec_parses_the_same(ts: list[str]) -> None:
    from luftnett.collector import decode

    got = decode._text_us(ts)
    try:
        want = [epoch_us(t) for t in msgspec.convert(ts, list[decode.TzDatetime])]
    except msgspec.ValidationError:
        assert got is None, ts
        return
    assert got is None or got == want, ts


def test_a_large_payload_has_its_times_parsed_by_numpy() -> None:
    from luftnett.collector import decode

    assert decode._text_us(["2026-11-22T10:00:00Z", "1969-07-20T20:17:40Z"]) == [
        1795341600000000,
        -14182940000000,
    ]
    assert decode._text_us(["2028-02-29T23:59:59.000001Z"]) == [1835481599000001]
    t = "2026-11-22T10:00:00Z"
    for odd in ([t + t, ""], [t, t[:-1] + "|"], [t + "|" + t[:-1], "Z"], [t[:-1] + "\u00d8"]):
        assert decode._text_us(odd) is None, odd  # texts not of the form, however joined
    readings = [{"seq": i, "ts": f"2026-11-22T10:{i:02d}:00.{i:06d}Z", "window_s": 60,
                 "n_samples": 60, "values": {"pm25_ugm3": i / 4}} for i in range(40)]  # fmt: skip
    doc = {"device_id": DEVICE, "agent_version": "a", "sensor": {"model": "sds011"},
           "readings": readings}  # fmt: skip
    data = json.dumps(doc).encode()
    assert len(data) >= decode.TEXT_TS_BYTES
    fast = fast_columns(data, DEVICE)
    assert fast is not None
    p = contract.decode_readings(data, topic_device=DEVICE)
    assert _rows_equal(as_columns(fast[1]).rows(fast[0]), payload_rows(p))


@settings(max_examples=200, deadline=None)
@given(documents())
def test_validate_message_decides_as_the_contract(doc: dict[str, Any]) -> None:
    """Accepted exactly when the contract accepts (and the values fit their columns)."""
    data = json.dumps(doc).encode()
    item = validate_message("t", TOPIC, data)
    try:
        p = contract.decode_readings(data, topic_device=DEVICE)
    except PayloadError as exc:
        assert isinstance(item, Quarantined) and item.reason == exc.reason
        return
    too_big = any(
        abs(v) > REAL_MAX for r in p.readings for k, v in r.values.items() if k in VALUE_COLUMNS
    )
    if too_big:
        assert isinstance(item, Quarantined) and item.reason == "db_rejected"
    else:
        assert isinstance(item, Accepted)
        assert _rows_equal(item.rows, payload_rows(p))


@pytest.mark.parametrize(
    "doc",
    [
        {"device_id": "dev-001\n"},  # Python's "$" would let the newline through
        {"agent_version": "x" * 41},
        {"schema_version": 2},
        {"readings": []},
        {"sensor": {"model": "SDS011"}},
        {"extra_field": 1},
    ],
)
def test_fast_decoder_leaves_invalid_payloads_to_the_contract(doc: dict[str, Any]) -> None:
    base: dict[str, Any] = {
        "schema_version": 1,
        "device_id": DEVICE,
        "agent_version": "a",
        "sensor": {"model": "sds011"},
        "readings": [{"seq": 1, "ts": "2026-01-01T00:00:00Z", "window_s": 60, "n_samples": 1,
                      "values": {"pm25_ugm3": 1.0}}],
    }  # fmt: skip
    data = json.dumps({**base, **doc}).encode()
    assert fast_columns(data, DEVICE) is None
    assert decode_columns(data, DEVICE, text_ts=True) is None
    with pytest.raises(PayloadError):
        contract.decode_readings(data, topic_device=DEVICE)


def test_fast_decoder_limits_match_the_contract_fields() -> None:
    """Every field of the pydantic models has its namesake in the msgspec structs."""
    from luftnett.collector import decode

    for model, struct in (
        (contract.ReadingsPayload, decode._Payload),
        (contract.Reading, decode._Reading),
        (contract.SensorInfo, decode._Sensor),
    ):
        assert set(model.model_fields) == set(struct.__struct_fields__), model.__name__
    assert decode._DEVICE("a" * 40) and not decode._DEVICE("a" * 41)
    assert contract.DEVICE_ID_PATTERN == "^[a-z0-9-]{3,40}$"
