"""`luftnett publish`: the archive read back by DuckDB equals the database, publishing is
idempotent and append-only, a late reading or a recalibration rewrites only what it touches
and keeps the previous version readable, and bad input gives clear errors."""

from __future__ import annotations

import hashlib
import io
import json
import re
import uuid
import warnings
from collections.abc import Iterator
from datetime import UTC, date, datetime, timedelta
from pathlib import Path
from zoneinfo import ZoneInfo

import duckdb
import httpx
import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose, assert_array_equal
from rdflib import RDF, Graph, Namespace, URIRef

from luftnett.api.quality import FLAG_BITS
from luftnett.cli import main
from luftnett.collector.rollups import refresh
from luftnett.contracts.units import ReadingFlag
from luftnett.db.migrate import apply_migrations
from luftnett.errors import ConfigError, PublishError, StorageError
from luftnett.publish.archive import publish, read_manifest
from luftnett.publish.manifest import Manifest
from luftnett.publish.schema import arrow_schema, fields
from luftnett.settings import PublishSettings

#: 2026-03-30 .. 2026-04-01: two days in March, one in April (two month partitions)
DAY0 = date(2026, 3, 30)
DAY_LAST = date(2026, 4, 1)
T0 = datetime(2026, 3, 30, tzinfo=UTC)
N = 3 * 1440
TODAY = date(2026, 4, 10)
SETTINGS = PublishSettings(workers=2)


@pytest.fixture(scope="module")
def db(pg_admin_url: str) -> Iterator[str]:
    """A database of this module's own (publish reads every device), migrated and filled:
    two devices, one-minute readings over three days, a deployment that starts on day 2, an
    invalidating annotation, flags, and a calibration of one device's PM2.5."""
    name = f"t_pub_{uuid.uuid4().hex[:10]}"
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'CREATE DATABASE "{name}"')
    url = pg_admin_url.rsplit("/", 1)[0] + f"/{name}"
    with psycopg.connect(url) as conn:
        apply_migrations(conn)
        conn.execute(
            "INSERT INTO sites (site_id, name, site_type, lat, lon) VALUES "
            "('s-a', 'A', 'traffic', 59.91, 10.75), ('s-b', 'B', 'background', 59.95, 10.80)"
        )
        for d in ("pub-a", "pub-b"):
            conn.execute(
                "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (d,)
            )
        conn.execute(
            "INSERT INTO deployments (site_id, device_id, valid_from) VALUES "
            "('s-a', 'pub-a', %s), ('s-b', 'pub-b', %s)",
            (T0 + timedelta(days=1), T0 - timedelta(days=10)),
        )
        for k, d in enumerate(("pub-a", "pub-b")):
            conn.execute(
                "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
                "pm25_ugm3, pm10_ugm3, no2_ppb, rh_pct, flags, schema_version) "
                "SELECT %s, i, %s::timestamptz + i * interval '1 minute' + interval '30 s', "
                "60, 59, 'sds011', (i %% 97) / 3.0 + %s, (i %% 89) / 2.0, "
                "CASE WHEN i %% 5 = 0 THEN NULL ELSE i %% 13 END, 50, "
                "CASE WHEN i %% 50 = 0 THEN %s ELSE 0 END, 1 FROM generate_series(0, %s) i",
                (d, T0, k, int(ReadingFlag.STUCK), N - 1),
            )
        conn.execute(
            "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, reason, "
            "created_by) VALUES ('pub-b', %s, %s, 'maintenance', true, 'test', 'test')",
            (T0 + timedelta(hours=5), T0 + timedelta(hours=7)),
        )
        _calibrate(conn, "pub-a", factor=2.0, model_id="cal-v1")
        refresh(conn)
        conn.commit()
    yield url
    with psycopg.connect(pg_admin_url, autocommit=True) as conn:
        conn.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')


def _calibrate(conn: psycopg.Connection, device: str, factor: float, model_id: str) -> int:
    """A new calibration version of the device's PM2.5 (value = factor × raw + 1), activated
    from the start, with its calibrated values, as `luftnett calibrate apply` leaves them."""
    (vid,) = conn.execute(
        "INSERT INTO calibration_versions (device_id, pollutant, kind, model_id, model, "
        "created_by) VALUES (%s, 'pm25', 'imported', %s, '{}'::json, 'test') "
        "RETURNING version_id",
        (device, model_id),
    ).fetchone()
    conn.execute(
        "INSERT INTO calibration_activations (device_id, pollutant, version_id, valid_from, "
        "created_by) VALUES (%s, 'pm25', %s, %s, 'test')",
        (device, vid, T0 - timedelta(days=30)),
    )
    conn.execute(
        "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
        "SELECT device_id, seq, 'pm25', %s, ts, pm25_ugm3 * %s + 1, 0.5 FROM readings "
        "WHERE device_id = %s AND pm25_ugm3 IS NOT NULL",
        (vid, factor, device),
    )
    return int(vid)


def _publish(url: str, target: str | Path, **kw: object) -> object:
    return publish(url, str(target), SETTINGS, start=DAY0, end=DAY_LAST, today=TODAY, **kw)


def _snapshot(root: Path) -> dict[str, str]:
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    }


def _read(root: Path, files: list[str], sql: str = "SELECT * FROM t") -> duckdb.DuckDBPyConnection:
    con = duckdb.connect()
    paths = [str(root / f) for f in files if f.endswith(".parquet")]
    listed = ", ".join("'" + p.replace("'", "''") + "'" for p in paths)
    con.execute(
        f"CREATE VIEW t AS SELECT * FROM read_parquet([{listed}], hive_partitioning = true)"
    )
    return con.execute(sql)


@pytest.fixture(scope="module")
def archive(db: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    root = tmp_path_factory.mktemp("archive")
    res = _publish(db, root, csv=True)
    assert res.changed  # type: ignore[attr-defined]
    return root


def _cols(rel: duckdb.DuckDBPyRelation) -> dict[str, list[object]]:
    return rel.to_arrow_table().to_pydict()


def _nan(xs: list[object]) -> list[float]:
    return [float("nan") if x is None else float(x) for x in xs]  # type: ignore[arg-type]


def _f32(xs: list[object]) -> np.ndarray:
    """Values as PostgreSQL ``real``s (psycopg gives their shortest text as a float64)."""
    return np.asarray(_nan(xs), dtype=np.float32)


def test_raw_archive_equals_database(db: str, archive: Path) -> None:
    con = duckdb.connect()
    raw = _cols(
        con.sql(
            f"SELECT * FROM read_parquet('{archive}/dataset=raw/**/*.parquet', "
            "hive_partitioning = true) ORDER BY device_id, ts"
        )
    )
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT r.device_id, r.seq, r.ts, r.pm25_ugm3, r.no2_ppb, r.effective_flags, "
            "c.value AS cal FROM readings_effective r LEFT JOIN calibrated_current c "
            "ON c.device_id = r.device_id AND c.seq = r.seq AND c.pollutant = 'pm25' "
            "ORDER BY r.device_id, r.ts"
        ).fetchall()
    assert len(raw["seq"]) == len(rows) == 2 * N
    assert raw["seq"] == [r[1] for r in rows]
    assert raw["device_id"] == [r[0] for r in rows]
    assert raw["ts"] == [r[2] for r in rows]
    # bit for bit: the archive stores the database's float32 values
    assert_array_equal(_f32(raw["pm25_ugm3"]), _f32([r[3] for r in rows]))
    assert_array_equal(_f32(raw["no2_ppb"]), _f32([r[4] for r in rows]))
    # flags as the downloads have them: stored flags plus annotated_invalid in the annotation
    assert raw["flags"] == [r[5] for r in rows]
    ann = int(ReadingFlag.ANNOTATED_INVALID)
    assert sum(1 for f in raw["flags"] if f & ann) == 120
    invalid = int(ReadingFlag.STUCK | ReadingFlag.ANNOTATED_INVALID)
    assert raw["valid"] == [r[5] & invalid == 0 for r in rows]
    assert_array_equal(_f32(raw["pm25_ugm3_cal"]), _f32([r[6] for r in rows]))
    by_dev = list(zip(raw["device_id"], raw["site_id"], raw["pm25_ugm3_cal"], strict=True))
    assert all(c is None for d, _s, c in by_dev if d == "pub-b")
    assert sum(1 for d, _s, c in by_dev if d == "pub-a" and c is not None) > 4000
    # site from the deployment: pub-a only from day 2 on (window ends 00:00:30 .. 23:59:30 of day 1)
    assert sum(1 for d, s_, _c in by_dev if d == "pub-a" and s_ is None) == 1440
    assert {s_ for d, s_, _c in by_dev if d == "pub-b"} == {"s-b"}
    # UTC and local time (Europe/Oslo: UTC+02:00 after 2026-03-29)
    first_utc, first_local = raw["ts"][0], raw["ts_local"][0]
    assert first_local - first_utc.replace(tzinfo=None) == timedelta(hours=2)
    assert set(raw["year"]) == {2026}
    assert sorted(set(raw["month"])) == [3, 4]


def test_hourly_archive_equals_rollups(db: str, archive: Path) -> None:
    con = duckdb.connect()
    hourly = _cols(
        con.sql(
            f"SELECT * FROM read_parquet('{archive}/dataset=hourly/**/*.parquet', "
            "hive_partitioning = true) WHERE pollutant = 'pm25' ORDER BY device_id, hour_start"
        )
    )
    with psycopg.connect(db) as conn:
        rows = conn.execute(
            "SELECT device_id, hour_start, (pm25_ugm3_sum / pm25_ugm3_n)::float8, pm25_ugm3_n "
            "FROM rollup_hourly WHERE pm25_ugm3_n > 0 ORDER BY device_id, hour_start"
        ).fetchall()
        (cal,) = conn.execute(
            "SELECT avg(c.value)::float8 FROM calibrated_current c JOIN readings r "
            "USING (device_id, seq) WHERE c.device_id = 'pub-a' AND c.pollutant = 'pm25' "
            "AND r.flags = 0 AND c.ts >= %s AND c.ts < %s",
            (T0 + timedelta(hours=3), T0 + timedelta(hours=4)),
        ).fetchone()
    assert len(hourly["mean"]) == len(rows) > 100
    assert hourly["hour_start"] == [r[1] for r in rows]
    assert_allclose(_nan(hourly["mean"]), [r[2] for r in rows], rtol=1e-12)
    assert hourly["n"] == [r[3] for r in rows]
    assert set(hourly["unit"]) == {"µg/m³"}
    keys = list(zip(hourly["device_id"], hourly["hour_start"], strict=True))
    i = keys.index(("pub-a", T0 + timedelta(hours=3)))
    assert_allclose(hourly["mean_calibrated"][i], cal, rtol=1e-6)
    assert hourly["calibration_id"][i] is not None
    # the hours inside pub-b's invalidating annotation have no valid pm25: not listed
    assert ("pub-b", T0 + timedelta(hours=6)) not in keys
    pols = con.sql(
        f"SELECT DISTINCT pollutant FROM read_parquet('{archive}/dataset=hourly/**/*.parquet', "
        "hive_partitioning = true) ORDER BY 1"
    ).fetchall()
    assert [p[0] for p in pols] == ["no2", "pm10", "pm25"]  # pm1 has no values


def test_annotations_archive_says_why_readings_are_invalid(db: str, archive: Path) -> None:
    """The annotations dataset: each staff annotation overlapping a month, in that month's
    partition, with its times in UTC and local time, and without who made it."""
    files = read_manifest_local(archive).dataset("annotations").files()
    parquet = [f for f in files if f.endswith(".parquet")]
    assert parquet == [f for f in parquet if "dataset=annotations/year=2026/month=3/" in f]
    got = _cols(
        duckdb.connect().sql(
            f"SELECT * FROM read_parquet('{archive}/dataset=annotations/**/*.parquet', "
            "hive_partitioning = true) ORDER BY annotation_id"
        )
    )
    assert "created_by" not in got and "revoked_by" not in got  # personal data
    with psycopg.connect(db) as conn:
        want = conn.execute(
            "SELECT annotation_id, device_id, starts_at, ends_at, kind, invalidates, reason "
            "FROM annotations WHERE starts_at < %s AND ends_at > %s ORDER BY annotation_id",
            (T0 + timedelta(days=3), T0),
        ).fetchall()
    assert len(want) == 1
    keys = ("annotation_id", "device_id", "starts_at", "ends_at", "kind", "invalidates", "reason")
    assert list(zip(*(got[k] for k in keys), strict=True)) == want
    oslo = ZoneInfo("Europe/Oslo")
    assert got["starts_at_local"] == [want[0][2].astimezone(oslo).replace(tzinfo=None)]
    assert got["active"] == [True] and got["revoked_at"] == [None]


def test_duckdb_prunes_partitions(archive: Path) -> None:
    con = duckdb.connect()
    plan = con.sql(
        "EXPLAIN ANALYZE SELECT count(*) FROM read_parquet("
        f"'{archive}/dataset=hourly/**/*.parquet', hive_partitioning = true) "
        "WHERE pollutant = 'pm25' AND month = 4"
    ).fetchall()[0][1]
    m = re.search(r"Scanning Files: (\d+)/(\d+)", plan)
    assert m is not None, plan
    assert (int(m.group(1)), int(m.group(2))) == (1, 6)
    # and the answer is the one partition's rows
    (n,) = con.execute(
        f"SELECT count(*) FROM read_parquet('{archive}/dataset=hourly/**/*.parquet', "
        "hive_partitioning = true) WHERE pollutant = 'pm25' AND month = 4"
    ).fetchone()
    manifest = read_manifest_local(archive)
    want = sum(
        f.rows
        for c in manifest.dataset("hourly").chunks.values()
        for f in c.files
        if f.format == "parquet"
        and f.partition == {"pollutant": "pm25", "year": "2026", "month": "4"}
    )
    assert n == want > 0


def read_manifest_local(root: Path) -> Manifest:
    return Manifest.loads((root / "manifest.json").read_text())


def test_csv_files_hold_the_same_rows(archive: Path) -> None:
    manifest = read_manifest_local(archive)
    for name in ("raw", "hourly"):
        files = [f for c in manifest.dataset(name).chunks.values() for f in c.files]
        csvs = [f for f in files if f.format == "csv.gz"]
        assert len(csvs) == len([f for f in files if f.format == "parquet"]) > 0
        for f in csvs:
            (n,) = (
                duckdb.connect()
                .execute(f"SELECT count(*) FROM read_csv('{archive / f.path}')")
                .fetchone()
            )
            assert n == f.rows
            assert hashlib.sha256((archive / f.path).read_bytes()).hexdigest() == f.sha256


def test_publishing_twice_changes_nothing(
    db: str, archive: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    before = _snapshot(archive)
    res = _publish(db, archive, csv=True)
    assert not res.changed  # type: ignore[attr-defined]
    assert _snapshot(archive) == before
    assert all(r.skipped == 2 for r in res.datasets.values())  # type: ignore[attr-defined]
    # a run whose database session is in another time zone (PGTZ; a server set up in Norway
    # runs in Europe/Oslo) sees the same watermarks: nothing is read again
    with monkeypatch.context() as m:
        m.setenv("PGTZ", "Europe/Oslo")
        res = _publish(db, archive, csv=True)
    assert _snapshot(archive) == before
    assert all(r.skipped == 2 for r in res.datasets.values())  # type: ignore[attr-defined]
    # forcing a re-read finds the same content: same files, still nothing new
    res = _publish(db, archive, csv=True, force=True)
    assert _snapshot(archive) == before
    assert all(r.unchanged == 2 for r in res.datasets.values())  # type: ignore[attr-defined]


def test_url_forms_give_the_same_archive(db: str, archive: Path, tmp_path: Path) -> None:
    """A file:// URL (pyarrow LocalFileSystem behind a SubTreeFileSystem) writes the same
    files as a plain path."""
    _publish(db, f"file://{tmp_path}/viaurl", csv=True)
    a = read_manifest_local(archive).dataset("raw").files()
    b = read_manifest_local(tmp_path / "viaurl").dataset("raw").files()
    assert a == b


def test_late_reading_rewrites_only_its_partition(db: str, tmp_path: Path) -> None:
    root = tmp_path / "late"
    _publish(db, root)
    before = _snapshot(root)
    m1 = read_manifest_local(root)
    with psycopg.connect(db) as conn:
        # a reading that arrives late for 2026-03-31 12:00:30 (pub-b, a new seq)
        ts = datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, flags, schema_version) VALUES ('pub-b', 999999, %s, 60, 59, 'sds011', "
            "500, 0, 1)",
            (ts,),
        )
        refresh(conn, "pub-b", ts - timedelta(hours=1), ts + timedelta(hours=1))
        conn.commit()
    try:
        res = _publish(db, root)
        after = _snapshot(root)
        m2 = read_manifest_local(root)
        changed = {p for p in after if before.get(p) != after[p]} | set(before) - set(after)
        data_changed = {p for p in changed if p.startswith(("dataset=", "_history/"))}
        # only March is rewritten (hourly: every pollutant, since the hour's n_stored and
        # coverage changed); April's files stay as they were
        dirs = {p.split("/part-")[0] for p in data_changed}
        assert "dataset=raw/year=2026/month=3" in dirs
        assert "_history/dataset=raw/year=2026/month=3" in dirs
        assert "dataset=hourly/pollutant=pm25/year=2026/month=3" in dirs
        assert all(d.endswith("month=3") for d in dirs), dirs
        april = {p for p in before if "month=4" in p}
        assert april and all(after.get(p) == before[p] for p in april)
        for name in ("raw", "hourly"):
            assert m2.dataset(name).version == m1.dataset(name).version + 1
            assert res.datasets[name].replaced == 1  # type: ignore[attr-defined]
        # the old version stays readable, with its old row count
        old = m2.version_files("raw", 1)
        assert any(p.startswith("_history/") for p in old)
        (n_old,) = _read(root, old, "SELECT count(*) FROM t").fetchone()
        (n_new,) = _read(root, m2.dataset("raw").files(), "SELECT count(*) FROM t").fetchone()
        assert (n_old, n_new) == (2 * N, 2 * N + 1)
        # a tree scan sees the current version only
        (n_tree,) = (
            duckdb.connect()
            .execute(f"SELECT count(*) FROM read_parquet('{root}/dataset=raw/**/*.parquet')")
            .fetchone()
        )
        assert n_tree == n_new
    finally:
        with psycopg.connect(db) as conn:
            conn.execute("DELETE FROM readings WHERE device_id = 'pub-b' AND seq = 999999")
            refresh(conn, "pub-b")
            conn.commit()


def _set_flags(conn: psycopg.Connection, device: str, flags: dict[int, int]) -> None:
    for seq, f in flags.items():
        conn.execute(
            "UPDATE readings SET flags = %s WHERE device_id = %s AND seq = %s", (f, device, seq)
        )


def test_flags_moved_between_readings_rewrite_their_chunk(db: str, tmp_path: Path) -> None:
    """A restatement that clears a flag on one reading and sets it on another of the same hour
    (a stuck run that shifts by a reading) leaves the sum of the flags and the hour's counts as
    they were; the next run still rewrites that month's raw file and hourly files, and the
    archive then holds the database's flags and means."""
    root = tmp_path / "moved"
    stuck = int(ReadingFlag.STUCK)
    was, now = 1440 + 610, 1440 + 611  # pub-a on 2026-03-31 at 10:10 (STUCK) and 10:11 (not)
    hour = T0 + timedelta(days=1, hours=10)
    with psycopg.connect(db) as conn:
        before = dict(
            conn.execute(
                "SELECT seq, flags FROM readings WHERE device_id = 'pub-a' AND seq = ANY(%s)",
                ([was, now],),
            ).fetchall()
        )
    assert before == {was: stuck, now: 0}
    _publish(db, root)
    m1 = read_manifest_local(root)
    try:
        with psycopg.connect(db) as conn:
            (counts_before,) = conn.execute(
                "SELECT (n_stored, n_valid) FROM rollup_hourly WHERE device_id = 'pub-a' "
                "AND hour_start = %s",
                (hour,),
            ).fetchone()
            _set_flags(conn, "pub-a", {was: 0, now: stuck})
            refresh(conn, "pub-a", hour, hour + timedelta(hours=1))
            (counts_after,) = conn.execute(
                "SELECT (n_stored, n_valid) FROM rollup_hourly WHERE device_id = 'pub-a' "
                "AND hour_start = %s",
                (hour,),
            ).fetchone()
            (mean,) = conn.execute(
                "SELECT (pm25_ugm3_sum / pm25_ugm3_n)::float8 FROM rollup_hourly "
                "WHERE device_id = 'pub-a' AND hour_start = %s",
                (hour,),
            ).fetchone()
            conn.commit()
        assert counts_after == counts_before  # the counts alone would not tell
        res = _publish(db, root)
        m2 = read_manifest_local(root)
        for name in ("raw", "hourly"):
            assert res.datasets[name].replaced == 1  # type: ignore[attr-defined]
            assert res.datasets[name].skipped == 1  # type: ignore[attr-defined]
            assert m2.dataset(name).version == m1.dataset(name).version + 1
        got = _read(
            root,
            m2.dataset("raw").files(),
            f"SELECT seq, flags FROM t WHERE device_id = 'pub-a' AND seq IN ({was}, {now}) "
            "ORDER BY seq",
        ).fetchall()
        assert got == [(was, 0), (now, stuck)]
        (hm,) = _read(
            root,
            m2.dataset("hourly").files(),
            "SELECT mean FROM t WHERE pollutant = 'pm25' AND device_id = 'pub-a' "
            f"AND hour_start = TIMESTAMPTZ '{hour.isoformat()}'",
        ).fetchone()
        assert_allclose(hm, mean, rtol=1e-12)
        assert not _publish(db, root).changed  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(db) as conn:
            _set_flags(conn, "pub-a", before)
            refresh(conn, "pub-a", hour, hour + timedelta(hours=1))
            conn.commit()


def test_archive_from_before_the_digest_is_read_once_and_kept(db: str, tmp_path: Path) -> None:
    """An archive whose manifest holds the earlier watermarks (a sum of the flags, of
    n_stored and n_valid; the annotations' state without their digest) is read again once:
    no file is replaced, no version added, the manifest takes the new watermarks, and the run
    after skips every chunk."""
    root = tmp_path / "upgrade"
    _publish(db, root)
    m = json.loads((root / "manifest.json").read_text())
    for name, ds in m["datasets"].items():
        for chunk in ds["chunks"].values():
            wm = chunk["watermark"]
            del wm["digest"]  # annotations: the state alone, as in their first form
            if name != "annotations":
                wm.update({"flags": 1234} if name == "raw" else {"stored": 10, "valid": 9})
    (root / "manifest.json").write_text(json.dumps(m))
    before = _data_files(root)
    res = _publish(db, root)
    assert res.changed  # type: ignore[attr-defined]
    for name in ("raw", "hourly", "annotations"):
        assert res.datasets[name].unchanged == 2  # type: ignore[attr-defined]
        assert res.datasets[name].replaced == 0  # type: ignore[attr-defined]
    assert _data_files(root) == before
    after = read_manifest_local(root)
    names = ("raw", "hourly", "annotations")
    assert [after.dataset(n).version for n in names] == [m["datasets"][n]["version"] for n in names]
    res = _publish(db, root)
    assert not res.changed  # type: ignore[attr-defined]
    assert all(r.skipped == 2 for r in res.datasets.values())  # type: ignore[attr-defined]


def test_recalibration_makes_a_new_version_and_keeps_the_old(db: str, tmp_path: Path) -> None:
    root = tmp_path / "recal"
    _publish(db, root)
    m1 = read_manifest_local(root)
    with psycopg.connect(db) as conn:
        vid = _calibrate(conn, "pub-a", factor=3.0, model_id="cal-v2")
        conn.commit()
    res = _publish(db, root)
    m2 = read_manifest_local(root)
    assert m2.dataset("raw").version == m1.dataset("raw").version + 1
    assert res.datasets["raw"].replaced == 2  # type: ignore[attr-defined]  # both months
    q = (
        "SELECT avg(pm25_ugm3_cal / (pm25_ugm3 * 1.0 + 0.0)), max(pm25_ugm3_calibration_id) "
        "FROM t WHERE device_id = 'pub-a' AND pm25_ugm3 > 5"
    )
    old_files = m2.version_files("raw", m1.dataset("raw").version)
    ratio_old, id_old = _read(root, old_files, q).fetchone()
    ratio_new, id_new = _read(root, m2.dataset("raw").files(), q).fetchone()
    assert id_new == vid and id_old == vid - 1
    assert 2.0 < ratio_old < 2.3 and 3.0 < ratio_new < 3.3  # (f × x + 1) / x for x > 5
    # the hourly calibrated means moved too, the raw means did not
    h_old = _read(
        root,
        m2.version_files("hourly", m1.dataset("hourly").version),
        "SELECT sum(mean), sum(mean_calibrated) FROM t WHERE pollutant = 'pm25'",
    ).fetchone()
    h_new = _read(
        root,
        m2.dataset("hourly").files(),
        "SELECT sum(mean), sum(mean_calibrated) FROM t WHERE pollutant = 'pm25'",
    ).fetchone()
    assert h_old[0] == pytest.approx(h_new[0], rel=1e-12)
    assert h_new[1] > h_old[1] * 1.3


def test_bad_input_gives_clear_errors(db: str, tmp_path: Path) -> None:
    blocker = tmp_path / "file"
    blocker.write_text("x")
    with pytest.raises(PublishError, match="cannot write to the archive"):
        _publish(db, blocker / "archive")
    with pytest.raises(ConfigError, match="is after --to-date"):
        publish(db, str(tmp_path / "a"), SETTINGS, start=DAY_LAST, end=DAY0, today=TODAY)
    with pytest.raises(ConfigError, match="in the future"):
        publish(db, str(tmp_path / "a"), SETTINGS, end=TODAY + timedelta(days=2), today=TODAY)
    with pytest.raises(ConfigError, match="not a path or a filesystem URL"):
        _publish(db, "nosuchscheme://x/y")
    with pytest.raises(StorageError, match="cannot reach the database"):
        _publish("postgresql://postgres@127.0.0.1:1/nothing", tmp_path / "nodb")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "manifest.json").write_text(json.dumps({"format": "something-else"}))
    with pytest.raises(PublishError, match="not a luftnett archive manifest"):
        _publish(db, bad)
    (bad / "manifest.json").write_text("{not json")
    with pytest.raises(PublishError, match=r"cannot be read"):
        _publish(db, bad)


def test_cli_publishes_and_explains_bad_options(db: str, tmp_path: Path) -> None:
    runner = CliRunner()
    env = {"LUFTNETT_DATABASE_URL": db}
    out = tmp_path / "cli"
    r = runner.invoke(
        main,
        [
            "publish",
            "--to",
            str(out),
            "--from",
            "2026-03-30",
            "--to-date",
            "2026-03-31",
            "--datasets",
            "hourly",
        ],
        env=env,
    )
    assert r.exit_code == 0, r.output
    assert "hourly v1: 1 new" in r.output
    assert (
        read_manifest(__import__("luftnett.publish.archive", fromlist=["x"]).open_target(str(out)))
        .dataset("hourly")
        .version
        == 1
    )
    r = runner.invoke(main, ["publish", "--to", str(out), "--from", "2026-13-01"], env=env)
    assert r.exit_code == 2 and "--from" in r.output
    r = runner.invoke(main, ["publish", "--to", str(out), "--datasets", "hourly,daily"], env=env)
    assert r.exit_code == 2 and "unknown dataset 'daily'" in r.output
    r = runner.invoke(main, ["publish"], env={**env, "LUFTNETT_PUBLISH__TARGET": ""})
    assert r.exit_code == 1 and "pass --to" in r.output


# -- catalogue records ----------------------------------------------------------------------

DCAT = Namespace("http://www.w3.org/ns/dcat#")
DCT = Namespace("http://purl.org/dc/terms/")
FOAF = Namespace("http://xmlns.com/foaf/0.1/")
VCARD = Namespace("http://www.w3.org/2006/vcard/ns#")
CSVW = Namespace("http://www.w3.org/ns/csvw#")
SKOS = Namespace("http://www.w3.org/2004/02/skos/core#")
PROV = Namespace("http://www.w3.org/ns/prov#")
EU = "http://publications.europa.eu/resource/authority"


def _graph(text: str) -> Graph:
    """Parse JSON-LD with rdflib (its JSON-LD parser still builds a ConjunctiveGraph inside,
    which rdflib 7.x itself marks deprecated)."""
    g = Graph()
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        g.parse(data=text, format="json-ld")
    return g


def _check_dataset(g: Graph, ds: URIRef, name: str, n_versions: int) -> None:
    """Every property DCAT-AP (and DCAT-AP-NO) requires or recommends for a dataset and its
    distributions, and the data dictionary."""
    for prop in (DCT.title, DCT.description):
        langs = {lit.language for lit in g.objects(ds, prop)}
        assert langs == {"nb", "en"}, (name, prop, langs)
    assert g.value(ds, DCT.identifier) is not None
    publisher = g.value(ds, DCT.publisher)
    assert str(g.value(publisher, FOAF.name)) == SETTINGS.publisher_name
    assert (publisher, RDF.type, FOAF.Agent) in g
    contact = g.value(ds, DCAT.contactPoint)
    assert str(g.value(contact, VCARD.hasEmail)) == f"mailto:{SETTINGS.contact_email}"
    assert {lit.language for lit in g.objects(ds, DCAT.keyword)} == {"nb", "en"}
    assert URIRef(f"{EU}/data-theme/ENVI") in set(g.objects(ds, DCAT.theme))
    assert g.value(ds, DCT.accessRights) == URIRef(f"{EU}/access-right/PUBLIC")
    assert g.value(ds, DCT.accrualPeriodicity) == URIRef(f"{EU}/frequency/DAILY")
    period = g.value(ds, DCT.temporal)
    assert str(g.value(period, DCAT.startDate)) == str(DAY0)
    assert str(g.value(period, DCAT.endDate)) == str(DAY_LAST)
    bbox = str(g.value(g.value(ds, DCT.spatial), DCAT.bbox))
    assert bbox.startswith("POLYGON((10.75 59.91") and "10.8 59.95" in bbox
    dists = list(g.objects(ds, DCAT.distribution))
    assert len(dists) == 2  # Parquet and gzipped CSV
    formats = set()
    for d in dists:
        assert (d, RDF.type, DCAT.Distribution) in g
        assert str(g.value(d, DCAT.accessURL)).startswith("file:///")
        formats.add(str(g.value(d, DCT["format"])))
        assert g.value(d, DCT.license) == URIRef(f"{EU}/licence/CC_BY_4_0")
        assert g.value(d, DCAT.mediaType) is not None
    assert formats == {f"{EU}/file-type/PARQUET", f"{EU}/file-type/CSV"}
    # data dictionary: every column with its datatype, and a unit where it has one
    schema = g.value(ds, CSVW.tableSchema)
    cols = list(g.objects(schema, CSVW.column))
    names = {str(g.value(c, CSVW.name)) for c in cols}
    want = {f.name for f in fields(name)} | {"year", "month"}
    assert names == (want | {"pollutant"} if name == "hourly" else want)
    units = {
        str(g.value(c, CSVW.name)): g.value(c, URIRef("https://schema.org/unitText")) for c in cols
    }
    if name == "raw":
        assert str(units["pm25_ugm3"]) == "µg/m³" and str(units["no2_ppb"]) == "ppb"
    flags = g.value(ds, DCT.subject)
    concepts = {str(g.value(c, SKOS.prefLabel)) for c in g.objects(flags, SKOS.hasTopConcept)}
    assert concepts == set(FLAG_BITS)
    cal = list(g.objects(ds, PROV.wasDerivedFrom))
    assert len(cal) == n_versions
    assert g.value(ds, DCAT.version) is not None


def test_catalogue_in_the_archive_has_every_required_property(archive: Path) -> None:
    g = _graph((archive / "catalogue" / "catalog.jsonld").read_text())
    (cat,) = list(g.subjects(RDF.type, DCAT.Catalog))
    assert {lit.language for lit in g.objects(cat, DCT.title)} == {"nb", "en"}
    assert {lit.language for lit in g.objects(cat, DCT.description)} == {"nb", "en"}
    assert g.value(cat, DCT.publisher) is not None
    datasets = set(g.objects(cat, DCAT.dataset))
    assert datasets == set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 3
    for ds in datasets:
        name = str(ds).rsplit("/", 1)[1]
        _check_dataset(g, ds, name, n_versions=1)
    for name in ("hourly", "raw", "annotations"):
        one = _graph((archive / "catalogue" / f"{name}.jsonld").read_text())
        (ds,) = list(one.subjects(RDF.type, DCAT.Dataset))
        _check_dataset(one, ds, name, n_versions=1)


def test_catalogue_endpoint(api_url: str) -> None:
    r = httpx.get(f"{api_url}/api/v1/catalogue", timeout=60)
    assert r.status_code == 200, r.text
    assert r.headers["content-type"].startswith("application/ld+json")
    g = _graph(r.text)
    datasets = set(g.subjects(RDF.type, DCAT.Dataset))
    assert len(datasets) == 3
    for ds in datasets:
        for prop in (DCT.title, DCT.description):
            assert {lit.language for lit in g.objects(ds, prop)} == {"nb", "en"}
        for prop in (DCT.publisher, DCAT.contactPoint, DCAT.distribution, DCT.accessRights):
            assert g.value(ds, prop) is not None, prop
        for d in g.objects(ds, DCAT.distribution):
            url = str(g.value(d, DCAT.accessURL))
            if str(ds).endswith("/annotations"):  # no download of their own: the JSON list
                assert url == f"{api_url}/api/v1/annotations"
                continue
            # each dataset's own download, in its columns: readings (raw) or hours
            name = "hourly" if str(ds).endswith("/hourly") else "readings"
            assert url in {f"{api_url}/api/v1/downloads/{name}.{x}" for x in ("csv", "parquet")}
            assert httpx.head(url, timeout=60).status_code in (200, 405)
            assert g.value(d, DCT.license) is not None and g.value(d, DCT["format"]) is not None
            titles = {str(t) for t in g.objects(d, DCT.title)}
            assert not any("Hive" in t for t in titles), titles  # not the archive's files
    r = httpx.get(f"{api_url}/api/v1/catalogue/raw", timeout=60)
    assert r.status_code == 200
    one = _graph(r.text)
    assert len(list(one.subjects(RDF.type, DCAT.Dataset))) == 1
    r = httpx.get(f"{api_url}/api/v1/catalogue/daily", timeout=60)
    assert r.status_code == 404 and "hourly, raw" in r.json()["detail"]


def test_watermark_queries_agree(db: str) -> None:
    """The per-device index query (short spans) and the sequential one give the same days."""
    from luftnett.publish import source

    with psycopg.connect(db) as conn:
        a = source.day_watermarks(conn, "raw", DAY0, DAY_LAST + timedelta(days=1))
        conn.execute("SELECT 1")
        old = source.INDEXED_SPAN
        source.INDEXED_SPAN = timedelta(0)
        try:
            b = source.day_watermarks(conn, "raw", DAY0, DAY_LAST + timedelta(days=1))
        finally:
            source.INDEXED_SPAN = old
    assert a == b
    assert sorted(a) == [DAY0, DAY0 + timedelta(days=1), DAY_LAST]
    assert sum(v["rows"] for v in a.values()) == 2 * N


async def test_catalogue_endpoint_follows_the_archive(db: str, archive: Path) -> None:
    """With publish.target set, the API's records come from the archive's manifest and point
    at publish.base_url."""
    from luftnett.api.app import create_app
    from luftnett.settings import Settings

    s = Settings(
        database_url=db,
        publish=PublishSettings(target=str(archive), base_url="https://data.example.no/air"),
    )
    app = create_app(s, db)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            r = await client.get("/api/v1/catalogue/raw")
    assert r.status_code == 200, r.text
    g = _graph(r.text)
    (ds,) = list(g.subjects(RDF.type, DCAT.Dataset))
    urls = {str(g.value(d, DCAT.accessURL)) for d in g.objects(ds, DCAT.distribution)}
    assert urls == {"https://data.example.no/air", "https://data.example.no/air/csv"}
    manifest = read_manifest_local(archive)
    assert str(g.value(ds, DCAT.version)) == str(manifest.dataset("raw").version)
    period = g.value(ds, DCT.temporal)
    assert str(g.value(period, DCAT.startDate)) == str(DAY0)


def test_empty_database_publishes_nothing(fresh_db_url: str, tmp_path: Path) -> None:
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
    res = publish(fresh_db_url, str(tmp_path / "empty"), SETTINGS, today=TODAY)
    assert not res.changed
    assert res.summary().startswith("nothing to publish: the database has no readings up to")
    assert not (tmp_path / "empty" / "manifest.json").exists()


def _data_files(root: Path) -> dict[str, str]:
    return {p: h for p, h in _snapshot(root).items() if p.startswith(("dataset=", "_history/"))}


def test_calibrated_values_added_later_rewrite_only_their_chunk(db: str, tmp_path: Path) -> None:
    """Values a calibration job adds to the version already in force (no new activation, no
    new version) change the chunk's watermark: the next run rewrites that month only."""
    root = tmp_path / "latecal"
    with psycopg.connect(db) as conn:
        (vid,) = conn.execute(
            "SELECT luftnett_active_version('pub-a', 'pm25', %s)", (T0,)
        ).fetchone()
        april = datetime(2026, 4, 1, tzinfo=UTC)
        held = conn.execute(
            "DELETE FROM calibrated_values WHERE device_id = 'pub-a' AND version_id = %s "
            "AND ts >= %s RETURNING device_id, seq, pollutant, version_id, ts, value, u",
            (vid, april),
        ).fetchall()
        conn.commit()
    assert len(held) > 1000
    try:
        _publish(db, root)
        before = _data_files(root)
        m1 = read_manifest_local(root)
        q = "SELECT count(pm25_ugm3_cal) FROM t WHERE device_id = 'pub-a' AND month = 4"
        assert _read(root, m1.dataset("raw").files(), q).fetchone() == (0,)
        assert not _publish(db, root).changed  # type: ignore[attr-defined]
        with psycopg.connect(db) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, "
                "value, u) VALUES (%s, %s, %s, %s, %s, %s, %s)",
                held,
            )
            conn.commit()
        res = _publish(db, root)
        m2 = read_manifest_local(root)
        after = _data_files(root)
        changed = {p for p in after if before.get(p) != after[p]} | set(before) - set(after)
        dirs = {p.split("/part-")[0] for p in changed}
        assert "dataset=raw/year=2026/month=4" in dirs
        assert "dataset=hourly/pollutant=pm25/year=2026/month=4" in dirs
        # March, and April's other pollutants (no calibrated column changed), stay as they were
        assert all(d.endswith("month=4") for d in dirs), dirs
        assert not any("pollutant=pm10" in d for d in dirs)
        for name in ("raw", "hourly"):
            assert res.datasets[name].replaced == 1  # type: ignore[attr-defined]
            assert m2.dataset(name).version == m1.dataset(name).version + 1
        (n_cal,) = _read(root, m2.dataset("raw").files(), q).fetchone()
        assert n_cal == len(held)
        (h,) = _read(
            root,
            m2.dataset("hourly").files(),
            "SELECT count(mean_calibrated) FROM t WHERE pollutant = 'pm25' "
            "AND device_id = 'pub-a' AND month = 4",
        ).fetchone()
        assert h == 24
        assert not _publish(db, root).changed  # type: ignore[attr-defined]
    finally:
        with psycopg.connect(db) as conn, conn.cursor() as cur:
            cur.executemany(
                "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, "
                "value, u) VALUES (%s, %s, %s, %s, %s, %s, %s) ON CONFLICT DO NOTHING",
                held,
            )
            conn.commit()


def test_keep_versions_prunes_history(db: str, tmp_path: Path) -> None:
    """Three versions (a late reading comes and goes); keeping 2, then 1, deletes the files
    only forgotten versions list, and every version the manifest still lists stays readable."""
    root = tmp_path / "prune"
    _publish(db, root)
    ts = datetime(2026, 3, 31, 12, 0, 30, tzinfo=UTC)
    with psycopg.connect(db) as conn:
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, flags, schema_version) VALUES ('pub-b', 999998, %s, 60, 59, 'sds011', "
            "500, 0, 1)",
            (ts,),
        )
        refresh(conn, "pub-b", ts - timedelta(hours=1), ts + timedelta(hours=1))
        conn.commit()
    try:
        _publish(db, root)
    finally:
        with psycopg.connect(db) as conn:
            conn.execute("DELETE FROM readings WHERE device_id = 'pub-b' AND seq = 999998")
            refresh(conn, "pub-b")
            conn.commit()
    _publish(db, root)
    m = read_manifest_local(root)
    assert [v["version"] for v in m.dataset("raw").versions] == [1, 2, 3]
    history = {p for p in _snapshot(root) if p.startswith("_history/")}
    assert history

    def check(keep: int) -> Manifest:
        s = SETTINGS.model_copy(update={"keep_versions": keep})
        had = {p for p in _snapshot(root) if p.startswith("_history/")}
        res = publish(db, str(root), s, start=DAY0, end=DAY_LAST, today=TODAY)
        m = read_manifest_local(root)
        listed = {p for ds in m.datasets.values() for v in ds.versions for p in v["files"]}
        on_disk = {p for p in _snapshot(root) if p.startswith(("dataset=", "_history/"))}
        assert {p for p in listed if not p.startswith("catalogue")} == on_disk
        assert res.pruned == len(had - on_disk) > 0
        return m

    m = check(2)
    assert [v["version"] for v in m.dataset("raw").versions] == [2, 3]
    assert len({p for p in _snapshot(root) if p.startswith("_history/")}) < len(history)
    (n2,) = _read(root, m.version_files("raw", 2), "SELECT count(*) FROM t").fetchone()
    assert n2 == 2 * N + 1
    with pytest.raises(PublishError, match="no version 1"):
        m.version_files("raw", 1)
    m = check(1)
    assert [v["version"] for v in m.dataset("raw").versions] == [3]
    assert not {p for p in _snapshot(root) if p.startswith("_history/")}
    (n3,) = _read(root, m.dataset("raw").files(), "SELECT count(*) FROM t").fetchone()
    assert n3 == 2 * N
    # the option on the command line
    r = CliRunner().invoke(
        main, ["publish", "--to", str(root), "--keep-versions", "0"], catch_exceptions=False
    )
    assert r.exit_code == 2 and "--keep-versions" in r.output


def test_nightly_schedule_publishes_yesterday_then_nothing(db: str, tmp_path: Path) -> None:
    """The scheduled loop with its own clock: it sleeps until nightly_at, publishes
    yesterday (lookback 0) from the real database, and the next night adds nothing."""
    from luftnett.publish.cli import run_nightly

    root = tmp_path / "nightly"
    now = [datetime(2026, 4, 1, 22, 15, tzinfo=UTC)]
    slept: list[float] = []

    def sleep(s: float) -> None:
        slept.append(s)
        now[0] += timedelta(seconds=s)

    s = PublishSettings(workers=1, nightly_at="01:30", lookback_days=0)
    first, second = run_nightly(db, str(root), s, clock=lambda: now[0], sleep=sleep, ticks=2)
    assert slept == [3 * 3600 + 15 * 60, 24 * 3600]
    assert (first.start, first.end) == (DAY_LAST, DAY_LAST)
    m1 = read_manifest_local(root)
    (n, lo, hi) = _read(
        root, m1.dataset("raw").files(), "SELECT count(*), min(epoch(ts)), max(epoch(ts)) FROM t"
    ).fetchone()
    with psycopg.connect(db) as conn:
        (want,) = conn.execute(
            "SELECT count(*) FROM readings WHERE ts >= %s AND ts < %s",
            (datetime(2026, 4, 1, tzinfo=UTC), datetime(2026, 4, 2, tzinfo=UTC)),
        ).fetchone()
    assert n == want == 2 * 1440
    day = datetime(2026, 4, 1, tzinfo=UTC).timestamp()
    assert day <= lo <= hi < day + 86400
    snap = _data_files(root)
    assert (second.start, second.end) == (DAY_LAST + timedelta(days=1),) * 2
    m2 = read_manifest_local(root)
    assert _data_files(root) == snap
    for name in ("raw", "hourly"):
        assert m2.dataset(name).version == m1.dataset(name).version == 1
        assert second.datasets[name].files_written == 0


def test_hourly_coverage_is_the_pollutants_on_a_box_with_two_sensors(
    fresh_db_url: str, tmp_path: Path
) -> None:
    """A box with an SDS011 and an SHT31 stores a reading of each per minute. In its first hour
    the SDS011 sent 30 of 60 windows, in the second 50: the published PM2.5 hours have 50 %
    (not valid) and 83.3 % (valid) coverage, as the API's series judge them. The box's readings
    (n_valid: 90 and 110) are twice the windows and would make both hours valid (150 %)."""
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES ('two', 'sds011')")
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, temperature_c, rh_pct, flags, schema_version) "
            "SELECT 'two', 2 * i + s, %s::timestamptz + (i + 1) * interval '1 minute', 60, 60, "
            "CASE s WHEN 0 THEN 'sds011' ELSE 'sht31' END, "
            "CASE s WHEN 0 THEN 10 + i %% 7 END, CASE s WHEN 1 THEN 5 END, "
            "CASE s WHEN 1 THEN 60 END, 0, 1 "
            "FROM generate_series(0, 119) i, generate_series(0, 1) s "
            "WHERE s = 1 OR (i < 60 AND i %% 2 = 0) OR (i >= 60 AND i %% 6 <> 0)",
            (T0 - timedelta(seconds=30),),
        )
        refresh(conn)
        conn.commit()
    publish(fresh_db_url, str(tmp_path / "a"), SETTINGS, start=DAY0, end=DAY0, today=TODAY)
    hourly = _cols(
        duckdb.connect().sql(
            f"SELECT hour_start, n, n_valid, n_expected, coverage_pct, valid FROM read_parquet("
            f"'{tmp_path}/a/dataset=hourly/**/*.parquet', hive_partitioning = true) "
            "WHERE pollutant = 'pm25' ORDER BY hour_start"
        )
    )
    assert hourly["hour_start"] == [T0, T0 + timedelta(hours=1)]
    assert hourly["n"] == [30, 50]
    assert hourly["n_valid"] == [90, 110]
    assert hourly["n_expected"] == [60, 60]
    assert_allclose(_nan(hourly["coverage_pct"]), [50.0, 100 * 50 / 60])
    assert hourly["valid"] == [False, True]


def test_a_revoked_annotation_makes_a_new_annotations_version(
    fresh_db_url: str, tmp_path: Path
) -> None:
    """Staff revoke an annotation after it was published: the next run writes the month's
    annotations file again (active false, the revoke's reason), a new dataset version, and
    the earlier file stays readable under _history. A reason edited with psql, which leaves
    the readings' state alone, replaces the annotations file and nothing else."""
    from luftnett.collector import annotations

    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES ('ann-a', 'sds011')")
        conn.execute(
            "INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, "
            "pm25_ugm3, flags, schema_version) SELECT 'ann-a', i, %s + i * interval '10 min', "
            "600, 60, 'sds011', 5, 0, 1 FROM generate_series(0, 143) i",
            (T0,),
        )
        conn.commit()
        a = annotations.add(conn, "ann-a", T0 + timedelta(hours=2), T0 + timedelta(hours=3),
                            "roadworks", "asphalt", by="kari", invalidates=True)  # fmt: skip
    root = tmp_path / "ann"
    publish(fresh_db_url, str(root), SETTINGS, start=DAY0, end=DAY0, today=TODAY)
    first = read_manifest_local(root).dataset("annotations")
    assert first.rows() == 1
    with psycopg.connect(fresh_db_url) as conn:
        annotations.revoke(conn, a.annotation_id, by="ola", reason="wrong box")
    res = publish(fresh_db_url, str(root), SETTINGS, start=DAY0, end=DAY0, today=TODAY)
    assert res.datasets["annotations"].replaced == 1
    after = read_manifest_local(root).dataset("annotations")
    assert after.version == first.version + 1
    (path,) = [f for f in after.files() if f.endswith(".parquet")]
    got = _cols(duckdb.connect().sql(f"SELECT active, revoke_reason FROM '{root / path}'"))
    assert got == {"active": [False], "revoke_reason": ["wrong box"]}
    (old,) = [f for f in first.files() if f.endswith(".parquet")]
    assert (root / "_history" / old).exists()
    # an edit outside luftnett (psql) of what only the annotations file shows reaches it too
    with psycopg.connect(fresh_db_url) as conn:
        conn.execute("UPDATE annotations SET reason = 'asphalt, lane 2'")
    res = publish(fresh_db_url, str(root), SETTINGS, start=DAY0, end=DAY0, today=TODAY)
    assert res.datasets["annotations"].replaced == 1
    assert (res.datasets["raw"].replaced, res.datasets["hourly"].replaced) == (0, 0)
    (path,) = [f for f in read_manifest_local(root).dataset("annotations").files() if "parq" in f]
    got = _cols(duckdb.connect().sql(f"SELECT reason FROM '{root / path}'"))
    assert got == {"reason": ["asphalt, lane 2"]}
    again = publish(fresh_db_url, str(root), SETTINGS, start=DAY0, end=DAY0, today=TODAY)
    assert again.datasets["annotations"].replaced == 0


async def test_hourly_download_is_the_archives_hourly_dataset(db: str, tmp_path: Path) -> None:
    """GET /api/v1/downloads/hourly.parquet and .csv give the rows and columns of the
    archive's hourly dataset (its Hive partition key pollutant as a column), across a month's
    end (streamed a month at a time); devices and pollutants filter; a span of more than 366
    days is a 422 that points at the archive."""
    import pyarrow.csv as pacsv
    import pyarrow.parquet as pq

    from luftnett.api.app import create_app
    from luftnett.settings import Settings

    archive = tmp_path / "now"  # of the database as it is now (other tests change it)
    _publish(db, archive)
    con = duckdb.connect()
    cols = [f.name for f in fields("hourly")]
    want = con.sql(
        f"SELECT {', '.join(cols)}, pollutant FROM read_parquet("
        f"'{archive}/dataset=hourly/**/*.parquet', hive_partitioning = true) "
        "ORDER BY device_id, hour_start, pollutant"
    ).to_arrow_table()
    assert want.num_rows > 100
    app = create_app(Settings(database_url=db), db)
    days = {"start": str(DAY0), "end": str(DAY_LAST)}
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://test") as client:
            pq_r = await client.get("/api/v1/downloads/hourly.parquet", params=days)
            csv_r = await client.get("/api/v1/downloads/hourly.csv", params=days)
            one = await client.get(
                "/api/v1/downloads/hourly.csv",
                params={**days, "device": "pub-b", "pollutant": ["pm25", "no2"]},
            )
            at_a = await client.get("/api/v1/downloads/hourly.csv", params={**days, "site": "s-a"})
            long = await client.get(
                "/api/v1/downloads/hourly.csv", params={"start": "2024-01-01", "end": "2025-12-31"}
            )
            bad = await client.get("/api/v1/downloads/hourly.csv", params={"pollutant": "o3"})
    assert pq_r.status_code == 200, pq_r.text
    got = pq.read_table(io.BytesIO(pq_r.content))
    assert got.column_names == [*cols, "pollutant"]
    assert got.select(cols).schema.equals(arrow_schema("hourly"), check_metadata=False)
    assert got.num_rows == want.num_rows
    keys = [("device_id", "ascending"), ("hour_start", "ascending"), ("pollutant", "ascending")]
    got = got.sort_by(keys)  # each month is in this order
    for c in [*cols, "pollutant"]:
        assert got.column(c).to_pylist() == want.column(c).to_pylist(), c
    kv = {k.decode(): v.decode() for k, v in (got.schema.metadata or {}).items()}
    assert "citation" in kv and "licence" in kv
    assert csv_r.status_code == 200 and csv_r.headers["content-type"].startswith("text/csv")
    text = pacsv.read_csv(io.BytesIO(csv_r.content)).sort_by(keys)
    assert text.column_names == got.column_names and text.num_rows == got.num_rows
    assert_allclose(_nan(text.column("mean").to_pylist()), _nan(got.column("mean").to_pylist()))
    first = csv_r.text.splitlines()[1].split(",")
    assert first[2] == "2026-03-30 00:00:00+00" and first[3] == "2026-03-30 02:00:00"
    rows = pacsv.read_csv(io.BytesIO(one.content))
    assert set(rows.column("device_id").to_pylist()) == {"pub-b"}
    assert set(rows.column("pollutant").to_pylist()) == {"pm25", "no2"}
    # pub-a stands at s-a from day 2 on: the site's hours are those
    site_rows = pacsv.read_csv(io.BytesIO(at_a.content))
    assert set(site_rows.column("site_id").to_pylist()) == {"s-a"}
    assert set(site_rows.column("device_id").to_pylist()) == {"pub-a"}
    first_hour = min(site_rows.column("hour_start").to_pylist())
    assert first_hour == T0 + timedelta(days=1)
    assert long.status_code == 422 and "at most 366" in long.json()["detail"]
    assert bad.status_code == 422
