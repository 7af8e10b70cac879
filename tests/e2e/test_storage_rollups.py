"""Rollups on a real PostgreSQL: the collector's incremental maintenance equals a from-scratch
recomputation, across both DST changes of 2026, with exact counts."""

from __future__ import annotations

import random
from datetime import UTC, date, datetime, timedelta
from decimal import Decimal
from typing import Any

import numpy as np
import psycopg
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from luftnett.collector import annotations
from luftnett.collector.pgnumeric import group_sums
from luftnett.collector.rollups import DayConvention, day_bounds, refresh
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.db.migrate import apply_migrations
from luftnett.db.schema import ROLLUP_DAILY_COLUMNS, ROLLUP_HOURLY_COLUMNS, VALUE_COLUMNS

pytestmark = pytest.mark.e2e

ROOT = "t"
MINUTE = timedelta(minutes=1)


def reading(seq: int, ts: datetime, flags: list[str] | None = None, **values: float) -> Any:
    vals = values or {
        "pm25_ugm3": round(8 + 5 * ((seq * 7) % 13) / 13 + 0.01 * (seq % 5), 2),
        "pm10_ugm3": round(15 + 3 * ((seq * 5) % 11) / 11, 2),
        "rh_pct": 60.0 + (seq % 20),
    }
    return contract.Reading(
        seq=seq, ts=ts, window_s=60, n_samples=60, values=vals, flags=flags or []
    )


def message(device_id: str, readings: list[Any]) -> Accepted:
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A160"),
            readings=readings,
        )
    )
    item = validate_message(ROOT, contract.readings_topic(ROOT, device_id), payload)
    assert isinstance(item, Accepted), item
    return item


def minutes(start: datetime, end: datetime) -> list[datetime]:
    """Window ends of one-minute readings covering [start, end)."""
    out, t = [], start + MINUTE
    while t <= end:
        out.append(t)
        t += MINUTE
    return out


def snapshot(conn: psycopg.Connection[Any], device_id: str) -> tuple[list[Any], list[Any]]:
    h = ", ".join(ROLLUP_HOURLY_COLUMNS) + ", coverage_pct"
    d = ", ".join(ROLLUP_DAILY_COLUMNS) + ", coverage_pct, day_valid"
    hourly = conn.execute(
        f"SELECT {h} FROM rollup_hourly WHERE device_id = %s ORDER BY hour_start", (device_id,)
    ).fetchall()
    daily = conn.execute(
        f"SELECT {d} FROM rollup_daily WHERE device_id = %s ORDER BY day_convention, day",
        (device_id,),
    ).fetchall()
    return hourly, daily


def daily(conn: psycopg.Connection[Any], device_id: str, conv: str, day: date) -> dict[str, Any]:
    cur = conn.execute(
        "SELECT * FROM rollup_daily WHERE device_id = %s AND day_convention = %s AND day = %s",
        (device_id, conv, day),
    )
    row = cur.fetchone()
    assert row is not None, f"no {conv} rollup for {day}"
    names = [c.name for c in cur.description or []]
    return dict(zip(names, row, strict=True))


DST_DAYS = [
    pytest.param(date(2026, 3, 29), 23, id="spring-forward-23h"),
    pytest.param(date(2026, 10, 25), 25, id="fall-back-25h"),
]


@pytest.mark.parametrize(("day", "hours"), DST_DAYS)
def test_incremental_rollups_equal_recompute_across_dst(
    pg_url: str, device_id: str, day: date, hours: int
) -> None:
    oslo_start, oslo_end = day_bounds(day, DayConvention.DISPLAY)
    assert (oslo_end - oslo_start) == timedelta(hours=hours)
    # one-minute readings from 2 h before the Oslo day to 2 h after it
    ts_all = minutes(oslo_start - timedelta(hours=2), oslo_end + timedelta(hours=2))
    seqs = list(range(len(ts_all)))
    # seq 119 ends at local midnight: the day's first hour holds seqs 119-178, the second
    # 179-238, the fourth 299-358
    lost = set(range(140, 170))  # never arrived: 30 minutes of the day's first hour
    warm = set(range(200, 210))  # warming up (edge flag): stored, not valid
    out_of_range = {300}  # PM2.5 of 5000 µg/m³: stored, flagged, not valid
    batches: list[list[Any]] = []
    chunk: list[Any] = []
    rnd = random.Random(day.toordinal())
    for s, ts in zip(seqs, ts_all, strict=True):
        if s in lost:
            continue
        if s in warm:
            r = reading(s, ts, ["warming_up"], pm25_ugm3=0.0, pm10_ugm3=0.0)
        elif s in out_of_range:
            r = reading(s, ts, pm25_ugm3=5000.0, pm10_ugm3=20.0, rh_pct=70.0)
        else:
            r = reading(s, ts)
        chunk.append(r)
        if len(chunk) >= rnd.randint(1, 120):
            batches.append(chunk)
            chunk = []
    if chunk:
        batches.append(chunk)
    rnd.shuffle(batches)  # late and out-of-order arrival
    batches += [batches[0], batches[3][:5]]  # redeliveries

    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        stored = 0
        for i in range(0, len(batches), 7):  # several messages per transaction
            res = w.write([message(device_id, b) for b in batches[i : i + 7]])
            stored += res.stored
        n_sent = len(seqs) - len(lost)
        assert stored == n_sent
        incremental = snapshot(conn, device_id)
        result = refresh(conn, device_id)
        conn.commit()
        assert result.devices == 1
        scratch = snapshot(conn, device_id)
        assert incremental == scratch
        assert len(scratch[0]) == hours + 5  # 2 h either side; the last reading opens an hour

        d = daily(conn, device_id, "Europe/Oslo", day)
        in_day = [s for s, t in zip(seqs, ts_all, strict=True) if oslo_start <= t < oslo_end]
        assert (d["day_start"], d["day_end"]) == (oslo_start, oslo_end)
        assert d["hours_in_day"] == hours
        assert d["n_expected"] == hours * 60
        assert in_day[0] == 119
        assert len(in_day) == hours * 60
        assert d["n_stored"] == hours * 60 - 30
        assert d["n_valid"] == hours * 60 - 30 - len(warm) - len(out_of_range)
        assert d["hours_with_data"] == hours
        # hour 1 lost 30 min (50 % < 75 %), hour 2 has 10 warming up (83.3 %), hour 4 one
        # reading out of range (98.3 %)
        assert d["hours_valid"] == hours - 1
        assert d["day_valid"] is True
        assert d["pm25_ugm3_n"] == d["n_valid"]
        assert d["coverage_pct"] == round(Decimal(100 * d["n_valid"]) / Decimal(hours * 60), 1)

        # the compliance day (UTC+01:00) is always 24 h: 23:00 UTC to 23:00 UTC
        c = daily(conn, device_id, "utc+01", day)
        assert c["day_start"] == datetime(day.year, day.month, day.day, tzinfo=UTC) - timedelta(
            hours=1
        )
        assert c["hours_in_day"] == 24
        assert c["n_expected"] == 1440
        in_c = [t for t in ts_all if c["day_start"] <= t < c["day_end"]]
        lost_c = [s for s in lost if c["day_start"] <= ts_all[s] < c["day_end"]]
        # in March local midnight is 23:00 UTC, as UTC+01:00's: the gap is in both days; in
        # October (CEST) the local day starts an hour earlier and the gap is before 23:00 UTC
        assert c["n_stored"] == len(in_c) - len(lost_c) == 1440 - (30 if hours == 23 else 0)

        # the sums are those of the valid readings as sent (real -> numeric keeps 6 digits)
        rows = conn.execute(
            "SELECT pm25_ugm3, flags FROM readings WHERE device_id = %s AND ts >= %s AND ts < %s",
            (device_id, oslo_start, oslo_end),
        ).fetchall()
        valid = [Decimal(repr(float(r[0]))) for r in rows if r[1] & 631 == 0]
        assert len(valid) == d["n_valid"]
        assert d["pm25_ugm3_sum"] == sum(valid)
        assert d["pm25_ugm3_max"] == max(r[0] for r in rows if r[1] & 631 == 0)


def test_rollups_are_kept_by_each_batch_and_refresh_is_a_no_op(pg_url: str, device_id: str) -> None:
    t0 = datetime(2026, 6, 1, 10, 0, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        w.write([message(device_id, [reading(s, t0 + (s + 1) * MINUTE) for s in range(30)])])
        h = conn.execute(
            "SELECT n_stored, n_valid, n_expected, coverage_pct FROM rollup_hourly "
            "WHERE device_id = %s",
            (device_id,),
        ).fetchall()
        assert h == [(30, 30, 60, Decimal("50.0"))]
        w.write([message(device_id, [reading(s, t0 + (s + 1) * MINUTE) for s in range(30, 59)])])
        h = conn.execute(
            "SELECT hour_start, n_stored FROM rollup_hourly WHERE device_id = %s ORDER BY 1",
            (device_id,),
        ).fetchall()
        assert h == [(t0, 59)]
        before = snapshot(conn, device_id)
        refresh(conn, device_id, t0 - timedelta(days=1), t0 + timedelta(days=1))
        conn.commit()
        assert snapshot(conn, device_id) == before


def test_writer_without_rollups_leaves_them_to_refresh(pg_url: str, device_id: str) -> None:
    t0 = datetime(2026, 6, 2, 10, 0, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        Writer(conn, rollups=False).write(
            [message(device_id, [reading(s, t0 + (s + 1) * MINUTE) for s in range(90)])]
        )
        assert snapshot(conn, device_id) == ([], [])
        res = refresh(conn, device_id)
        conn.commit()
        hourly, days = snapshot(conn, device_id)
        assert res.hours == 2
        assert [r[4] for r in hourly] == [59, 31]
        assert len(days) == 2  # one day in each convention


def test_migrations_on_a_fresh_database(fresh_db_url: str) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        applied = apply_migrations(conn)
        assert [m.version for m in applied][:4] == [1, 2, 3, 4]
        assert apply_migrations(conn) == []
        for table, cols in (
            ("rollup_hourly", ROLLUP_HOURLY_COLUMNS),
            ("rollup_daily", ROLLUP_DAILY_COLUMNS),
            ("readings", ("qc_checks", "qc_version", *VALUE_COLUMNS)),
        ):
            have = {
                r[0]
                for r in conn.execute(
                    "SELECT column_name FROM information_schema.columns WHERE table_name = %s",
                    (table,),
                )
            }
            assert set(cols) <= have, set(cols) - have
        # without TimescaleDB, 0004 creates nothing
        n = conn.execute(
            "SELECT count(*) FROM pg_matviews WHERE matviewname LIKE 'readings_%%_ca'"
        ).fetchone()
        assert n == (0,)


@settings(
    max_examples=40, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture]
)
@given(
    st.lists(
        st.tuples(st.integers(0, 3), st.floats(width=32, allow_nan=False, allow_infinity=False)),
        min_size=1,
        max_size=60,
    )
)
def test_group_sums_equal_postgresql(pg_url: str, pairs: list[tuple[int, float]]) -> None:
    g = np.array([p[0] for p in pairs], dtype=np.int64)
    x = np.array([p[1] for p in pairs], dtype=np.float32)
    with psycopg.connect(pg_url) as conn:
        pg = dict(
            conn.execute(
                "SELECT g, sum(x::numeric) FROM unnest(%s::int[], %s::real[]) AS u(g, x) "
                "GROUP BY g",
                (g.tolist(), x.tolist()),
            ).fetchall()
        )
    got = group_sums(g, x, 4)
    for k in range(4):
        assert got[k] == pg.get(k)
        assert str(got[k]) == str(pg.get(k))  # the same display scale


def test_added_hours_equal_recompute_with_annotations_and_any_values(
    pg_url: str, device_id: str
) -> None:
    """Batches added hour by hour (late, repeated, values of any magnitude and scale,
    invalidating flags, staff annotations made before and after) equal a recomputation."""
    rnd = random.Random(5)
    t0 = datetime(2026, 9, 1, 0, 0, tzinfo=UTC)
    magnitudes = [0.0, 1e-7, 3.1, 12.345678, 999999.5, 1234567.0, 7.5e12, 2.5e-30, 88.8]

    def some(seq: int, temperature: bool = True) -> Any:
        vals = {
            "pm25_ugm3": rnd.choice(magnitudes) * rnd.choice([1, 1, -1]),
            "pm10_ugm3": round(rnd.uniform(0, 80), rnd.randint(0, 3)),
            "temperature_c": rnd.uniform(-30, 35),
        }
        if rnd.random() < 0.3 or not temperature:
            del vals["temperature_c"]
        flags = ["warming_up"] if rnd.random() < 0.1 else None
        return reading(seq, t0 + (seq + 1) * MINUTE, flags, **vals)

    seqs = [s for s in range(300) if not 10 <= s < 15]  # five hours; 10-14 come last
    batches = [seqs[i : i + rnd.randint(5, 70)] for i in range(0, 300, 40)]
    rnd.shuffle(batches)
    batches.append(batches[1][:3])  # a redelivery
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([message(device_id, [some(s) for s in batches[0]])])
        # an invalidating annotation over hour 2 before most readings arrive, one revoked,
        # one that does not invalidate
        a = annotations.add(conn, device_id, t0 + timedelta(minutes=70), t0 + timedelta(
            minutes=150), "roadworks", "digging", "test", invalidates=True)  # fmt: skip
        b = annotations.add(conn, device_id, t0, t0 + timedelta(hours=5), "fog", "fog", "test",
                            invalidates=True)  # fmt: skip
        annotations.revoke(conn, b.annotation_id, "test", "was not fog")
        annotations.add(conn, device_id, t0, t0 + timedelta(hours=5), "other", "note", "test")
        w = Writer(conn)
        for batch in batches[1:]:
            w.write([message(device_id, [some(s) for s in batch])])
        # late, into an hour with temperatures, none of its own
        w.write([message(device_id, [some(s, temperature=False) for s in range(10, 15)])])
        conn.commit()
        incremental = snapshot(conn, device_id)
        refresh(conn, device_id)
        conn.commit()
        assert snapshot(conn, device_id) == incremental
        hourly = {r[1]: r for r in incremental[0]}
        h1 = hourly[t0 + timedelta(hours=1)]
        n_stored, n_valid = h1[4], h1[5]
        assert n_stored > 0
        assert n_valid < n_stored  # the annotation took 50 of the hour's readings out
        annotations.revoke(conn, a.annotation_id, "test", "finished early")
        conn.commit()
        after = snapshot(conn, device_id)
        refresh(conn, device_id)
        conn.commit()
        assert snapshot(conn, device_id) == after
        assert {r[1]: r for r in after[0]}[t0 + timedelta(hours=1)][5] > n_valid


def test_rollup_show_judges_each_quantity_by_its_own_readings(pg_url: str) -> None:
    """A box with an SDS011 and an SHT31 (a reading of each per minute) over one UTC+01 day:
    the SDS011 sent every window in 17 hours and every other one in 7. `rollup show` gives
    PM2.5 17 valid hours (insufficient data: a day needs 18) and temperature 24; the box's
    readings (two a window) fill every hour past 75 % and made the old output call it valid."""
    import json as jsonlib
    import uuid

    from click.testing import CliRunner

    from luftnett.cli import main

    device = f"show-{uuid.uuid4().hex[:8]}"
    start, _ = day_bounds(date(2026, 7, 1), DayConvention.COMPLIANCE)
    with psycopg.connect(pg_url) as conn:
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')",
                     (device,))  # fmt: skip
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, temperature_c, flags, schema_version) "
            "SELECT %s, 2 * i + s, %s::timestamptz + i * interval '1 minute' + interval '30 s', "
            "60, 60, CASE s WHEN 0 THEN 'sds011' ELSE 'sht31' END, "
            "CASE s WHEN 0 THEN 10 END, CASE s WHEN 1 THEN 4 END, 0, 1 "
            "FROM generate_series(0, 1439) i, generate_series(0, 1) s "
            "WHERE s = 1 OR i / 60 < 17 OR i %% 2 = 0",
            (device, start),
        )
        conn.commit()
        refresh(conn, device)
    runner = CliRunner()
    env = {"LUFTNETT_DATABASE_URL": pg_url}
    res = runner.invoke(main, ["rollup", "show", "--device", device], env=env)
    assert res.exit_code == 0, res.output
    day = [line for line in res.output.splitlines() if line.startswith("2026-07-01")]
    assert day == [
        "2026-07-01 24h readings=2670 pm25_ugm3=10.0 (17 h valid: insufficient data) "
        "temperature_c=4.0 (24 h valid)"
    ]
    res = runner.invoke(main, ["rollup", "show", "--device", device, "--json"], env=env)
    assert res.exit_code == 0, res.output
    (doc,) = [jsonlib.loads(line) for line in res.output.splitlines()]
    assert doc["quantities"] == {
        "pm25_ugm3": {"mean": 10.0, "hours_valid": 17, "valid": False},
        "temperature_c": {"mean": 4.0, "hours_valid": 24, "valid": True},
    }
    assert doc["hours_valid"] == 24  # the box's readings: every hour
    res = runner.invoke(main, ["rollup", "show", "--device", "nope-none"], env=env)
    assert res.exit_code == 1 and "no device 'nope-none'" in res.output  # as `ledger` says
    res = runner.invoke(main, ["rollup", "show", "--device", device, "--since", "2026-07-02"],
                        env=env)  # fmt: skip
    assert res.exit_code == 0 and "no rollup days in this range" in res.output
