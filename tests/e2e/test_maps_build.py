"""``luftnett map build`` and ``map rank`` on readings stored in the real database.

Twenty sites of the synthetic city get a day of 10-minute NO2 and PM readings (the city's
truth plus noise) on a day no other test uses; the command reads them back through
deployments, maps them and ranks the example districts and receptors.
"""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import psycopg
import pytest
from click.testing import CliRunner

from luftnett.cli import main
from luftnett.contracts.units import INVALIDATING_FLAGS, ReadingFlag
from luftnett.firmware_sim.city import CITY_EPSG, SyntheticCity
from luftnett.mapping.crs import to_wgs84

pytestmark = pytest.mark.e2e

READING = """
INSERT INTO readings (device_id, seq, ts, window_s, n_samples, sensor_model, pm25_ugm3,
                      pm10_ugm3, no2_ppb, rh_pct, flags, schema_version)
VALUES (%s, %s, %s, 600, 10, 'sim', %s, %s, %s, %s, %s, 1)
"""


@pytest.fixture(scope="module")
def stored_day(pg_url: str) -> tuple[str, list[str]]:
    """A day (UTC+01) with readings at 20 sites of their own; returns (day, site ids)."""
    tag = uuid.uuid4().hex[:8]
    day0 = datetime(1995, 1, 1, tzinfo=UTC) + timedelta(days=int(tag, 16) % 9000)
    start = day0 - timedelta(hours=1)  # midnight in UTC+01
    city = SyntheticCity(seed=8)
    sensors = city.place_sensors(20, reference=0)
    lon, lat = to_wgs84([s.x_m for s in sensors], [s.y_m for s in sensors], CITY_EPSG)
    t = np.array([(start + timedelta(minutes=10 * (k + 1))).timestamp() for k in range(144)])
    shift = datetime(2024, 1, 11, 23, tzinfo=UTC).timestamp() - start.timestamp()
    truth = city.true_field(  # the city's 2024-01-12, a calm winter day with clear contrasts
        np.array([s.x_m for s in sensors])[:, None],
        np.array([s.y_m for s in sensors])[:, None],
        t[None, :] + shift,
    )
    rng = np.random.default_rng(int(tag, 16) % 2**32)
    sites = []
    with psycopg.connect(pg_url) as conn, conn.transaction():
        for i, s in enumerate(sensors):
            site, dev = f"map-{tag}-{i:02d}", f"mapdev-{tag}-{i:02d}"
            sites.append(site)
            conn.execute(
                "INSERT INTO sites (site_id, name, site_type, lat, lon) "
                "VALUES (%s, %s, %s, %s, %s)",
                (site, f"Site {i}", s.site_type, float(lat[i]), float(lon[i])),
            )
            conn.execute("INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sim')", (dev,))
            conn.execute(
                "INSERT INTO deployments (site_id, device_id, valid_from) VALUES (%s, %s, %s)",
                (site, dev, start - timedelta(days=1)),
            )
            rows = [
                (
                    dev,
                    k,
                    datetime.fromtimestamp(t[k], UTC),
                    float(truth.pm25[i, k] + rng.normal(0, 1)),
                    float(truth.pm10[i, k] + rng.normal(0, 1.5)),
                    float(truth.no2[i, k] + rng.normal(0, 2)),
                    70.0,
                    0,
                )
                for k in range(144)
            ]
            # a warming-up reading with an absurd value must be left out
            rows.append(
                (
                    dev,
                    999,
                    datetime.fromtimestamp(t[5] + 1, UTC),
                    900.0,
                    900.0,
                    900.0,
                    70.0,
                    int(ReadingFlag.WARMING_UP),
                )
            )
            conn.cursor().executemany(READING, rows)
    return f"{day0:%Y-%m-%d}", sites


def build(pg_url: str, out: Path, *args: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(
        main,
        ["--log-level", "ERROR", "map", "build", "--out", str(out), *args],
        env={"LUFTNETT_DATABASE_URL": pg_url},
    )
    return res.exit_code, res.stdout, res.stderr


@pytest.mark.parametrize("method", ["ok", "idw"])
def test_build_a_daily_map_from_the_database(
    pg_url: str, stored_day: tuple[str, list[str]], tmp_path: Path, method: str
) -> None:
    day, sites = stored_day
    code, _, err = build(
        pg_url,
        tmp_path,
        "--pollutant",
        "no2",
        "--period",
        "daily",
        "--at",
        day,
        "--method",
        method,
        "--cell",
        "200",
    )
    assert code == 0, err
    assert "loocv n=20" in err
    for name in ("grid.geojson", "layer.png", "layer.json", "ranking.json", "summary.md"):
        assert (tmp_path / name).stat().st_size > 0, name

    doc = json.loads((tmp_path / "grid.geojson").read_text())
    assert doc["type"] == "FeatureCollection"
    props = doc["properties"]
    assert props["sites_used"] == 20 and props["period"]["label"] == day
    assert props["loocv"]["n"] == 20 and props["loocv"]["rmse"] > 0
    assert isinstance(props["loocv"]["bias"], float)
    f0 = doc["features"][0]
    assert f0["geometry"]["type"] == "Polygon"
    ring = f0["geometry"]["coordinates"][0]
    assert ring[0] == ring[-1] and len(ring) == 5
    assert 10.0 < ring[0][0] < 10.4 and 59.6 < ring[0][1] < 59.9
    values = [f["properties"]["value"] for f in doc["features"]]
    assert all(isinstance(v, float) for v in values)
    assert max(values) < 100  # the flagged 900 ppb readings were left out
    if method == "ok":
        assert all(f["properties"]["se"] > 0 for f in doc["features"])
        assert props["loocv"]["rmsse"] is not None
    else:
        assert all(f["properties"]["se"] is None for f in doc["features"])

    assert (tmp_path / "layer.png").read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    layer = json.loads((tmp_path / "layer.json").read_text())
    (south, west), (north, east) = layer["bounds"]
    assert south < north and west < east
    assert layer["map"]["loocv"] == props["loocv"]

    ranking = json.loads((tmp_path / "ranking.json").read_text())
    for group in ("areas", "receptors"):
        vals = [r["value"] for r in ranking[group]]
        assert len(vals) >= 5 and vals == sorted(vals, reverse=True)
        for r in ranking[group]:
            lo, hi = r["ci95"]
            assert lo < r["value"] < hi
    assert {s["site_id"] for s in ranking["sites"]} == set(sites)
    summary = (tmp_path / "summary.md").read_text()
    assert "Hvor bør vi sette inn tiltak?" in summary and "Where to act" in summary
    assert ranking["areas"][0]["name"] in summary


def test_calibrated_values_are_read_through_the_hook(
    pg_url: str, stored_day: tuple[str, list[str]], tmp_path: Path
) -> None:
    """No calibration exists for these devices: the calibrated query runs against the real
    schema and finds nothing, which is a one-line error, not a database error."""
    day, _ = stored_day
    code, _, err = build(
        pg_url,
        tmp_path,
        "--pollutant",
        "no2",
        "--period",
        "daily",
        "--at",
        day,
        "--values",
        "calibrated",
    )
    assert code == 1, err
    assert "0 site(s) with enough no2 data" in err or "not available" in err


def test_rank_on_a_saved_map(
    pg_url: str, stored_day: tuple[str, list[str]], tmp_path: Path
) -> None:
    day, _ = stored_day
    code, _, err = build(
        pg_url,
        tmp_path / "m",
        "--pollutant",
        "no2",
        "--period",
        "daily",
        "--at",
        day,
        "--cell",
        "200",
    )
    assert code == 0, err
    from luftnett.mapping.features import example_path

    res = CliRunner().invoke(
        main,
        [
            "map",
            "rank",
            "--map",
            str(tmp_path / "m"),
            "--areas",
            str(example_path("school_catchments.geojson")),
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert res.exit_code == 0, res.stderr
    ranking = json.loads((tmp_path / "r" / "ranking.json").read_text())
    names = [a["name"] for a in ranking["areas"]]
    assert all(n.startswith("Skolekrets") for n in names)
    vals = [a["value"] for a in ranking["areas"]]
    assert vals == sorted(vals, reverse=True)
    assert "upper bound" in ranking["interval"]
    assert "## English" in res.stdout


def test_hourly_and_annual_periods(
    pg_url: str, stored_day: tuple[str, list[str]], tmp_path: Path
) -> None:
    day, _ = stored_day
    code, _, err = build(
        pg_url,
        tmp_path / "h",
        "--pollutant",
        "pm25",
        "--period",
        "hourly",
        "--at",
        f"{day}T12",
        "--method",
        "idw",
        "--cell",
        "250",
    )
    assert code == 0, err
    code, _, err = build(
        pg_url,
        tmp_path / "y",
        "--pollutant",
        "pm10",
        "--period",
        "annual",
        "--at",
        day[:4],
        "--cell",
        "250",
    )
    assert code == 1 and "a map needs at least 3" in err  # one day of a year is too little
    code, _, err = build(
        pg_url,
        tmp_path / "y",
        "--pollutant",
        "pm10",
        "--period",
        "annual",
        "--at",
        day[:4],
        "--cell",
        "250",
        "--min-coverage",
        "0",
        "--method",
        "idw",
    )
    assert code == 0, err


@pytest.mark.parametrize(
    ("args", "message"),
    [
        pytest.param(["--period", "hourly", "--at", "2020-01-01"], "needs an hour", id="hour"),
        pytest.param(["--period", "daily", "--at", "yesterday"], "--at must look like", id="at"),
        pytest.param(
            ["--period", "daily", "--at", "1970-01-02"], "a map needs at least 3", id="no-data"
        ),
        pytest.param(
            ["--period", "daily", "--at", "2020-01-01", "--statistic", "exceedances"],
            "needs --period annual",
            id="exceedances-daily",
        ),
        pytest.param(
            ["--period", "daily", "--at", "2020-01-01", "--drift", "x.csv"],
            "--drift applies to --method uk",
            id="drift-ok",
        ),
    ],
)
def test_bad_input_is_one_line_and_exit_1(
    pg_url: str, tmp_path: Path, args: list[str], message: str
) -> None:
    code, _, err = build(pg_url, tmp_path, "--pollutant", "no2", *args)
    assert code == 1
    assert err.startswith("error: ") and message in err
    assert err.count("\n") == 1


def test_staff_annotations_that_invalidate_are_not_mapped(
    pg_url: str, stored_day: tuple[str, list[str]], tmp_path: Path
) -> None:
    """Staff annotate the whole day of the first site's device (roadworks) and six hours of
    the second's (fireworks), both invalidating: the daily map leaves the first site out and
    lists it as skipped (no valid hours), and the second's hours are those
    ``readings_effective`` (the rule the rollups and the API apply) keeps. Revoking the
    annotations brings the site back."""
    from luftnett.mapping.queries import fetch_site_hours

    day, sites = stored_day
    devices = [s.replace("map-", "mapdev-", 1) for s in sites[:2]]
    day0 = datetime.fromisoformat(day).replace(tzinfo=UTC) - timedelta(hours=1)
    spans = [
        (devices[0], day0, day0 + timedelta(days=1), "roadworks"),
        (devices[1], day0 + timedelta(hours=17), day0 + timedelta(hours=23), "fireworks"),
    ]
    with psycopg.connect(pg_url) as conn:
        ids = [
            int(row[0])
            for d, a, b, kind in spans
            if (
                row := conn.execute(
                    "INSERT INTO annotations (device_id, starts_at, ends_at, kind, invalidates, "
                    "reason, created_by) VALUES (%s, %s, %s, %s, true, 'test', 'test') "
                    "RETURNING annotation_id",
                    (d, a, b, kind),
                ).fetchone()
            )
        ]
        conn.commit()
    try:
        code, _, err = build(pg_url, tmp_path / "a", "--pollutant", "no2", "--period", "daily",
                             "--at", day, "--method", "idw", "--cell", "400")  # fmt: skip
        assert code == 0, err
        props = json.loads((tmp_path / "a" / "grid.geojson").read_text())["properties"]
        assert props["sites_used"] == 19
        # the site is not left out silently: the map says why
        skipped = [s for s in props["sites_skipped"] if s["site_id"] in sites]
        assert skipped == [
            {"site_id": sites[0], "reason": "insufficient data: 0 valid hours of 24"}
        ]
        ranked = json.loads((tmp_path / "a" / "ranking.json").read_text())["sites"]
        assert {s["site_id"] for s in ranked if s["used"]} == set(sites[1:])
        assert [s["used"] for s in ranked if s["site_id"] == sites[0]] == [False]
        with psycopg.connect(pg_url) as conn:
            hours = {
                s.site_id: s
                for s in fetch_site_hours(conn, "no2", day0, day0 + timedelta(days=1))
                if s.site_id in sites[:2]
            }
            want = conn.execute(
                "SELECT count(*) FROM readings_effective WHERE device_id = %s "
                "AND effective_flags & %s = 0 AND ts >= %s AND ts < %s",
                (devices[1], int(INVALIDATING_FLAGS), day0, day0 + timedelta(days=1)),
            ).fetchone()
        assert hours[sites[0]].hour_s.size == 0  # listed, with no valid hour
        assert want == (143 - 36,)  # the 144th reading ends the day: the next day's
        assert int(hours[sites[1]].n.sum()) == 143 - 36
        assert len(hours[sites[1]].hour_s) == 24 - 6
    finally:
        with psycopg.connect(pg_url) as conn:
            conn.execute(
                "UPDATE annotations SET revoked_at = now(), revoked_by = 'test', "
                "revoke_reason = 'test over' WHERE annotation_id = ANY(%s)", (ids,))  # fmt: skip
    code, _, err = build(pg_url, tmp_path / "b", "--pollutant", "no2", "--period", "daily",
                         "--at", day, "--method", "idw", "--cell", "400")  # fmt: skip
    assert code == 0, err
    assert json.loads((tmp_path / "b" / "grid.geojson").read_text())["properties"][
        "sites_used"] == 20  # fmt: skip
