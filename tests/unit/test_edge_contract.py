"""The optional fields the agent adds to the contract, and where the collector keeps them."""

from __future__ import annotations

import json

import pytest
from pydantic import ValidationError

from luftnett.collector.validate import payload_rows
from luftnett.contracts import mqtt as contract
from luftnett.db.schema import READING_COLUMNS

READING = {
    "seq": 7,
    "ts": "2026-01-01T12:00:00+00:00",
    "window_s": 60.0,
    "n_samples": 55,
    "values": {"pm25_ugm3": 12.5, "pm4_ugm3": 13.0},
    "flags": ["clock_suspect"],
    "sensor": {"model": "sps30", "serial": "ABC"},
    "n": {"pm25_ugm3": 55, "pm4_ugm3": 55},
    "min": {"pm25_ugm3": 10.0, "pm4_ugm3": 11.0},
    "max": {"pm25_ugm3": 15.0, "pm4_ugm3": 16.0},
    "n_warmup": 5,
}


def _payload(reading: dict[str, object]) -> bytes:
    return json.dumps(
        {
            "schema_version": 1,
            "device_id": "dev-001",
            "agent_version": "0.2.0",
            "sensor": {"model": "sds011", "serial": "A160"},
            "readings": [reading],
        }
    ).encode()


def test_window_statistics_and_sensor_land_in_their_columns_and_extra() -> None:
    p = contract.decode_readings(_payload(READING))
    (row,) = payload_rows(p)
    r = dict(zip(READING_COLUMNS, row, strict=True))
    assert (r["sensor_model"], r["sensor_serial"]) == ("sps30", "ABC")  # the reading's own
    assert json.loads(r["extra"]) == {
        "pm4_ugm3": 13.0,
        "min": READING["min"],
        "max": READING["max"],
        "n": READING["n"],
        "n_warmup": 5,
    }
    assert r["flags"] == 1 << 4  # clock_suspect


def test_a_reading_without_the_optional_fields_is_stored_as_before() -> None:
    plain = {k: v for k, v in READING.items() if k in ("seq", "ts", "window_s", "n_samples")}
    (row,) = payload_rows(contract.decode_readings(_payload({**plain, "values": {}})))
    r = dict(zip(READING_COLUMNS, row, strict=True))
    assert (r["sensor_model"], r["extra"]) == ("sds011", None)


@pytest.mark.parametrize(
    "bad",
    [
        pytest.param({"min": {"pm_made_up": 1.0}}, id="unknown-quantity-in-min"),
        pytest.param({"max": {"pm25_ugm3": float("inf")}}, id="infinite-max"),
        pytest.param({"n": {"nope": 1}}, id="unknown-quantity-in-n"),
        pytest.param({"n_warmup": -1}, id="negative-warmup"),
    ],
)
def test_bad_statistics_are_refused(bad: dict[str, object]) -> None:
    with pytest.raises(ValidationError):
        contract.Reading.model_validate({**READING, **bad})


def test_status_health_fields_are_optional_and_the_will_stays_minimal() -> None:
    will = contract.StatusPayload(device_id="dev-001", state="offline")
    assert json.loads(contract.encode(will)) == {
        "schema_version": 1,
        "device_id": "dev-001",
        "state": "offline",
        "agent_version": "",
    }
    full = contract.StatusPayload(
        device_id="dev-001",
        state="online",
        outbox_depth=3,
        readings_shed=2,
        sensors={"sds011": contract.SensorHealth(model="sds011", port="/dev/x", frames=9)},
    )
    assert contract.StatusPayload.model_validate_json(contract.encode(full)) == full


def test_the_agent_splices_stored_readings_into_a_valid_payload(tmp_path) -> None:
    from luftnett.edge.agent import EdgeAgent, EdgeConfig, SensorConfig

    agent = EdgeAgent(
        EdgeConfig(
            device_id="dev-001",
            outbox_path=tmp_path / "o.sqlite",
            mqtt_url="mqtt://127.0.0.1:1",
            sensors=(SensorConfig("sds011", "/dev/null-port"),),
        )
    )
    try:
        doc = {k: v for k, v in READING.items() if k != "seq"}
        for _ in range(3):
            agent.outbox.append(doc)
        p = contract.decode_readings(agent._payload(agent.outbox.pending_raw(10)), "dev-001")
    finally:
        agent.stop()
    assert [r.seq for r in p.readings] == [0, 1, 2]
    assert p.sensor == contract.SensorInfo(model="sps30", serial="ABC")  # the first reading's
    assert p.readings[0].min == READING["min"]
