"""The TimescaleDB statements, run on plain PostgreSQL as far as they can be.

TimescaleDB is not installed here. The continuous aggregates' SELECTs are executed as plain
materialized views with a stand-in for ``time_bucket`` (same buckets: hours from 2000-01-03
UTC, days at local midnight of the given zone), and must give the rollup tables' rows.
"""

from __future__ import annotations

from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest

from luftnett.collector.rollups import DayConvention
from luftnett.collector.timescale import CA_NAMES, daily_ca_select, hourly_ca_select
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.db.migrate import apply_migrations
from luftnett.db.schema import ROLLUP_DAILY_COLUMNS, ROLLUP_HOURLY_COLUMNS

pytestmark = pytest.mark.e2e

MINUTE = timedelta(minutes=1)


def reading(seq: int, ts: datetime, flags: list[str]) -> contract.Reading:
    values = {"pm25_ugm3": 8 + (seq * 7) % 13 * 0.5, "no2_ppb": 12.0 + seq % 9}
    return contract.Reading(seq=seq, ts=ts, window_s=60, n_samples=60, values=values, flags=flags)


def message(device_id: str, readings: list[Any]) -> Accepted:
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011"),
            readings=readings,
        )
    )
    item = validate_message("t", contract.readings_topic("t", device_id), payload)
    assert isinstance(item, Accepted), item
    return item


SHIM = """
CREATE FUNCTION time_bucket(w interval, ts timestamptz) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$ SELECT date_bin(w, ts, '2000-01-03 00:00+00') $$;
CREATE FUNCTION time_bucket(w interval, ts timestamptz, tz text) RETURNS timestamptz
    LANGUAGE sql IMMUTABLE AS $$ SELECT date_trunc('day', ts AT TIME ZONE tz) AT TIME ZONE tz $$;
"""


def test_continuous_aggregate_queries_equal_the_rollup_tables(fresh_db_url: str) -> None:
    dev = "ts-shim-001"
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        conn.autocommit = False
        w = Writer(conn)
        for day, start_h in (((2026, 3, 28), 20), ((2026, 10, 24), 19)):
            t0 = datetime(*day, start_h, 0, tzinfo=UTC)
            seq0 = 0 if day[1] == 3 else 10_000
            rs = []
            for i in range(0, 30 * 60):  # 30 hours of one-minute readings over the DST change
                if 400 <= i < 440:
                    continue  # a gap
                flags = ["warming_up"] if 600 <= i < 605 else []
                rs.append(reading(seq0 + i, t0 + (i + 1) * MINUTE, flags))
            for k in range(0, len(rs), 500):
                w.write([message(dev, rs[k : k + 500])])
        conn.execute(SHIM)
        conn.execute(f"CREATE MATERIALIZED VIEW {CA_NAMES['hourly']} AS {hourly_ca_select()}")
        hcols = ", ".join(ROLLUP_HOURLY_COLUMNS)
        q = "SELECT {c} FROM {t} WHERE device_id = %s ORDER BY hour_start"
        ca = conn.execute(q.format(c=hcols, t=CA_NAMES["hourly"]), (dev,)).fetchall()
        tables = conn.execute(q.format(c=hcols, t="rollup_hourly"), (dev,)).fetchall()
        assert len(tables) == 2 * 31  # the reading at +30 h opens a 31st hour
        assert ca == tables

        dcols = ", ".join(c for c in ROLLUP_DAILY_COLUMNS if c != "day_end")
        for conv in DayConvention:
            sel = daily_ca_select(conv)
            ca_d = conn.execute(
                f"SELECT {dcols} FROM ({sel}) d WHERE device_id = %s ORDER BY day",
                (dev,),
            ).fetchall()
            tab_d = conn.execute(
                f"SELECT {dcols} FROM rollup_daily "
                "WHERE device_id = %s AND day_convention = %s ORDER BY day",
                (dev, conv.value),
            ).fetchall()
            assert ca_d == tab_d, conv
            hours = sorted(r[dcols.split(", ").index("hours_in_day")] for r in tab_d)
            assert (23 in hours or 25 in hours) is (conv is DayConvention.DISPLAY)
        conn.rollback()


def test_compression_and_policies_need_the_extension(fresh_db_url: str) -> None:
    """Without TimescaleDB the DO block returns before its first TimescaleDB statement."""
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        notices: list[str] = []
        conn.add_notice_handler(lambda d: notices.append(d.message_primary or ""))
        from luftnett.db.migrate import available_migrations

        mig = next(m for m in available_migrations() if m.version == 4)
        with conn.transaction():
            conn.execute(mig.sql.encode())
        assert any("timescaledb not installed" in n for n in notices)
        assert conn.execute("SELECT count(*) FROM pg_matviews").fetchone() == (0,)
