from __future__ import annotations

import json
from datetime import UTC, datetime

import pytest
from hypothesis import given
from hypothesis import strategies as st

from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import COLUMN_QUANTITIES, QUANTITIES, ReadingFlag
from luftnett.db.schema import READING_COLUMNS, VALUE_COLUMNS
from luftnett.errors import PayloadError


def _doc(**over: object) -> dict[str, object]:
    doc: dict[str, object] = {
        "schema_version": 1,
        "device_id": "demo-001",
        "agent_version": "0.1.0",
        "sensor": {"model": "sds011", "serial": "A160"},
        "readings": [
            {
                "seq": 0,
                "ts": "2026-11-22T10:00:00+00:00",
                "window_s": 60,
                "n_samples": 58,
                "values": {"pm25_ugm3": 12.3, "pm10_ugm3": 20.1},
                "flags": ["warming_up"],
            }
        ],
    }
    doc.update(over)
    return doc


def test_topics_share_one_layout() -> None:
    t = contract.readings_topic("luftnett", "demo-001")
    assert t == "luftnett/v1/demo-001/readings"
    assert contract.parse_topic("luftnett", t) == ("demo-001", "readings")
    assert contract.parse_topic("luftnett", contract.status_topic("luftnett", "x-1")) == (
        "x-1",
        "status",
    )
    assert contract.parse_topic("luftnett", "other/v1/a/readings") is None
    assert contract.parse_topic("luftnett", "luftnett/v2/a/readings") is None
    assert (
        contract.readings_subscription("luftnett", "pool") == "$share/pool/luftnett/v1/+/readings"
    )


def test_valid_payload_round_trips() -> None:
    p = contract.decode_readings(json.dumps(_doc()).encode(), topic_device="demo-001")
    assert p.readings[0].values["pm25_ugm3"] == 12.3
    assert p.readings[0].ts == datetime(2026, 11, 22, 10, tzinfo=UTC)
    again = contract.decode_readings(contract.encode(p))
    assert again == p


@pytest.mark.parametrize(
    ("raw", "reason"),
    [
        pytest.param(b"\xff\xfe", "not_json", id="binary"),
        pytest.param(b"[]", "invalid", id="array"),
        pytest.param(json.dumps(_doc(schema_version=2)).encode(), "schema_version", id="v2"),
        pytest.param(json.dumps(_doc(device_id="Bad Id")).encode(), "invalid", id="device-id"),
        pytest.param(json.dumps(_doc(readings=[])).encode(), "invalid", id="empty-batch"),
        pytest.param(json.dumps(_doc(extra=1)).encode(), "invalid", id="unknown-field"),
        pytest.param(b"x" * 1_000_001, "too_large", id="too-large"),
    ],
)
def test_bad_payloads_give_a_reason(raw: bytes, reason: str) -> None:
    with pytest.raises(PayloadError) as exc:
        contract.decode_readings(raw)
    assert exc.value.reason == reason
    assert str(exc.value)


def test_naive_timestamp_unknown_quantity_nan_and_unknown_flag_are_refused() -> None:
    for mutate in (
        lambda r: r.update(ts="2026-11-22T10:00:00"),
        lambda r: r.update(values={"pm99": 1.0}),
        lambda r: r.update(values={"pm25_ugm3": float("nan")}),
        lambda r: r.update(flags=["made_up"]),
        lambda r: r.update(seq=-1),
    ):
        doc = _doc()
        mutate(doc["readings"][0])  # type: ignore[index]
        with pytest.raises(PayloadError) as exc:
            contract.decode_readings(json.dumps(doc).encode())
        assert exc.value.reason in {"invalid", "not_json"}


def test_device_must_match_topic() -> None:
    with pytest.raises(PayloadError) as exc:
        contract.decode_readings(json.dumps(_doc()).encode(), topic_device="demo-002")
    assert exc.value.reason == "device_mismatch"


@given(st.binary(max_size=2000))
def test_random_bytes_never_crash_the_decoder(raw: bytes) -> None:
    try:
        contract.decode_readings(raw)
    except PayloadError as exc:
        assert exc.reason


def test_schema_columns_come_from_the_units_registry() -> None:
    assert VALUE_COLUMNS == COLUMN_QUANTITIES
    assert set(VALUE_COLUMNS) <= set(QUANTITIES)
    assert set(VALUE_COLUMNS) <= set(READING_COLUMNS)
    # edge flag names map onto the registry
    assert ReadingFlag["WARMING_UP"] == 1


def test_model_quantities_match_the_drivers() -> None:
    """MODEL_QUANTITIES names every driver and exactly the quantities its decoder reports."""
    from luftnett.contracts.units import MODEL_QUANTITIES, QUANTITIES
    from luftnett.edge.drivers import DRIVERS, no2_uart, pms, sds011, sht31, sps30

    assert set(MODEL_QUANTITIES) == set(DRIVERS)
    for qs in MODEL_QUANTITIES.values():
        assert set(qs) <= set(QUANTITIES)
    decoded = {
        "sds011": sds011._decode(sds011.data_frame(12.3, 20.1)),
        "sht31": sht31._decode(sht31.measurement_line(21.5, 40.0)),
    }
    for model, item in decoded.items():
        assert set(item.values) == set(MODEL_QUANTITIES[model]), model  # type: ignore[union-attr]
    assert MODEL_QUANTITIES["pms5003"] == MODEL_QUANTITIES["pms7003"] == pms.WORDS
    assert MODEL_QUANTITIES["sps30"] == sps30.VALUES
    assert MODEL_QUANTITIES["dgs-no2"] == tuple(f for f in no2_uart._FIELDS if f in QUANTITIES)


def test_which_sensor_names_a_box() -> None:
    """A PM sensor before the NO2 module before a temperature/RH companion; a model the
    registry does not know counts as a PM sensor (it always named its device before)."""
    from luftnett.contracts.units import MAIN_SENSOR_RANKS, MODEL_QUANTITIES, main_sensor_rank

    ranks = {m: main_sensor_rank(m) for m in MODEL_QUANTITIES}
    assert ranks == {"sds011": 2, "pms5003": 2, "pms7003": 2, "sps30": 2, "dgs-no2": 1,
                     "sht31": 0}  # fmt: skip
    assert main_sensor_rank("a-model-of-its-own") == 2
    assert MAIN_SENSOR_RANKS == {0: ("sht31",), 1: ("dgs-no2",)}
