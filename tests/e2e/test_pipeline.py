"""Whole stories through a real pty, Mosquitto, PostgreSQL and the API."""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path

import httpx
import psycopg
import pytest

from luftnett.collector.service import Collector
from luftnett.contracts import mqtt as contract
from luftnett.edge.agent import EdgeAgent, EdgeConfig
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator

pytestmark = pytest.mark.e2e


@pytest.fixture
def collector(start_collector: Callable[..., Collector]) -> Collector:
    return start_collector(flush_interval_s=0.2)


def _payload(device_id: str, seqs: list[int], pm25: float = 10.0) -> bytes:
    return contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A160"),
            readings=[
                contract.Reading(
                    seq=s,
                    ts=datetime(2026, 1, 1, 12, s % 60, tzinfo=UTC),
                    window_s=60,
                    n_samples=60,
                    values={"pm25_ugm3": pm25 + s, "pm10_ugm3": 2 * pm25},
                )
                for s in seqs
            ],
        )
    )


def _count(pg_url: str, sql: str, *params: object) -> int:
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(sql, params).fetchone()
        return int(row[0]) if row else 0


class LimitedEmulator(Sds011Emulator):
    """An SDS011 that goes quiet after ``limit`` data frames and remembers what it sent."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.sent_pm25: list[float] = []
        super().__init__(self._value, device_id=b"\xa1\x60", max_frames=limit)
        self.interval_s = 0.1  # faster than the real 1 s: the framing is what is tested

    def _value(self, _t: float) -> tuple[float, float]:
        k = len(self.sent_pm25) + 1
        pm25 = round(5.0 + 0.7 * k, 1)
        self.sent_pm25.append(pm25)
        return pm25, round(pm25 * 1.5, 1)


def test_frames_from_pty_arrive_as_stored_readings_with_right_values(
    pg_url: str,
    mqtt_url: str,
    topic_root: str,
    device_id: str,
    collector: Collector,
    tmp_path: Path,
    wait_until,
    api_url: str,
) -> None:
    n_frames = 25
    emu = LimitedEmulator(n_frames)
    with PtyHost(emu) as host:
        agent = EdgeAgent(
            EdgeConfig(
                device_id=device_id,
                sensor_model="sds011",
                serial_port=host.path,
                window_s=1.0,
                outbox_path=tmp_path / "outbox.sqlite",
                mqtt_url=mqtt_url,
                topic_root=topic_root,
            )
        ).start()
        try:
            wait_until(
                lambda: (
                    _count(
                        pg_url,
                        "SELECT coalesce(sum(n_samples), 0) FROM readings WHERE device_id = %s",
                        device_id,
                    )
                    >= n_frames
                ),
                timeout=20,
                what=f"{n_frames} frames stored",
            )
        finally:
            agent.stop()

    assert emu.frames_sent == n_frames
    assert agent.counts["frames"] == n_frames
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, n_samples, pm25_ugm3, pm10_ugm3, sensor_serial FROM readings "
            "WHERE device_id = %s ORDER BY seq",
            (device_id,),
        ).fetchall()
    assert sum(r[1] for r in rows) == n_frames
    assert [r[0] for r in rows] == list(range(len(rows)))  # seq 0, 1, 2 ... no gaps
    assert {r[4] for r in rows} == {"A160"}
    # the n-weighted means of the stored readings reproduce the emitted values exactly
    total_pm25 = sum(r[1] * r[2] for r in rows)
    assert total_pm25 == pytest.approx(sum(emu.sent_pm25), abs=0.01 * len(rows))
    total_pm10 = sum(r[1] * r[3] for r in rows)
    assert total_pm10 == pytest.approx(
        sum(round(v * 1.5, 1) for v in emu.sent_pm25), abs=0.01 * len(rows)
    )

    # ... and the API serves them
    with httpx.Client(base_url=api_url) as client:
        devices = client.get("/api/v1/devices").json()["devices"]
        assert device_id in {d["device_id"] for d in devices}
        body = client.get(
            f"/api/v1/devices/{device_id}/readings",
            params={"start": "2000-01-01T00:00:00Z"},
        ).json()
        assert body["count"] == len(rows)
        assert [r["values"]["pm25_ugm3"] for r in body["readings"]] == pytest.approx(
            [r[2] for r in rows]
        )
        assert body["readings"][0]["ts"].endswith("+00:00")
        assert body["readings"][0]["ts_local"][-6:] in ("+01:00", "+02:00")


@pytest.mark.parametrize(
    "payload",
    [
        pytest.param(b"\x00\xffnot json at all", id="binary"),
        pytest.param(b'{"schema_version": 1, "device_id": "x"}', id="missing-fields"),
        pytest.param(b'{"schema_version": 99}', id="future-version"),
        pytest.param(b"[1, 2, 3]", id="not-an-object"),
    ],
)
def test_malformed_payload_is_quarantined_verbatim_and_collector_goes_on(
    payload: bytes,
    pg_url: str,
    publish,
    topic_root: str,
    device_id: str,
    collector: Collector,
    wait_until,
) -> None:
    topic = contract.readings_topic(topic_root, device_id)
    publish(topic, payload)
    publish(topic, _payload(device_id, [1]))
    wait_until(
        lambda: (
            _count(pg_url, "SELECT count(*) FROM readings WHERE device_id = %s", device_id) == 1
        ),
        timeout=10,
        what="the valid reading after the bad one",
    )
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT payload, reason, detail FROM quarantine WHERE topic = %s", (topic,)
        ).fetchall()
    assert len(rows) == 1
    assert bytes(rows[0][0]) == payload
    assert rows[0][1] in {"not_json", "invalid", "schema_version"}
    assert rows[0][2]


def test_payload_for_another_device_is_quarantined(
    pg_url: str,
    publish,
    topic_root: str,
    device_id: str,
    collector: Collector,
    wait_until,
) -> None:
    topic = contract.readings_topic(topic_root, device_id)
    publish(topic, _payload("someone-else", [1]))
    wait_until(
        lambda: (
            _count(
                pg_url,
                "SELECT count(*) FROM quarantine WHERE topic = %s AND reason = 'device_mismatch'",
                topic,
            )
            == 1
        ),
        timeout=10,
        what="device_mismatch quarantine record",
    )


def test_same_device_seq_twice_is_stored_once(
    pg_url: str,
    publish,
    topic_root: str,
    device_id: str,
    collector: Collector,
    wait_until,
) -> None:
    topic = contract.readings_topic(topic_root, device_id)
    publish(topic, _payload(device_id, [1, 2, 3]))
    publish(topic, _payload(device_id, [1, 2, 3]))  # a redelivery
    publish(topic, _payload(device_id, [3, 4, 4], pm25=99.0))  # overlap + in-batch dup
    wait_until(lambda: collector.counts["duplicates"] >= 5, timeout=10, what="5 duplicates seen")
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, pm25_ugm3 FROM readings WHERE device_id = %s ORDER BY seq", (device_id,)
        ).fetchall()
    assert [r[0] for r in rows] == [1, 2, 3, 4]
    assert rows[2][1] == pytest.approx(13.0)  # the first copy of seq 3 wins


def test_database_refusal_quarantines_only_the_bad_message(
    pg_url: str,
    publish,
    topic_root: str,
    device_id: str,
    collector: Collector,
    wait_until,
) -> None:
    """A value the contract allows but a real column cannot hold must not stall the batch."""
    topic = contract.readings_topic(topic_root, device_id)
    huge = json.loads(_payload(device_id, [7]))
    huge["readings"][0]["values"]["pm25_ugm3"] = 1e300  # finite, but overflows `real`
    publish(topic, json.dumps(huge).encode())
    publish(topic, _payload(device_id, [8]))
    wait_until(
        lambda: (
            _count(
                pg_url,
                "SELECT count(*) FROM quarantine WHERE topic = %s AND reason = 'db_rejected'",
                topic,
            )
            == 1
        ),
        timeout=10,
        what="db_rejected quarantine record",
    )
    assert _count(pg_url, "SELECT count(*) FROM readings WHERE device_id = %s", device_id) == 1
