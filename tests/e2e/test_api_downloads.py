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
    kv = {k.decode(): v.decode() for k, v in (meta.metadata or {}).items()}
    assert {"licence", "citation", "indicative", "source"} <= set(kv), sorted(kv)
    assert api_url in kv["citation"]
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


def test_calibrated_export_equals_calibrated_current(api_url: str, pg_url: str) -> None:
    """A device whose PM2.5 version changes mid-download (fleet default, then its own), PM10
    gets its own version on day 3 and NO2 none: every calibrated value, uncertainty and id
    is the one ``calibrated_current`` has for the reading."""
    device = f"dlcal-{uuid.uuid4().hex[:8]}"
    model = f"model-{device}"  # a sensor model of its own: no other test's fleet defaults
    t_d1 = datetime(2026, 5, 2, 12, 30, tzinfo=UTC)
    t_d2 = datetime(2026, 5, 3, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)", (device, model)
        )
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, no2_ppb, flags, schema_version) "
            "SELECT %s, i, %s::timestamptz + i * interval '1 minute', 60, 59, %s, "
            "(i %% 97) / 3.0, (i %% 89) / 2.0, i %% 13, 0, 1 FROM generate_series(0, 4319) i",
            (device, START, model),
        )
        versions = {}
        for name, owner, pollutant, frm, factor in (
            ("fleet", None, "pm25", datetime(1970, 1, 1, tzinfo=UTC), 2),
            ("own25", device, "pm25", t_d1, 3),
            ("own10", device, "pm10", t_d2, 4),
        ):
            (vid,) = conn.execute(
                "INSERT INTO calibration_versions (device_id, sensor_model, pollutant, kind, "
                "model_id, model, created_by) VALUES (%s, %s, %s, 'imported', %s, %s::json, "
                "'test') RETURNING version_id",
                (
                    owner,
                    None if owner else model,
                    pollutant,
                    f"{name}-{device}",
                    f'{{"family": "linear", "coef": [1, {factor}]}}',
                ),
            ).fetchone() or (0,)
            conn.execute(
                "INSERT INTO calibration_activations (device_id, sensor_model, pollutant, "
                "version_id, valid_from, created_by) VALUES (%s, %s, %s, %s, %s, 'test')",
                (owner, None if owner else model, pollutant, vid, frm),
            )
            col = {"pm25": "pm25_ugm3", "pm10": "pm10_ugm3"}[pollutant]
            # every version's values of every reading are kept, as reprocessing leaves them
            conn.execute(
                f"INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, "
                f"value, u) SELECT device_id, seq, %s, %s, ts, {col} * %s + 1, {col} / 10 + %s "
                "FROM readings WHERE device_id = %s",
                (pollutant, vid, factor, factor, device),
            )
            versions[name] = vid
        want = conn.execute(
            "SELECT r.seq, c25.value, c25.u, c25.version_id, c10.value, c10.u, c10.version_id "
            "FROM readings r LEFT JOIN calibrated_current c25 ON c25.device_id = r.device_id "
            "AND c25.seq = r.seq AND c25.pollutant = 'pm25' LEFT JOIN calibrated_current c10 "
            "ON c10.device_id = r.device_id AND c10.seq = r.seq AND c10.pollutant = 'pm10' "
            "WHERE r.device_id = %s ORDER BY r.ts",
            (device,),
        ).fetchall()
    db = pd.DataFrame(
        want, columns=["seq", "v25", "u25", "id25", "v10", "u10", "id10"], dtype=float
    )
    r = httpx.get(f"{api_url}/api/v1/downloads/readings.csv", params=_params(device), timeout=120)
    assert r.status_code == 200, r.text
    df = pd.read_csv(io.BytesIO(r.content))
    assert len(df) == len(db) == 4320
    assert list(df["seq"]) == list(db["seq"].astype(int))
    for got, exp in (
        ("pm25_ugm3_cal", "v25"),
        ("pm25_ugm3_u", "u25"),
        ("pm25_ugm3_calibration_id", "id25"),
        ("pm10_ugm3_cal", "v10"),
        ("pm10_ugm3_u", "u10"),
        ("pm10_ugm3_calibration_id", "id10"),
    ):
        assert_allclose(df[got].to_numpy(float), db[exp].to_numpy(), rtol=1e-6, equal_nan=True)
    # the version did change inside the download, and NO2 has none
    before = pd.to_datetime(df["ts"]) < pd.Timestamp(t_d1)
    assert (df.loc[before, "pm25_ugm3_calibration_id"] == versions["fleet"]).all()
    assert (df.loc[~before, "pm25_ugm3_calibration_id"] == versions["own25"]).all()
    assert df.loc[pd.to_datetime(df["ts"]) < pd.Timestamp(t_d2), "pm10_ugm3_cal"].isna().all()
    assert df.loc[pd.to_datetime(df["ts"]) >= pd.Timestamp(t_d2), "pm10_ugm3_cal"].notna().all()
    assert df["no2_ppb_cal"].isna().all()
    # the metadata says what each version is: its model (coefficients), not only its id
    meta = httpx.get(
        f"{api_url}/api/v1/downloads/metadata", params=_params(device), timeout=120
    ).json()
    by_id = {v["version_id"]: v for v in meta["calibration_versions"]}
    assert set(by_id) == set(versions.values())
    assert by_id[versions["own10"]]["model"] == {"family": "linear", "coef": [1, 4]}
    assert by_id[versions["fleet"]]["device_id"] is None and by_id[versions["fleet"]]["kind"]


def test_values_come_out_as_stored_in_every_shape(api_url: str, dl_device: str) -> None:
    """A value is stored as ``real``: every shape gives its shortest decimal (0.33333334 as
    PostgreSQL writes it), not the double it widens to (0.3333333432674408): in CSV text, and
    in Parquet as the double nearest that decimal."""

    def csv(**kw: str) -> pd.DataFrame:
        r = httpx.get(
            f"{api_url}/api/v1/downloads/readings.csv", params=_params(dl_device, **kw), timeout=120
        )
        assert r.status_code == 200, r.text
        return pd.read_csv(io.BytesIO(r.content), dtype=str, keep_default_na=False)

    wide, oa = csv(), csv(shape="openair")
    assert len(wide) == len(oa) == 4320
    assert wide["pm25_ugm3"].iloc[1] == "0.33333334"  # (1 % 97) / 3 as a real
    assert list(oa["pm25"]) == list(wide["pm25_ugm3"])
    assert list(oa["pm10"]) == list(wide["pm10_ugm3"])
    assert max(len(x) for x in oa["pm25"]) <= 10  # no widened digits anywhere
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.parquet", params=_params(dl_device), timeout=120
    )
    pq_df = pd.read_parquet(io.BytesIO(r.content))
    want = [float(x) if x else float("nan") for x in wide["pm25_ugm3"]]
    assert_allclose(pq_df["pm25_ugm3"].to_numpy(float), want, rtol=0, atol=0, equal_nan=True)
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.parquet",
        params=_params(dl_device, shape="openair"),
        timeout=120,
    )
    pq_oa = pd.read_parquet(io.BytesIO(r.content))
    assert_allclose(pq_oa["pm25"].to_numpy(float), want, rtol=0, atol=0, equal_nan=True)


def test_local_time_column_and_the_catalogue_schema(api_url: str, dl_device: str) -> None:
    """``ts_local`` (Europe/Oslo wall clock, no offset) beside ``ts`` in CSV and Parquet, and
    the wide download's columns are those the catalogue's ``raw`` record describes."""
    from luftnett.publish.schema import fields

    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv", params=_params(dl_device), timeout=120
    )
    df = pd.read_csv(io.BytesIO(r.content))
    assert list(df.columns) == [f.name for f in fields("raw", "Europe/Oslo")]
    want = pd.to_datetime(df["ts"]).dt.tz_convert("Europe/Oslo").dt.tz_localize(None)
    assert (pd.to_datetime(df["ts_local"]) == want).all()
    assert df["ts_local"].iloc[0] == "2026-05-01 02:00:00"  # CEST: UTC+2
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.parquet", params=_params(dl_device), timeout=120
    )
    pq_df = pd.read_parquet(io.BytesIO(r.content))
    assert pq_df["ts_local"].dt.tz is None
    assert (pq_df["ts_local"].to_numpy() == want.to_numpy()).all()
    r = httpx.get(
        f"{api_url}/api/v1/downloads/readings.csv",
        params=_params(dl_device, shape="long"),
        timeout=120,
    )
    assert "ts_local" in pd.read_csv(io.BytesIO(r.content), nrows=1).columns


def test_openair_has_one_row_per_site_and_time(api_url: str, pg_url: str) -> None:
    """A box with a PM sensor and an NO2 module stores two readings per window end; openair
    wants one row per site and date: they are merged (values, flags OR-ed, valid when both
    are). valid_only leaves the invalid reading out before the merge, not the whole row."""
    device = f"oa-{uuid.uuid4().hex[:8]}"
    stuck = int(ReadingFlag.STUCK)
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device,)
        )
        conn.execute(  # even seqs: the SDS011; odd: the NO2 module, same ts; NO2 of ts 3 stuck
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, pm10_ugm3, no2_ppb, flags, schema_version) "
            "SELECT %s, 2 * i + k, %s::timestamptz + i * interval '1 minute', 60, 60, "
            "CASE k WHEN 0 THEN 'sds011' ELSE 'dgs-no2' END, "
            "CASE k WHEN 0 THEN 10 + i / 10.0 END, CASE k WHEN 0 THEN 20 + i END, "
            "CASE k WHEN 1 THEN 5 + i END, CASE WHEN k = 1 AND i = 3 THEN %s ELSE 0 END, 1 "
            "FROM generate_series(0, 5) i, generate_series(0, 1) k",
            (device, START, stuck),
        )

    def get(fmt: str, **kw: str) -> pd.DataFrame:
        r = httpx.get(
            f"{api_url}/api/v1/downloads/readings.{fmt}",
            params=_params(device, shape="openair", **kw),
            timeout=120,
        )
        assert r.status_code == 200, r.text
        reader = pd.read_csv if fmt == "csv" else pd.read_parquet
        return reader(io.BytesIO(r.content))  # type: ignore[operator]

    oa = get("csv")
    assert len(oa) == 6 and oa["date"].is_unique
    assert list(oa["pm25"]) == [10.0, 10.1, 10.2, 10.3, 10.4, 10.5]
    assert list(oa["pm10"]) == [20.0, 21.0, 22.0, 23.0, 24.0, 25.0]
    factor = httpx.get(
        f"{api_url}/api/v1/downloads/metadata", params=_params(device), timeout=60
    ).json()["no2_ppb_to_ugm3"]
    assert_allclose(oa["no2"], [(5 + i) * factor for i in range(6)], rtol=1e-9)
    assert list(oa["flags"]) == [0, 0, 0, stuck, 0, 0]
    assert list(oa["valid"]) == [True, True, True, False, True, True]
    only = get("csv", valid_only="true")
    assert len(only) == 6 and only["no2"].isna().tolist() == [False] * 3 + [True] + [False] * 2
    assert only["pm25"].iloc[3] == 10.3 and only["valid"].all()
    pq_oa = get("parquet")
    assert len(pq_oa) == 6 and pq_oa["date"].is_unique
    assert list(pq_oa["valid"]) == list(oa["valid"])
    assert_allclose(pq_oa["pm25"], oa["pm25"], rtol=0)


def test_a_site_download_is_what_was_measured_there(api_url: str, dl_device: str) -> None:
    """dl_device stands at its site from day 2 on: a download by site gives days 2 and 3
    (as the site's aggregates count them), one by device all three days."""
    site = f"s-{dl_device}"

    def rows(**kw: str) -> pd.DataFrame:
        r = httpx.get(
            f"{api_url}/api/v1/downloads/readings.csv",
            params={"start": "2026-04-30T00:00:00Z", "end": "2026-06-01T00:00:00Z", **kw},
            timeout=120,
        )
        assert r.status_code == 200, r.text
        return pd.read_csv(io.BytesIO(r.content))

    at_site = rows(site=site)
    assert len(at_site) == 2880 and (at_site["site_id"] == site).all()
    assert pd.to_datetime(at_site["ts"]).min() == pd.Timestamp("2026-05-02", tz="UTC")
    assert len(rows(site=site, device=dl_device)) == 4320  # the device named: all of it
