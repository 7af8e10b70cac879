"""Downloads: CSV (wide, long, openair) and Parquet read back by pandas equal the database."""

from __future__ import annotations

import io
import uuid
from datetime import UTC, datetime

import httpx
import pandas as pd
import psycopg
import pytest
from numpy.testing import assert_allclose

from luftnett.contracts.units import ReadingFlag

START = datetime(2026, 5, 1, tzinfo=UTC)


@pytest.fixture(scope="module")
def dl_device(pg_url: str) -> str:
    device = f"dl-{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) "
            "VALUES (%s, 'Download site', 'background', 59.7, 10.2)",
            (f"s-{device}",),
        )
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        # deployed from day 2 on: day 1 rows have no site
        conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
            (f"s-{device}", device, datetime(2026, 5, 2, tzinfo=UTC)),
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, no2_ppb, flags, schema_version) "
            "SELECT %s, i, %s::timestamptz + i * interval '1 minute', 60, 59, 'sds011', "
            "(i %% 97) / 3.0, (i %% 89) / 2.0, CASE WHEN i %% 5 = 0 THEN NULL ELSE i %% 13 END, "
            "CASE WHEN i %% 50 = 0 THEN %s ELSE 0 END, 1 FROM generate_series(0, 4319) i",
            (device, START, int(ReadingFlag.SPIKE | ReadingFlag.STUCK)),
        )
    return device


def _db(pg_url: str, device: str) -> pd.DataFrame:
    with psycopg.connect(pg_url) as conn:
        rows = conn.execute(
            "SELECT seq, ts, pm25_ugm3, pm10_ugm3, no2_ppb, flags FROM readings "
            "WHERE device_id = %s ORDER BY ts",
            (device,),
        ).fetchall()
    return pd.DataFrame(rows, columns=["seq", "ts", "pm25_ugm3", "pm10_ugm3", "no2_ppb", "flags"])


def _params(device: str, **kw: str) -> dict[str, str]:
    return {"device": device, "start": "2026-04-30T00:00:00Z", "end": "2026-06-01T00:00:00Z", **kw}


def test_wide_csv_equals_database(api_url: str, pg_url: str, dl_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv", params=_params(dl_device), timeout=120
    )
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("text/csv")
    df = pd.read_csv(io.BytesIO(r.content))
    db = _db(pg_url, dl_device)
    assert len(df) == len(db) == 4320
    assert list(df["seq"]) == list(db["seq"])
    assert (pd.to_datetime(df["ts"]) == db["ts"].reset_index(drop=True)).all()
    for q in ("pm25_ugm3", "pm10_ugm3", "no2_ppb"):
        assert_allclose(df[q].to_numpy(float), db[q].to_numpy(float), rtol=1e-6, equal_nan=True)
    assert list(df["flags"]) == list(db["flags"])
    assert df["valid"].dtype == bool
    assert df.loc[df["flags"] != 0, "valid"].eq(False).all()
    assert df["site_id"].isna().sum() == 1440  # day 1: not deployed yet
    assert df["pm25_ugm3_cal"].isna().all() or "pm25_ugm3_cal" in df


def test_parquet_equals_database(api_url: str, pg_url: str, dl_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.parquet", params=_params(dl_device), timeout=120
    )
    assert r.status_code == 200, r.text
    df = pd.read_parquet(io.BytesIO(r.content))
    db = _db(pg_url, dl_device)
    assert len(df) == len(db)
    assert list(df["seq"]) == list(db["seq"])
    assert (df["ts"].reset_index(drop=True) == db["ts"].reset_index(drop=True)).all()
    for q in ("pm25_ugm3", "pm10_ugm3", "no2_ppb"):
        assert_allclose(df[q].to_numpy(float), db[q].to_numpy(float), rtol=1e-6, equal_nan=True)
    assert list(df["flags"]) == list(db["flags"])
    # dictionaries for the text columns only (measured values are nearly all distinct)
    import pyarrow.parquet as pq

    meta = pq.ParquetFile(io.BytesIO(r.content)).metadata
    encodings = {
        meta.row_group(0).column(i).path_in_schema: meta.row_group(0).column(i).encodings
        for i in range(meta.num_columns)
    }
    assert any("DICTIONARY" in e for e in encodings["device_id"])
    assert not any("DICTIONARY" in e for e in encodings["pm25_ugm3"])


def test_long_and_openair_shapes(api_url: str, pg_url: str, dl_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv",
        params=_params(dl_device, shape="long", valid_only="true"),
        timeout=120,
    )
    long = pd.read_csv(io.BytesIO(r.content))
    db = _db(pg_url, dl_device)
    valid = db[db["flags"] == 0]
    expected = sum(valid[q].notna().sum() for q in ("pm25_ugm3", "pm10_ugm3", "no2_ppb"))
    assert len(long) == expected
    assert set(long["quantity"]) == {"pm25_ugm3", "pm10_ugm3", "no2_ppb"}
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv",
        params=_params(dl_device, shape="openair"),
        timeout=120,
    )
    oa = pd.read_csv(io.BytesIO(r.content))
    assert list(oa.columns[:6]) == ["date", "site", "device_id", "pm1", "pm25", "pm10"]
    assert "no2" in oa.columns
    assert oa["date"].iloc[0] == "2026-05-01 00:00:00"
    meta = httpx.get(
        f"{api_url}/api/v1/downloads/metadata", params=_params(dl_device), timeout=120
    ).json()
    factor = meta["no2_ppb_to_ugm3"]
    assert_allclose(
        oa["no2"].to_numpy(float), db["no2_ppb"].to_numpy(float) * factor, rtol=1e-5, equal_nan=True
    )
    names = {c["name"] for c in meta["columns"]}
    assert {"pm25_ugm3", "pm25_ugm3_cal", "pm25_ugm3_u", "pm25_ugm3_calibration_id"} <= names
    assert "indicative" in meta["indicative_note"].lower()
    assert meta["licence"] and meta["citation"]


def test_empty_download_has_a_header(api_url: str, dl_device: str) -> None:
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv",
        params={
            "device": dl_device,
            "start": "2020-01-01T00:00:00Z",
            "end": "2020-01-02T00:00:00Z",
        },
        timeout=120,
    )
    df = pd.read_csv(io.BytesIO(r.content))
    assert len(df) == 0 and "pm25_ugm3" in df.columns


def test_aborted_downloads_leave_no_connection_behind(
    api_url: str, pg_url: str, dl_device: str
) -> None:
    """More clients walk away mid-stream than the pool has connections (10); the API closes
    each half-read COPY's connection, so the next download and the next query still work."""
    for _ in range(12):
        with httpx.stream(
            "GET",
            f"{api_url}/api/v1/downloads/readings.csv",
            params=_params(dl_device),
            timeout=60,
        ) as r:
            assert r.status_code == 200
            next(r.iter_raw(1024))
    r = httpx.get(f"{api_url}/api/v1/downloads/readings.csv", params=_params(dl_device), timeout=60)
    assert r.status_code == 200
    assert len(pd.read_csv(io.BytesIO(r.content))) == len(_db(pg_url, dl_device))
    assert httpx.get(f"{api_url}/api/v1/devices/{dl_device}", timeout=60).status_code == 200
    with psycopg.connect(pg_url) as conn:
        (copying,) = conn.execute(
            "SELECT count(*) FROM pg_stat_activity WHERE query LIKE 'COPY%%' AND state = 'active'"
        ).fetchone() or (0,)
    assert copying == 0
