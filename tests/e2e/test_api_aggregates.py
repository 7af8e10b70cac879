"""Aggregates through the real server: DST days under both day conventions, flags, coverage."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

import httpx
import psycopg
import pytest
from numpy.testing import assert_allclose

from luftnett.contracts.units import INVALIDATING_FLAGS, ReadingFlag

START = datetime(2026, 3, 27, tzinfo=UTC)
END = datetime(2026, 4, 1, tzinfo=UTC)
START2 = datetime(2026, 10, 23, tzinfo=UTC)
END2 = datetime(2026, 10, 28, tzinfo=UTC)


class _Http:
    """httpx with a long timeout: the test machine is shared and may be loaded."""

    @staticmethod
    def get(url: str, **kw: object) -> httpx.Response:
        return httpx.get(url, timeout=120, **kw)  # type: ignore[arg-type]

    @staticmethod
    def post(url: str, **kw: object) -> httpx.Response:
        return httpx.post(url, timeout=120, **kw)  # type: ignore[arg-type]


_http = _Http()


def _value(ts: datetime) -> float:
    """PM10 by UTC hour: distinct per hour, so day boundaries show in the means."""
    return float(ts.hour * 2 + (ts.day % 7))


def _insert(
    url: str, device: str, site: str, spans: list[tuple[datetime, datetime]]
) -> list[tuple]:
    rows = []
    seq = 0
    for a, b in spans:
        t = a + timedelta(minutes=1)
        while t <= b:
            flags = 0
            v = _value(t - timedelta(seconds=1))
            if t.minute == 30 and t.hour == 12:
                flags, v = int(ReadingFlag.WARMING_UP), 999.0  # invalid: must not count
            rows.append((device, seq, t, 60.0, 60, "sds011", None, v / 2, v, 20.0, flags, 1))
            seq += 1
            t += timedelta(minutes=1)
    with psycopg.connect(url) as conn:
        conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) "
            "VALUES (%s, %s, 'traffic', 59.9, 10.7)",
            (site, f"Site {site}"),
        )
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
            (site, device, datetime(2026, 1, 1, tzinfo=UTC)),
        )
        with conn.cursor().copy(
            "COPY readings (device_id, seq, ts, window_s, n_samples, sensor_model, sensor_serial, "
            "pm25_ugm3, pm10_ugm3, no2_ppb, flags, schema_version) FROM STDIN"
        ) as copy:
            for r in rows:
                copy.write_row(r)
    return rows


@pytest.fixture(scope="module")
def dst_device(pg_url: str) -> str:
    device = f"dst-{uuid.uuid4().hex[:8]}"
    # a gap: no data 2026-03-30 10:00-16:00 UTC -> that Oslo day has 17 valid hours (< 18)
    _insert(
        pg_url,
        device,
        f"s-{device}",
        [
            (START, datetime(2026, 3, 30, 10, tzinfo=UTC)),
            (datetime(2026, 3, 30, 16, tzinfo=UTC), END),
            (START2, END2),
        ],
    )
    return device


def _expected_daily(
    day: str, zone: str, rows_valid: dict[datetime, list[float]]
) -> tuple[int, float]:
    tz = ZoneInfo(zone)
    d = datetime.fromisoformat(day)
    a = d.replace(tzinfo=tz).astimezone(UTC)
    b = (d + timedelta(days=1)).replace(tzinfo=tz).astimezone(UTC)
    hours = [h for h in rows_valid if a <= h < b]
    means = [sum(rows_valid[h]) / len(rows_valid[h]) for h in hours]
    return round((b - a).total_seconds() / 3600), sum(means) / len(means)


def _hourly_truth(start: datetime, end: datetime) -> dict[datetime, list[float]]:
    out: dict[datetime, list[float]] = {}
    t = start + timedelta(minutes=1)
    while t <= end:
        if not (t.minute == 30 and t.hour == 12):
            h = t.replace(minute=0, second=0)
            out.setdefault(h, []).append(_value(t - timedelta(seconds=1)))
        t += timedelta(minutes=1)
    return out


@pytest.mark.parametrize(
    ("day", "convention", "zone", "hours"),
    [
        pytest.param("2026-03-29", "Europe/Oslo", "Europe/Oslo", 23, id="spring-oslo"),
        pytest.param("2026-03-29", "utc+01", "Etc/GMT-1", 24, id="spring-utc+01"),
        pytest.param("2026-10-25", "Europe/Oslo", "Europe/Oslo", 25, id="autumn-oslo"),
        pytest.param("2026-10-25", "utc+01", "Etc/GMT-1", 24, id="autumn-utc+01"),
    ],
)
def test_daily_means_on_dst_days(
    api_url: str, dst_device: str, day: str, convention: str, zone: str, hours: int
) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/daily",
        params={"quantity": "pm10_ugm3", "start": day, "end": day, "day_convention": convention},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    (row,) = body["rows"]
    assert row["period"] == day
    assert row["hours"] == hours
    assert row["coverage"] == {
        "basis": "hours",
        "expected": hours,
        "observed": hours,
        "pct_complete": 100.0,
    }
    assert row["hours_valid"] == hours
    # 60 readings an hour, one flagged reading a day left out
    assert row["readings_stored"] == hours * 60
    assert row["readings_valid"] == hours * 60 - 1
    assert row["valid"] is True
    truth = _hourly_truth(START, END) | _hourly_truth(START2, END2)
    n_hours, mean = _expected_daily(day, zone, truth)
    assert n_hours == hours
    assert_allclose(row["mean"], mean, atol=1e-3)
    assert row["max"] < 999  # the flagged value never counts


def test_daily_gap_makes_day_invalid(api_url: str, dst_device: str) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/daily",
        params={
            "quantity": "pm10_ugm3",
            "start": "2026-03-30",
            "end": "2026-03-30",
            "day_convention": "Europe/Oslo",
        },
    )
    (row,) = r.json()["rows"]
    # Oslo day 2026-03-30 = 2026-03-29 22:00 .. 2026-03-30 22:00 UTC; 10:00-16:00 UTC missing
    assert row["hours"] == 24
    assert row["hours_valid"] == 18
    assert row["valid"] is True
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/daily",
        params={
            "quantity": "pm10_ugm3",
            "start": "2026-03-30",
            "end": "2026-03-30",
            "day_convention": "utc+01",
        },
    )
    (row,) = r.json()["rows"]
    # utc+01 day 2026-03-30 = 2026-03-29 23:00 .. 2026-03-30 23:00 UTC: 6 hours missing
    assert row["hours_valid"] == 18


def test_hourly_series_coverage_and_statistics(api_url: str, dst_device: str) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/hourly",
        params={"quantity": ["pm10_ugm3", "pm25_ugm3"], "start": "2026-03-28", "end": "2026-03-28"},
    )
    assert r.status_code == 200, r.text
    body = r.json()
    rows = [x for x in body["rows"] if x["quantity"] == "pm10_ugm3"]
    assert len(rows) == 24
    noon = next(x for x in rows if x["start"] == "2026-03-28T12:00:00+00:00")
    assert noon["coverage"] == {
        "basis": "readings",
        "expected": 60,
        "observed": 59,
        "pct_complete": 98.3,
    }
    truth = _hourly_truth(START, END)
    means = [
        sum(v) / len(v) for h, v in sorted(truth.items()) if h.date().isoformat() == "2026-03-28"
    ]
    st = body["statistics"]["pm10_ugm3"]
    assert st["n"] == 24
    assert_allclose(st["mean"], sum(means) / 24, atol=1e-3)
    assert_allclose(st["min"], min(means), atol=1e-3)
    assert_allclose(st["max"], max(means), atol=1e-3)
    assert set(st["percentiles"]) >= {"p90_4", "p99_8", "p25", "p50", "p75"}
    assert st["q1"] <= st["median"] <= st["q3"]
    assert body["invalidating_flags"] == [
        f.name.lower() for f in ReadingFlag if f.name and f & INVALIDATING_FLAGS
    ]


def test_monthly_and_annual(api_url: str, dst_device: str) -> None:
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/monthly",
        params={"quantity": "pm10_ugm3", "start": "2026-03-01", "end": "2026-03-31"},
    )
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["period"] == "2026-03"
    assert row["hours"] == 31 * 24 - 1  # March in Europe/Oslo loses an hour
    assert row["valid"] is False  # a few days of data: far below 90 %
    r = _http.get(
        f"{api_url}/api/v1/devices/{dst_device}/aggregates/annual",
        params={
            "quantity": "pm10_ugm3",
            "start": "2026-01-01",
            "end": "2026-12-31",
            "day_convention": "utc+01",
        },
    )
    (row,) = r.json()["rows"]
    assert row["period"] == "2026" and row["hours"] == 8760


def test_site_and_area_aggregates(api_url: str, dst_device: str) -> None:
    site = f"s-{dst_device}"
    r = _http.get(
        f"{api_url}/api/v1/sites/{site}/aggregates/daily",
        params={"quantity": "pm10_ugm3", "start": "2026-03-29", "end": "2026-03-29"},
    )
    assert r.status_code == 200, r.text
    (row,) = r.json()["rows"]
    assert row["n_devices"] == 1 and row["hours"] == 23
    r = _http.get(
        f"{api_url}/api/v1/areas/aggregates/daily",
        params={"site": site, "quantity": "pm10_ugm3", "start": "2026-03-29", "end": "2026-03-29"},
    )
    assert r.status_code == 200, r.text
    assert r.json()["devices"] == [dst_device]


def test_rollups_give_the_same_days(api_url: str, pg_url: str, dst_device: str) -> None:
    """Once the collector's hourly rollups hold the device, they serve the same numbers."""
    from luftnett.collector.rollups import refresh

    params = {
        "quantity": "pm10_ugm3",
        "start": "2026-03-28",
        "end": "2026-03-31",
        "day_convention": "Europe/Oslo",
    }
    url = f"{api_url}/api/v1/devices/{dst_device}/aggregates/daily"
    before = _http.get(url, params=params).json()
    assert before["computed_from"] == "readings"
    hourly = f"{api_url}/api/v1/devices/{dst_device}/aggregates/hourly"
    h_params = {**params, "quantity": ["pm10_ugm3", "pm25_ugm3"]}
    h_before = _http.get(hourly, params=h_params).json()
    assert h_before["computed_from"] == "readings"
    with psycopg.connect(pg_url) as conn:
        refresh(conn, dst_device)
    after = _http.get(url, params=params).json()
    assert after["computed_from"] == "rollup_daily_means"  # one device's days: the daily rollup
    # hourly series of one device from the rollups take a shorter statement: same rows
    h_after = _http.get(hourly, params=h_params).json()
    assert h_after["computed_from"] == "rollup_hourly"
    assert len(h_before["rows"]) == len(h_after["rows"]) == 2 * 4 * 24
    assert any(not r["valid"] for r in h_before["rows"])  # gaps and short hours included
    for a, b in zip(h_before["rows"], h_after["rows"], strict=True):
        for k in ("mean", "min", "max"):
            if a[k] is None or b[k] is None:
                assert a[k] == b[k], (k, a, b)
            else:
                assert_allclose(a[k], b[k], atol=1e-3)
        rest = {k: v for k, v in a.items() if k not in ("mean", "min", "max")}
        assert rest == {k: v for k, v in b.items() if k not in ("mean", "min", "max")}
    for q in ("pm10_ugm3", "pm25_ugm3"):
        sa, sb = h_before["statistics"][q], h_after["statistics"][q]
        assert sa["n"] == sb["n"]
        assert_allclose(sa["percentiles"]["p99_8"], sb["percentiles"]["p99_8"], atol=1e-3)
    for a, b in zip(before["rows"], after["rows"], strict=True):
        assert a["hours"] == b["hours"] and a["hours_valid"] == b["hours_valid"]
        assert a["readings_valid"] == b["readings_valid"]
        assert_allclose(a["mean"], b["mean"], atol=1e-3)


def _series(
    url: str, device: str, quantities: list[str], convention: str, daily_rollup: bool, **kw: int
) -> tuple[str, list[dict[str, object]], dict[str, dict[str, object]]]:
    """One device's daily series in-process: (computed_from, rows, statistics)."""
    import asyncio
    import json
    from datetime import date

    from psycopg.rows import dict_row

    from luftnett.api.queries import Scope, aggregate, aggregate_json

    async def run() -> tuple[str, list[dict[str, object]], dict[str, dict[str, object]]]:
        async with await psycopg.AsyncConnection.connect(url, row_factory=dict_row) as conn:
            rows: list[dict[str, object]] = []
            stats: dict[str, dict[str, object]] = {}
            froms = set()
            for a, b in (
                (date(2026, 3, 26), date(2026, 4, 1)),
                (date(2026, 10, 22), date(2026, 10, 29)),
            ):
                args = (conn, Scope(devices=(device,)), quantities, "day", convention, a, b)
                # the JSON path writes times in ISO whatever the session's DateStyle
                await conn.execute("SET DateStyle = 'German'")
                js = await aggregate_json(*args, daily_rollup=daily_rollup, **kw)  # type: ignore[arg-type]
                agg = await aggregate(*args, daily_rollup=daily_rollup, **kw)  # type: ignore[arg-type]
                assert json.loads(js.rows_json) == agg.rows  # the JSON path writes the same rows
                assert js.stats == agg.stats and js.computed_from == agg.computed_from
                rows += agg.rows
                stats.update({f"{a}:{q}": v for q, v in agg.stats.items()})
                froms.add(agg.computed_from)
            assert len(froms) == 1
            return froms.pop(), rows, stats

    return asyncio.run(run())


def _assert_same(
    a: list[dict[str, object]],
    b: list[dict[str, object]],
    sa: dict[str, object],
    sb: dict[str, object],
) -> None:
    assert len(a) == len(b)
    for x, y in zip(a, b, strict=True):
        for k in ("mean", "min", "max"):
            if x[k] is None or y[k] is None:
                assert x[k] == y[k], (k, x, y)
            else:
                assert_allclose(x[k], y[k], atol=1.5e-3)  # type: ignore[arg-type]
        rest = {k: v for k, v in x.items() if k not in ("mean", "min", "max")}
        assert rest == {k: v for k, v in y.items() if k not in ("mean", "min", "max")}
    assert sa.keys() == sb.keys()
    for k in sa:
        p, q = sa[k], sb[k]
        assert p["n"] == q["n"], k  # type: ignore[index]
        for name, v in p["percentiles"].items():  # type: ignore[index]
            w = q["percentiles"][name]  # type: ignore[index]
            assert (v is None) == (w is None), (k, name)
            if v is not None:
                assert_allclose(v, w, atol=1.5e-3)


@pytest.mark.parametrize("convention", ["Europe/Oslo", "utc+01"])
def test_daily_means_rollup_equals_hourly_rollup(pg_url: str, convention: str) -> None:
    """One device's days from rollup_daily_means (0040) equal those the general statement
    computes from rollup_hourly, on both DST days, for a day with a gap (18 valid hours),
    partial days at the ends and a quantity never sent (temperature): the table is kept by
    triggers on rollup_daily, so the collector's refresh fills it."""
    from luftnett.collector.rollups import refresh

    device = f"dm-{uuid.uuid4().hex[:8]}"
    _insert(
        pg_url,
        device,
        f"s-{device}",
        [
            (START, datetime(2026, 3, 30, 10, tzinfo=UTC)),
            (datetime(2026, 3, 30, 16, tzinfo=UTC), END),
            (START2, END2),
        ],
    )
    with psycopg.connect(pg_url) as conn:
        refresh(conn, device)
    qs = ["pm10_ugm3", "pm25_ugm3", "temperature_c"]
    f1, rows1, st1 = _series(pg_url, device, qs, convention, True)
    f0, rows0, st0 = _series(pg_url, device, qs, convention, False)
    assert (f1, f0) == ("rollup_daily_means", "rollup_hourly")
    assert len(rows1) == 3 * (7 + 8)
    by_day = {(r["quantity"], r["period"]): r for r in rows1}
    hours = 23 if convention == "Europe/Oslo" else 24
    assert by_day[("pm10_ugm3", "2026-03-29")]["hours"] == hours
    assert by_day[("pm10_ugm3", "2026-10-25")]["hours"] == (25 if hours == 23 else 24)
    assert by_day[("pm10_ugm3", "2026-03-30")]["hours_valid"] == 18  # the gap: 6 h missing
    assert by_day[("temperature_c", "2026-03-29")]["mean"] is None
    _assert_same(rows1, rows0, st1, st0)
    # other rules: the day threshold is applied when reading; another hour rule falls back
    f1, rows1, st1 = _series(pg_url, device, qs, convention, True, day_min_valid_hours=23)
    f0, rows0, st0 = _series(pg_url, device, qs, convention, False, day_min_valid_hours=23)
    assert f1 == "rollup_daily_means"
    assert sum(bool(r["valid"]) for r in rows1) < sum(bool(r["valid"]) for r in by_day.values())
    _assert_same(rows1, rows0, st1, st0)
    f1, _, _ = _series(pg_url, device, qs, convention, True, hour_min_coverage_pct=90)
    assert f1 == "rollup_hourly"
    # readings change: the rollups' refresh rewrites rollup_daily, its triggers these rows
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "DELETE FROM readings WHERE device_id = %s AND ts > %s AND ts <= %s",
            (device, datetime(2026, 10, 25, 1, tzinfo=UTC), datetime(2026, 10, 25, 9, tzinfo=UTC)),
        )
        conn.execute(
            "UPDATE readings SET flags = %s WHERE device_id = %s AND ts > %s AND ts <= %s",
            (
                int(ReadingFlag.WARMING_UP),
                device,
                datetime(2026, 3, 28, 3, tzinfo=UTC),
                datetime(2026, 3, 28, 5, tzinfo=UTC),
            ),
        )
        conn.commit()
        refresh(conn, device)
    f1, rows1, st1 = _series(pg_url, device, qs, convention, True)
    f0, rows0, st0 = _series(pg_url, device, qs, convention, False)
    assert f1 == "rollup_daily_means"
    changed = {(r["quantity"], r["period"]): r for r in rows1}
    assert (
        changed[("pm10_ugm3", "2026-10-25")]["hours_valid"]
        == by_day[("pm10_ugm3", "2026-10-25")]["hours_valid"] - 8
    )
    assert (
        changed[("pm10_ugm3", "2026-03-28")]["hours_valid"]
        == by_day[("pm10_ugm3", "2026-03-28")]["hours_valid"] - 2
    )
    _assert_same(rows1, rows0, st1, st0)
    # all readings gone: the days go with rollup_daily (ON DELETE CASCADE)
    with psycopg.connect(pg_url) as conn:
        conn.execute("DELETE FROM readings WHERE device_id = %s", (device,))
        conn.commit()
        refresh(conn, device)
        (n,) = conn.execute(
            "SELECT count(*) FROM rollup_daily_means WHERE device_id = %s", (device,)
        ).fetchone() or (None,)
    assert n == 0
