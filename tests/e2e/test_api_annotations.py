"""Staff annotations show on every read path that serves raw readings, not only in rollups.

An active invalidating annotation sets ANNOTATED_INVALID (bit 10) in the ``flags`` that
/readings and the downloads return (``stored_flags`` keeps the stored bits), marks the
readings invalid, drops them from ``valid_only`` downloads and from aggregates computed from
raw readings; a revoked annotation or one that does not invalidate changes nothing.
"""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime, timedelta

import httpx
import pandas as pd
import psycopg
import pytest

from luftnett.contracts.units import ReadingFlag

START = datetime(2026, 3, 2, tzinfo=UTC)
ANN = int(ReadingFlag.ANNOTATED_INVALID)
# readings every 10 min over 1 day; annotated: 06:00-09:00 (invalidating), 12:00-13:00
# (revoked) and 15:00-16:00 (a note that does not invalidate)
INVALID_FROM, INVALID_TO = START + timedelta(hours=6), START + timedelta(hours=9)


@pytest.fixture(scope="module")
def annotated_device(pg_url: str) -> str:
    device = f"ann-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, flags, schema_version) "
            "SELECT %s, i, %s::timestamptz + i * interval '10 minutes', 600, 60, 'sds011', "
            "10 + i %% 7, 20 + i %% 5, CASE WHEN i = 100 THEN %s ELSE 0 END, 1 "
            "FROM generate_series(1, 144) i",
            (device, START, int(ReadingFlag.HIGH_HUMIDITY)),
        )
        for a, b, inval, revoked in (
            (INVALID_FROM, INVALID_TO, True, False),
            (START + timedelta(hours=12), START + timedelta(hours=13), True, True),
            (START + timedelta(hours=15), START + timedelta(hours=16), False, False),
        ):
            conn.execute(
                "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, "
                "reason, created_by, revoked_at, revoked_by) "
                "VALUES (%s, %s, %s, 'roadworks', %s, 'test', 'tester', %s, %s)",
                (device, a, b, inval, START if revoked else None, "tester" if revoked else None),
            )
    return device


def _inside(ts: pd.Series) -> pd.Series:
    return (ts >= INVALID_FROM) & (ts < INVALID_TO)


def test_readings_endpoint_decodes_annotation_flag(api_url: str, annotated_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/devices/{annotated_device}/readings",
        params={
            "start": START.isoformat(),
            "end": (START + timedelta(days=1, hours=1)).isoformat(),
        },
        timeout=120,
    )
    assert r.status_code == 200, r.text
    rows = r.json()["readings"]
    assert len(rows) == 144
    inside = [x for x in rows if INVALID_FROM <= datetime.fromisoformat(x["ts"]) < INVALID_TO]
    assert len(inside) == 18  # 06:00 .. 08:50
    for x in inside:
        assert x["flags"] & ANN and "annotated_invalid" in x["flag_names"]
        assert x["valid"] is False and x["stored_flags"] & ANN == 0
    outside = [x for x in rows if x not in inside]
    assert all(not x["flags"] & ANN for x in outside)  # revoked and non-invalidating: nothing
    humid = next(x for x in rows if x["seq"] == 100)
    assert humid["flag_names"] == ["high_humidity"] and humid["valid"] is True


def test_downloads_carry_annotation_flag(api_url: str, annotated_device: str) -> None:
    params = {
        "device": annotated_device,
        "start": START.isoformat(),
        "end": (START + timedelta(days=1, hours=1)).isoformat(),
    }
    r = httpx.get(f"{api_url}/api/v1/downloads/readings.csv", params=params, timeout=120)
    assert r.status_code == 200, r.text
    df = pd.read_csv(io.BytesIO(r.content))
    ts = pd.to_datetime(df["ts"])
    assert len(df) == 144
    assert (df.loc[_inside(ts), "flags"] & ANN).all()
    assert (df.loc[~_inside(ts), "flags"] & ANN).eq(0).all()
    assert df.loc[_inside(ts), "valid"].eq(False).all()
    assert df.loc[~_inside(ts), "valid"].eq(True).all()
    pq = httpx.get(f"{api_url}/api/v1/downloads/readings.parquet", params=params, timeout=120)
    assert pq.status_code == 200, pq.text
    p = pd.read_parquet(io.BytesIO(pq.content))
    assert list(p["flags"]) == list(df["flags"]) and list(p["valid"]) == list(df["valid"])
    only = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv",
        params={**params, "valid_only": "true"},
        timeout=120,
    )
    kept = pd.read_csv(io.BytesIO(only.content))
    assert len(kept) == 144 - 18
    assert not _inside(pd.to_datetime(kept["ts"])).any()


def test_raw_aggregates_leave_annotated_readings_out(api_url: str, annotated_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/devices/{annotated_device}/aggregates/hourly",
        params={"quantity": "pm25_ugm3", "start": "2026-03-02", "end": "2026-03-02"},
        timeout=120,
    )
    assert r.status_code == 200, r.text
    body = r.json()
    assert body["computed_from"] == "readings"
    by_hour = {x["period"][11:13]: x for x in body["rows"]}
    for h in ("06", "07", "08"):
        assert by_hour[h]["readings_valid"] == 0 and by_hour[h]["mean"] is None
    assert by_hour["12"]["readings_valid"] == 6 and by_hour["15"]["readings_valid"] == 6


def test_download_metadata_says_why_readings_were_invalidated(
    api_url: str, annotated_device: str
) -> None:
    params = {
        "device": annotated_device,
        "start": START.isoformat(),
        "end": (START + timedelta(days=1, hours=1)).isoformat(),
    }
    meta = httpx.get(f"{api_url}/api/v1/downloads/metadata", params=params, timeout=60).json()
    notes = meta["annotations"]
    assert [(n["starts_at"], n["invalidates"], n["active"]) for n in notes] == [
        (INVALID_FROM.isoformat(), True, True),
        ((START + timedelta(hours=12)).isoformat(), True, False),
        ((START + timedelta(hours=15)).isoformat(), False, True),
    ]
    assert all(n["kind"] == "roadworks" and n["reason"] == "test" for n in notes)
    assert not any("created_by" in n or "revoked_by" in n for n in notes)  # personal data
    later = {**params, "start": (START + timedelta(hours=9)).isoformat()}  # ends at 09:00
    meta = httpx.get(f"{api_url}/api/v1/downloads/metadata", params=later, timeout=60).json()
    assert len(meta["annotations"]) == 2


def test_a_period_stored_out_of_range_does_not_break_the_list(api_url: str, pg_url: str) -> None:
    """A period written by psql (or before periods were checked) that ends in year 9999: its
    local time would pass Python's range. The list still answers; that time is in UTC alone."""
    device = f"far-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        conn.execute(
            "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, reason, "
            "created_by) VALUES (%s, '2026-01-01Z', '9999-12-31 23:00Z', 'fog', false, 'x', 't')",
            (device,),
        )
    r = httpx.get(f"{api_url}/api/v1/annotations", params={"device": device}, timeout=60)
    assert r.status_code == 200, r.text
    (a,) = r.json()["annotations"]
    assert a["ends_at"].startswith("9999-12-31T23:00:00") and a["ends_at_local"] is None
    assert a["starts_at_local"] == "2026-01-01T01:00:00+01:00"
