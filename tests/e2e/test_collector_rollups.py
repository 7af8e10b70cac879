"""The collector keeps hourly rollups current with each batch and the days a few seconds
behind, equal to a recompute."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import psycopg
import pytest

from luftnett.collector.rollups import refresh
from luftnett.collector.service import Collector, CollectorConfig
from luftnett.contracts import mqtt as contract
from luftnett.db.schema import ROLLUP_DAILY_COLUMNS, ROLLUP_HOURLY_COLUMNS

pytestmark = pytest.mark.e2e


def _hourly(url: str, device: str) -> list[tuple[object, ...]]:
    cols = ", ".join(ROLLUP_HOURLY_COLUMNS)
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT {cols} FROM rollup_hourly WHERE device_id = %s ORDER BY hour_start",
            (device,),
        ).fetchall()


def _daily(url: str, device: str) -> list[tuple[object, ...]]:
    cols = ", ".join(ROLLUP_DAILY_COLUMNS)
    with psycopg.connect(url) as conn:
        return conn.execute(
            f"SELECT {cols} FROM rollup_daily WHERE device_id = %s ORDER BY 1, 2, 3", (device,)
        ).fetchall()


def _dirty(url: str, device: str) -> int:
    with psycopg.connect(url) as conn:
        row = conn.execute(
            "SELECT count(*) FROM rollup_dirty WHERE device_id = %s", (device,)
        ).fetchone()
    assert row is not None
    return int(row[0])


def test_deferred_rollups_catch_up_and_equal_a_recompute(
    pg_url: str, mqtt_url: str, topic_root: str, device_id: str, wait_until, publish
) -> None:
    t0 = datetime(2026, 6, 3, 10, 0, tzinfo=UTC)
    col = Collector(
        CollectorConfig(
            database_url=pg_url,
            mqtt_url=mqtt_url,
            topic_root=topic_root,
            client_id=f"col-{uuid.uuid4().hex[:8]}",
            flush_interval_s=0.1,
            rollup_interval_s=0.3,
        )
    ).start()
    try:
        assert col.wait_ready(10)
        for start in range(0, 90, 10):  # 90 one-minute readings over two hours, 9 messages
            payload = contract.ReadingsPayload(
                device_id=device_id,
                agent_version="t",
                sensor=contract.SensorInfo(model="sds011"),
                readings=[
                    contract.Reading(
                        seq=s,
                        ts=t0 + timedelta(minutes=s + 1),
                        window_s=60,
                        n_samples=60,
                        values={"pm25_ugm3": 5.0 + s % 4},
                    )
                    for s in range(start, start + 10)
                ],
            )
            publish(contract.readings_topic(topic_root, device_id), contract.encode(payload))
        wait_until(
            lambda: (
                [r[ROLLUP_HOURLY_COLUMNS.index("n_stored")] for r in _hourly(pg_url, device_id)]
                == [59, 31]
            ),
            timeout=20,
            what="hourly rollups of 59 + 31 readings",
        )
        # the hours are added by each batch; the days over them follow with the refresh
        wait_until(
            lambda: _dirty(pg_url, device_id) == 0 and len(_daily(pg_url, device_id)) == 2,
            timeout=20,
            what="the day rollups (one per day convention) and no queued refresh",
        )
    finally:
        col.stop()
    assert col.counts["rollup_hours"] >= 2
    before = _hourly(pg_url, device_id), _daily(pg_url, device_id)
    days = before[1]
    assert [d[ROLLUP_DAILY_COLUMNS.index("n_stored")] for d in days] == [90, 90]
    with psycopg.connect(pg_url) as conn:
        refresh(conn, device_id)  # from scratch
        conn.commit()
    assert (_hourly(pg_url, device_id), _daily(pg_url, device_id)) == before
