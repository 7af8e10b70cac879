"""Calibration in the system, on a real PostgreSQL: versions, activations, reprocessing, NILU
import from recorded responses, refit marking and the database CLI."""

from __future__ import annotations

import http.server
import json
import threading
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from luftnett.calibration.apply_db import calibrate_rows, ensure_fleet_defaults, reprocess
from luftnett.calibration.campaign import fit_campaign
from luftnett.calibration.fleet import FLEET_DEFAULTS
from luftnett.calibration.reference import ReferenceObservation, ReferenceStation
from luftnett.calibration.store import (
    activate,
    get_version,
    import_observations,
    insert_version,
    upsert_station,
)
from luftnett.cli import main
from luftnett.db.schema import READING_COLUMNS

pytestmark = pytest.mark.e2e

NILU = Path(__file__).resolve().parents[1] / "data" / "nilu"
T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)
#: calibrated values are stored as real (float32): 1e-6 relative, plus 1e-5 absolute near zero
RTOL, ATOL = 1e-6, 1e-5


def uid(prefix: str) -> str:
    return f"{prefix}-{uuid.uuid4().hex[:10]}"


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def truth(hours: int, seed: int = 0) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """Hourly reference PM2.5, RH and T with a daily cycle."""
    rng = np.random.default_rng(seed)
    h = np.arange(hours)
    ref = np.clip(12 + 8 * np.sin(2 * np.pi * h / 24) + rng.normal(0, 3, hours), 1, None)
    rh = np.clip(60 + 25 * np.sin(2 * np.pi * h / 24 + 1) + rng.normal(0, 5, hours), 10, 98)
    temp = 5 + 4 * np.sin(2 * np.pi * h / 24 - 1) + rng.normal(0, 1, hours)
    return ref, rh, temp


def make_device(
    conn: psycopg.Connection[Any],
    hours: int,
    *,
    lat: float = 59.9323,
    lon: float = 10.7245,
    sensor_model: str = "sds011",
    per_hour: int = 6,
    seed: int = 0,
    gain: float = 1.6,
) -> tuple[str, np.ndarray]:
    """A device at a site with readings every 10 min for ``hours`` from T0; returns the
    device id and the hourly reference series its readings were made from."""
    dev, site = uid("dev"), uid("site")
    ref, rh, temp = truth(hours, seed)
    conn.execute(
        "INSERT INTO devices (device_id, sensor_model) VALUES (%s, %s)", (dev, sensor_model)
    )
    conn.execute(
        "INSERT INTO sites (site_id, name, lat, lon) VALUES (%s, %s, %s, %s)",
        (site, site, lat, lon),
    )
    conn.execute(
        "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
        (site, dev, T0 - timedelta(days=1)),
    )
    rng = np.random.default_rng(seed + 1)
    step = timedelta(seconds=3600 / per_hour)
    with (
        conn.cursor() as cur,
        cur.copy(
            "COPY readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3, "
            "rh_pct, temperature_c, schema_version) FROM STDIN"
        ) as copy,
    ):
        seq = 0
        for i in range(hours):
            for k in range(per_hour):
                x = gain * ref[i] + 0.08 * rh[i] + 1.0 + rng.normal(0, 0.5)
                copy.write_row(
                    (
                        dev,
                        seq,
                        T0 + i * HOUR + k * step,
                        3600 / per_hour,
                        10,
                        sensor_model,
                        round(x, 3),
                        round(rh[i], 2),
                        round(temp[i], 2),
                        1,
                    )
                )
                seq += 1  # fmt: skip
    return dev, ref


def make_station(
    conn: psycopg.Connection[Any], ref: np.ndarray, status: str = "provisional"
) -> str:
    st = uid("ST").upper()[:20]
    upsert_station(conn, ReferenceStation(st, "Test station", "csv", 59.9323, 10.7246, ("pm25",)))
    obs = [
        ReferenceObservation("pm25", T0 + i * HOUR, float(v), status)  # type: ignore[arg-type]
        for i, v in enumerate(ref)
    ]
    import_observations(conn, st, obs, "test")
    return st


def reading_rows(conn: psycopg.Connection[Any], dev: str) -> list[tuple[Any, ...]]:
    cols = ", ".join(READING_COLUMNS)
    return conn.execute(
        f"SELECT {cols} FROM readings WHERE device_id = %s ORDER BY seq", (dev,)
    ).fetchall()


def cli(pg_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"LUFTNETT_DATABASE_URL": pg_url})


# -- versions ---------------------------------------------------------------------------------
def test_versions_are_never_overwritten(conn: psycopg.Connection[Any]) -> None:
    dev, _ = make_device(conn, 2)
    model = FLEET_DEFAULTS[("sds011", "pm25")].model
    v1 = insert_version(conn, model, pollutant="pm25", created_by="t", device_id=dev)
    v2 = insert_version(conn, model, pollutant="pm25", created_by="t", device_id=dev)
    assert v2 != v1  # the same model stored twice is two versions
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="cannot be changed"):
        conn.execute(
            "UPDATE calibration_versions SET metrics = '{\"rmse\": 0}' WHERE version_id = %s",
            (v1,),
        )
    with pytest.raises(psycopg.errors.IntegrityConstraintViolation, match="cannot be deleted"):
        conn.execute("DELETE FROM calibration_versions WHERE version_id = %s", (v1,))
    conn.execute(
        "UPDATE calibration_versions SET status = 'retired', status_reason = 'test' "
        "WHERE version_id = %s",
        (v1,),
    )
    assert get_version(conn, v1).status == "retired"
    assert get_version(conn, v1).model == model


def test_activation_from_a_date(conn: psycopg.Connection[Any]) -> None:
    dev, _ = make_device(conn, 48)
    base = FLEET_DEFAULTS[("sds011", "pm25")].model
    from dataclasses import replace

    m_a = replace(base, coefficients=(1.0, 0.5), notes="A")
    m_b = replace(base, coefficients=(-2.0, 0.6), notes="B")
    va = insert_version(conn, m_a, pollutant="pm25", created_by="t", device_id=dev)
    vb = insert_version(conn, m_b, pollutant="pm25", created_by="t", device_id=dev)
    activate(conn, va, T0, "t")
    activate(conn, vb, T0 + timedelta(days=1), "t")
    rows = reading_rows(conn, dev)
    got = {c.seq: c for c in calibrate_rows(conn, rows) if c.pollutant == "pm25"}
    assert len(got) == len(rows)
    for r in rows:
        c = got[r[1]]
        expect_v, m = (va, m_a) if r[2] < T0 + timedelta(days=1) else (vb, m_b)
        assert c.version_id == expect_v
        out = m.apply([r[READING_COLUMNS.index("pm25_ugm3")]])
        assert_allclose([c.value, c.u], [out.value[0], out.u[0]], rtol=1e-12)
    # the SQL rule agrees with the Python one
    (n_bad,) = conn.execute(
        "SELECT count(*) FROM readings r WHERE r.device_id = %s AND luftnett_active_version("
        "r.device_id, 'pm25', r.ts) <> CASE WHEN r.ts < %s THEN %s ELSE %s END",
        (dev, T0 + timedelta(days=1), va, vb),
    ).fetchone()
    assert n_bad == 0


def test_fleet_default_applies_without_colocation(conn: psycopg.Connection[Any]) -> None:
    dev, _ = make_device(conn, 2)
    ensure_fleet_defaults(conn)
    assert ensure_fleet_defaults(conn) == []  # idempotent
    rows = reading_rows(conn, dev)
    vals = [c for c in calibrate_rows(conn, rows) if c.pollutant == "pm25"]
    assert len(vals) == len(rows)
    v = get_version(conn, vals[0].version_id)
    assert v.kind == "fleet-default"
    assert v.sensor_model == "sds011"
    x = np.array([r[READING_COLUMNS.index("pm25_ugm3")] for r in rows])
    # identity with a slope uncertainty of 0.4 and s = 5: u = sqrt(25 + (0.4 x)²)
    assert_allclose([c.value for c in vals], x, rtol=1e-12)
    assert_allclose([c.u for c in vals], np.sqrt(25 + (0.4 * x) ** 2), rtol=1e-12)


# -- reprocessing -----------------------------------------------------------------------------
def stored(conn: psycopg.Connection[Any], dev: str, version: int) -> dict[int, tuple[float, float]]:
    rows = conn.execute(
        "SELECT seq, value, u FROM calibrated_values WHERE device_id = %s AND version_id = %s "
        "AND pollutant = 'pm25'",
        (dev, version),
    ).fetchall()
    return {int(s): (float(v), float(u)) for s, v, u in rows}


def test_reprocess_keeps_old_versions_and_matches_apply(conn: psycopg.Connection[Any]) -> None:
    dev, ref = make_device(conn, 24 * 6)
    st = make_station(conn, ref)
    fit1 = fit_campaign(conn, dev, st, "pm25", T0, T0 + timedelta(days=3), "mlr", "t")
    fit2 = fit_campaign(conn, dev, st, "pm25", T0 + timedelta(days=3), T0 + timedelta(days=6),
                        "linear", "t")  # fmt: skip
    activate(conn, fit1.version_id, T0, "t")
    r1 = reprocess(conn, dev, ("pm25",), chunk=200)  # small chunks: many transactions
    assert r1.readings == 24 * 6 * 6
    assert r1.versions == (fit1.version_id,)
    old = stored(conn, dev, fit1.version_id)
    assert len(old) == r1.readings

    activate(conn, fit2.version_id, T0 + timedelta(days=2), "t")
    r2 = reprocess(conn, dev, ("pm25",), chunk=500)
    assert set(r2.versions) == {fit1.version_id, fit2.version_id}
    assert stored(conn, dev, fit1.version_id) == old  # untouched ("as calibrated by v1")
    new = stored(conn, dev, fit2.version_id)
    rows = {r[1]: r for r in reading_rows(conn, dev)}
    assert set(new) == {s for s, r in rows.items() if r[2] >= T0 + timedelta(days=2)}

    # every stored value equals the model's apply() on the same inputs
    for fit, values in ((fit1, old), (fit2, new)):
        seqs = sorted(values)
        i_x, i_rh, i_t = (
            READING_COLUMNS.index(c) for c in ("pm25_ugm3", "rh_pct", "temperature_c")
        )
        out = fit.model.apply(
            [rows[s][i_x] for s in seqs],
            {"rh_pct": [rows[s][i_rh] for s in seqs],
             "temperature_c": [rows[s][i_t] for s in seqs]},
        )  # fmt: skip
        assert_allclose([values[s][0] for s in seqs], out.value, rtol=RTOL, atol=ATOL)
        assert_allclose([values[s][1] for s in seqs], out.u, rtol=RTOL, atol=ATOL)

    # an explicit version recomputes "as calibrated by version N" for all readings, idempotently
    r3 = reprocess(conn, dev, version_id=fit2.version_id)
    r4 = reprocess(conn, dev, version_id=fit2.version_id)
    assert r3.values == r4.values == r1.readings
    assert len(stored(conn, dev, fit2.version_id)) == r1.readings
    assert stored(conn, dev, fit1.version_id) == old
    # the current view shows one value per reading: v1 before day 2, v2 after
    (n_cur,) = conn.execute(
        "SELECT count(*) FROM calibrated_current WHERE device_id = %s AND pollutant = 'pm25'",
        (dev,),
    ).fetchone()
    assert n_cur == r1.readings


# -- reference data ---------------------------------------------------------------------------
def test_validated_values_mark_versions_for_refit(conn: psycopg.Connection[Any]) -> None:
    dev, ref = make_device(conn, 24 * 4)
    st = make_station(conn, ref, "provisional")
    early = fit_campaign(conn, dev, st, "pm25", T0, T0 + timedelta(days=2), "linear", "t")
    late = fit_campaign(conn, dev, st, "pm25", T0 + timedelta(days=2), T0 + timedelta(days=4),
                        "linear", "t")  # fmt: skip
    # validation replaces hours of day 3 only
    obs = [
        ReferenceObservation("pm25", T0 + (48 + i) * HOUR, float(ref[48 + i]) + 0.5, "validated")
        for i in range(24)
    ]
    res = import_observations(conn, st, obs, "test")
    assert res.newly_validated == 24
    assert res.updated == 24
    assert res.versions_marked == (late.version_id,)
    assert get_version(conn, late.version_id).status == "refit-needed"
    assert "validated" in (get_version(conn, late.version_id).status_reason or "")
    assert get_version(conn, early.version_id).status == "ok"
    # provisional values never overwrite validated ones
    prov = [ReferenceObservation("pm25", T0 + 48 * HOUR, 999.0, "provisional")]
    assert import_observations(conn, st, prov, "test").updated == 0
    (v,) = conn.execute(
        "SELECT value FROM reference_observations WHERE station_id = %s AND hour_start = %s",
        (st, T0 + 48 * HOUR),
    ).fetchone()
    assert v == pytest.approx(ref[48] + 0.5)


@pytest.fixture
def nilu_server() -> Iterator[tuple[str, list[str]]]:
    """The recorded NILU responses in tests/data/nilu, served on 127.0.0.1."""
    seen: list[str] = []

    class Handler(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            seen.append(self.path)
            if self.path.startswith("/lookup/stations"):
                name = "lookup_stations.json"
            elif self.path.startswith("/obs/historical/") and "/Kirkeveien" in self.path:
                name = "historical_kirkeveien.json"
            else:
                self.send_response(404)
                self.end_headers()
                return
            body = (NILU / name).read_bytes()
            self.send_response(200)
            self.send_header("Content-Type", "application/json; charset=utf-8")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def log_message(self, *args: Any) -> None:
            pass

    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}", seen
    server.shutdown()
    thread.join(5)
    server.server_close()


def test_nilu_recorded_responses_import(
    pg_url: str, conn: psycopg.Connection[Any], nilu_server: tuple[str, list[str]]
) -> None:
    base, seen = nilu_server
    res = cli(pg_url, "reference", "fetch", "--station", "kirkeveien", "--from", "2024-01-01",
              "--to", "2024-01-02", "--base-url", base)  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "NILU" in res.stdout  # the attribution
    assert any(p.startswith("/obs/historical/2024-01-01%2000%3A00/") for p in seen), seen
    rows = conn.execute(
        "SELECT pollutant, hour_start, value, status FROM reference_observations "
        "WHERE station_id = 'NO0083A' ORDER BY pollutant, hour_start"
    ).fetchall()
    pm = [r for r in rows if r[0] == "pm25"]
    no2 = [r for r in rows if r[0] == "no2"]
    assert len(pm) == 6
    assert len(no2) == 5  # one null value skipped; NOx is not a pollutant we store
    assert pm[0][1] == T0  # 01:00+01:00 is the hour starting 00:00 UTC
    assert [r[3] for r in pm] == ["validated"] * 4 + ["provisional"] * 2
    assert_allclose(no2[0][2], 38.2 / 1.91, rtol=1e-12)  # µg/m³ -> ppb at 20 °C
    st = conn.execute(
        "SELECT name, lat, lon, pollutants, attribution FROM reference_stations "
        "WHERE station_id = 'NO0083A'"
    ).fetchone()
    assert st[0] == "Kirkeveien"
    assert st[1] == pytest.approx(59.93233)
    assert {"pm25", "no2"} <= set(st[3])
    assert "NILU" in st[4]
    # fetching again changes nothing
    again = cli(pg_url, "reference", "fetch", "--station", "NO0083A", "--from", "2024-01-01",
                "--to", "2024-01-02", "--base-url", base)  # fmt: skip
    assert again.exit_code == 0, again.output
    assert "0 new, 0 updated" in again.stdout


def test_nilu_unreachable_is_one_line(pg_url: str) -> None:
    res = cli(pg_url, "reference", "fetch", "--station", "x", "--from", "2024-01-01", "--to",
              "2024-01-02", "--base-url", "http://127.0.0.1:9")  # fmt: skip
    assert res.exit_code == 1
    assert res.stderr.startswith("error: cannot reach the NILU API")
    assert res.stderr.count("\n") == 1


# -- CLI --------------------------------------------------------------------------------------
def test_cli_story(pg_url: str, conn: psycopg.Connection[Any], tmp_path: Path) -> None:
    dev, ref = make_device(conn, 24 * 5)
    st = uid("ST").upper()[:20]
    csv = tmp_path / "ref.csv"
    csv.write_text(
        "time,pollutant,value,unit,status\n"
        + "".join(
            f"{(T0 + i * HOUR).isoformat()},pm25,{v:.3f},µg/m³,validated\n"
            for i, v in enumerate(ref)
        )
    )
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", st, "--name",
              "CSV station", "--lat", "59.9323", "--lon", "10.7246")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert f"{len(ref)} new" in res.stdout

    res = cli(pg_url, "calibrate", "colocations", "--station", st)
    assert res.exit_code == 0, res.output
    assert dev in res.stdout  # ~5.6 m apart

    res = cli(pg_url, "calibrate", "fit", "--device", dev, "--reference", st, "--from",
              "2024-01-01", "--to", "2024-01-06", "--model", "mlr", "--by", "tester")  # fmt: skip
    assert res.exit_code == 0, res.output
    vid = int(res.stdout.split("stored calibration version ")[1].split()[0])
    v = get_version(conn, vid)
    assert v.created_by == "tester"
    assert v.metrics["n_pairs"] == 24 * 5
    assert v.metrics["rmse"] < v.metrics["raw"]["rmse"]

    res = cli(pg_url, "calibrate", "versions", "--device", dev, "--json")
    assert res.exit_code == 0, res.output
    assert json.loads(res.stdout.splitlines()[0])["version_id"] == vid
    res = cli(pg_url, "calibrate", "versions", "--device", dev)  # a table with its header
    head, row = res.stdout.splitlines()[:2]
    assert head.split()[:3] == ["id", "device", "(model)"] and "status" in head
    assert row.split()[0] == str(vid)

    res = cli(pg_url, "calibrate", "activate", str(vid), "--from", "2024-01-01", "--wait")
    assert res.exit_code == 0, res.output
    assert f"done     100.0 %  {24 * 5 * 6}/{24 * 5 * 6} readings" in res.stdout

    out = tmp_path / "report"
    res = cli(pg_url, "calibrate", "report", str(vid), "--out", str(out))
    assert res.exit_code == 0, res.output
    page = (out / "index.html").read_text()
    assert "Bland" in page
    assert "RMSE" not in page or "typical error" in page
    for png in ("scatter", "timeseries", "bland_altman", "reu_curve"):
        assert (out / f"{png}.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    res = cli(pg_url, "calibrate", "drift", "--device", dev, "--to", "2024-01-06", "--days", "5",
              "--window", "2")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert dev in res.stdout


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["calibrate", "report", "999999999", "--out", "x"],
                     "no calibration version 999999999", id="unknown-version"),
        pytest.param(["calibrate", "activate", "999999999", "--from", "2024-01-01"],
                     "no calibration version", id="activate-unknown"),
        pytest.param(["calibrate", "fit", "--device", "nobody", "--reference", "NONE", "--from",
                      "2024-01-01", "--to", "2024-01-02"], "no device 'nobody' in the database",
                     id="no-device"),
        pytest.param(["calibrate", "fit", "--device", "d", "--reference", "S", "--from",
                      "2024-01-01"], "--from and --to", id="fit-no-to"),
        pytest.param(["calibrate", "reprocess", "--device", "nobody"], "has no readings",
                     id="reprocess-no-readings"),
        pytest.param(["reference", "import", "--csv", "/nonexistent.csv", "--station", "S"],
                     "no such file: /nonexistent.csv", id="csv-missing"),
    ],
)  # fmt: skip
def test_cli_errors_are_one_line(pg_url: str, args: list[str], message: str) -> None:
    res = cli(pg_url, *args)
    assert res.exit_code == 1, res.output
    assert res.stderr.startswith("error: ")
    assert message in res.stderr
    assert res.stderr.count("\n") == 1


def test_fit_names_an_unknown_station_and_too_few_hours(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    dev, ref = make_device(conn, 6)
    res = cli(pg_url, "calibrate", "fit", "--device", dev, "--reference", "NO-SUCH-STATION",
              "--from", "2024-01-01", "--to", "2024-01-02")  # fmt: skip
    assert res.exit_code == 1
    assert "no reference station 'NO-SUCH-STATION' in the database" in res.stderr
    st = make_station(conn, ref)
    res = cli(pg_url, "calibrate", "fit", "--device", dev, "--reference", st,
              "--from", "2024-01-01", "--to", "2024-01-02")  # fmt: skip
    assert res.exit_code == 1
    assert f"{dev} and {st} share 6 complete hours" in res.stderr


def test_drift_without_comparison_data_is_not_ok(
    pg_url: str, conn: psycopg.Connection[Any]
) -> None:
    dev, _ = make_device(conn, 24 * 5, lat=-45.0, lon=-120.0)  # no neighbours or station near
    res = cli(pg_url, "calibrate", "drift", "--device", dev, "--to", "2024-01-06", "--days",
              "5", "--window", "2")  # fmt: skip
    assert res.exit_code == 0, res.output
    # other tests' stations may share a few hours, too few for either indicator
    assert res.stdout.startswith((f"{dev}: no data [", f"{dev}: unknown [")), res.stdout
    assert ": ok" not in res.stdout


def test_bad_reference_csv_names_the_line(pg_url: str, tmp_path: Path) -> None:
    csv = tmp_path / "bad.csv"
    csv.write_text("time,pollutant,value,unit\n2024-01-01T00:00:00Z,pm25,abc,µg/m³\n")
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", "X")
    assert res.exit_code == 1
    assert "bad.csv line 2" in res.stderr


# -- at ingest --------------------------------------------------------------------------------
def test_collector_writer_stores_calibrated_values(pg_url: str) -> None:
    from luftnett.collector.validate import Accepted, validate_message
    from luftnett.collector.writer import Writer
    from luftnett.contracts import mqtt as contract

    dev = uid("ing")
    readings = [
        contract.Reading(seq=i, ts=T0 + i * timedelta(minutes=1), window_s=60, n_samples=60,
                         values={"pm25_ugm3": 10.0 + i, "pm10_ugm3": 20.0 + i}, flags=[])
        for i in range(5)
    ]  # fmt: skip
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=dev,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011", serial="A160"),
            readings=readings,
        )
    )
    item = validate_message("t", contract.readings_topic("t", dev), payload)
    assert isinstance(item, Accepted)
    with psycopg.connect(pg_url) as c:
        w = Writer(c, rollups=False)
        assert w.write([item]).stored == 5
        assert w.write([item]).stored == 0  # redelivery: nothing new, no new values
        rows = c.execute(
            "SELECT pollutant, seq, value, u, version_id FROM calibrated_values "
            "WHERE device_id = %s ORDER BY pollutant, seq",
            (dev,),
        ).fetchall()
        assert len(rows) == 10  # pm10 and pm25 for each reading, fleet default for sds011
        for pol, seq, value, u, vid in rows:
            model = get_version(c, vid).model
            out = model.apply([(10.0 if pol == "pm25" else 20.0) + seq])
            assert_allclose([value, u], [out.value[0], out.u[0]], rtol=RTOL, atol=ATOL)


# -- drift on calibrated values -----------------------------------------------------------------
def test_drift_compares_calibrated_values_where_there_are_any(
    conn: psycopg.Connection[Any],
) -> None:
    from luftnett.calibration.drift_db import fleet_drift

    days = 28
    # inside the area of the other tests' sites (the dashboard test fits its map to all of
    # them), but more than 2 km (the neighbour radius) and its station nearer than theirs
    lat, lon = 59.82 + np.random.default_rng().uniform(0, 0.02), 10.45
    dev, ref = make_device(conn, 24 * days, lat=lat, lon=lon)
    st = uid("ST").upper()[:20]
    upsert_station(conn, ReferenceStation(st, "Drift station", "csv", lat, lon + 1e-4, ("pm25",)))
    import_observations(conn, st, [
        ReferenceObservation("pm25", T0 + i * HOUR, float(v), "validated")  # type: ignore[arg-type]
        for i, v in enumerate(ref)
    ], "test")  # fmt: skip
    end = T0 + timedelta(days=days)
    # raw values: a constant gain against the reference, no drift
    (raw,) = fleet_drift(conn, "pm25", T0, end, dev)
    assert raw.basis == "raw"
    assert raw.station_id == st
    assert raw.vs_reference is not None
    assert not raw.flagged, raw
    # a calibration whose values walk away from the reference (+50 % over the period): the
    # drift check now looks at them and flags the device
    model = FLEET_DEFAULTS[("sds011", "pm25")].model
    vid = insert_version(conn, model, pollutant="pm25", created_by="t", device_id=dev)
    activate(conn, vid, T0, "t")
    conn.execute(
        "INSERT INTO calibrated_values (device_id, seq, pollutant, version_id, ts, value, u) "
        "SELECT r.device_id, r.seq, 'pm25', %(v)s, r.ts, (o.value * (1 + 0.5 * "
        "extract(epoch FROM r.ts - %(t0)s) / extract(epoch FROM %(end)s - %(t0)s)))::real, 1 "
        "FROM readings r JOIN reference_observations o ON o.hour_start = date_trunc('hour', r.ts)"
        " AND o.pollutant = 'pm25' AND o.station_id = %(st)s WHERE r.device_id = %(d)s",
        {"v": vid, "t0": T0, "end": end, "d": dev, "st": st},
    )
    (cal,) = fleet_drift(conn, "pm25", T0, end, dev)
    assert cal.basis == "calibrated"
    assert cal.flagged
    assert cal.vs_reference is not None
    assert cal.vs_reference.ratio_change_pct is not None
    assert cal.vs_reference.ratio_change_pct > 30


def test_colocation_pairs_and_drift_leave_out_what_staff_invalidated(
    conn: psycopg.Connection[Any],
) -> None:
    """Ten hours of a co-located device annotated as maintenance (invalidating): the hourly
    pairs a calibration is fitted on, and the drift check's pairs, leave them out, as the
    rollups and the API do; revoking the annotation brings them back."""
    from luftnett.calibration.colocation import hourly_pairs
    from luftnett.calibration.drift_db import fleet_drift

    hours = 24 * 5
    lat = 59.86 + np.random.default_rng().uniform(0, 0.02)
    dev, ref = make_device(conn, hours, lat=lat, lon=10.45)
    st = uid("ST").upper()[:20]
    upsert_station(conn, ReferenceStation(st, "Annotated station", "csv", lat, 10.4501, ("pm25",)))
    import_observations(conn, st, [
        ReferenceObservation("pm25", T0 + i * HOUR, float(v), "validated")  # type: ignore[arg-type]
        for i, v in enumerate(ref)
    ], "test")  # fmt: skip
    end = T0 + hours * HOUR

    def counts() -> tuple[int, int]:
        pairs = hourly_pairs(conn, dev, st, "pm25", T0, end)
        (drift,) = fleet_drift(conn, "pm25", T0, end, dev)
        assert drift.vs_reference is not None
        return len(pairs), drift.vs_reference.n_pairs

    assert counts() == (hours, hours)
    (aid,) = conn.execute(
        "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, reason, "
        "created_by) VALUES (%s, %s, %s, 'maintenance', true, 'filter change', 'test') "
        "RETURNING annotation_id",
        (dev, T0 + 30 * HOUR, T0 + 40 * HOUR),
    ).fetchone() or (None,)
    assert counts() == (hours - 10, hours - 10)
    conn.execute(
        "UPDATE annotations SET revoked_at = now(), revoked_by = 'test', revoke_reason = 'x' "
        "WHERE annotation_id = %s",
        (aid,),
    )
    assert counts() == (hours, hours)
