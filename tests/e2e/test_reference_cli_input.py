"""`luftnett reference import` on a real database: Excel-style files, skipped values reported,
repeated hours collapsed, and counts that add up."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from luftnett.calibration.reference import ReferenceObservation, ReferenceStation
from luftnett.calibration.store import import_observations, upsert_station
from luftnett.cli import main

T0 = datetime(2024, 1, 1, tzinfo=UTC)
HOUR = timedelta(hours=1)


@pytest.fixture
def conn(pg_url: str) -> Iterator[psycopg.Connection[Any]]:
    with psycopg.connect(pg_url, autocommit=True) as c:
        yield c


def _station() -> str:
    return f"ST-{uuid.uuid4().hex[:10]}".upper()


def cli(pg_url: str, *args: str) -> Any:
    return CliRunner().invoke(main, list(args), env={"LUFTNETT_DATABASE_URL": pg_url})


def test_a_semicolon_file_with_decimal_commas_imports(
    pg_url: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    st = _station()
    csv = tmp_path / "excel.csv"
    csv.write_text(
        "time;pollutant;value;unit;status\n"
        "2024-01-01T00:00:00Z;pm25;5,5;µg/m³;validated\n"
        "2024-01-01T01:00:00Z;pm25;NaN;µg/m³;validated\n"
        "2024-01-01T02:00:00Z;pm25;6;µg/m³;validated\n"
        "2024-01-01T02:00:00Z;pm25;6;µg/m³;validated\n"
        "2024-01-01T03:00:00Z;pm25;-0,5;µg/m³;validated\n",
        encoding="utf-8-sig",
    )
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", st, "--name", "X",
              "--lat", "59.9", "--lon", "10.7")  # fmt: skip
    assert res.exit_code == 1
    assert "try --delimiter ';'" in res.stderr
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", st, "--name", "X",
              "--lat", "59.9", "--lon", "10.7", "--delimiter", ";", "--decimal", ",")  # fmt: skip
    assert res.exit_code == 1
    assert "1 value(s) outside the plausible range, line(s) 6 (pm25 -0,5 µg/m³)" in res.stderr
    assert conn.execute(
        "SELECT count(*) FROM reference_observations WHERE station_id = %s", (st,)
    ).fetchone() == (0,)  # nothing imported
    csv.write_text(csv.read_text(encoding="utf-8-sig").replace("-0,5", "0,5"))
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", st, "--name", "X",
              "--lat", "59.9", "--lon", "10.7", "--delimiter", ";", "--decimal", ",")  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "skipped 1 value: value is NaN (not a number) (line 3)" in res.stderr
    assert "skipped 1 value: same hour again with the same value (kept once) (line 5)" in res.stderr
    assert f"{st}: 3 values read, 3 new, 0 updated, 0 unchanged" in res.stdout
    rows = conn.execute(
        "SELECT value FROM reference_observations WHERE station_id = %s ORDER BY hour_start", (st,)
    ).fetchall()
    assert [r[0] for r in rows] == [5.5, 6.0, 0.5]
    assert conn.execute(
        "SELECT lat, lon FROM reference_stations WHERE station_id = %s", (st,)
    ).fetchone() == (pytest.approx(59.9), pytest.approx(10.7))


def test_two_values_for_one_hour_import_nothing(
    pg_url: str, conn: psycopg.Connection[Any], tmp_path: Path
) -> None:
    st = _station()
    csv = tmp_path / "dup.csv"
    csv.write_text(
        "time,pollutant,value,unit\n"
        "2024-01-01T00:00:00Z,pm25,5,µg/m³\n"
        "2024-01-01T00:00:00Z,pm25,6,µg/m³\n"
    )
    res = cli(pg_url, "reference", "import", "--csv", str(csv), "--station", st, "--name", "X")
    assert res.exit_code == 1
    assert f"station {st} pm25 hour 2024-01-01 00:00Z on lines 2 (5) and 3 (6)" in res.stderr
    assert res.stderr.count("\n") == 1
    assert conn.execute(
        "SELECT count(*) FROM reference_observations WHERE station_id = %s", (st,)
    ).fetchone() == (0,)


def test_import_counts_add_up_with_repeated_hours(conn: psycopg.Connection[Any]) -> None:
    """NILU pieces can repeat a boundary hour: one value is kept and the counts say so."""
    st = _station()
    upsert_station(conn, ReferenceStation(st, "X", "test", 59.9, 10.7, ("pm25",)))
    obs = [
        ReferenceObservation("pm25", T0, 5.0, "provisional"),
        ReferenceObservation("pm25", T0 + HOUR, 6.0, "provisional"),
        ReferenceObservation("pm25", T0 + HOUR, 6.0, "provisional"),
    ]
    res = import_observations(conn, st, obs, "test")
    assert (res.received, res.duplicates, res.inserted, res.updated, res.unchanged) == (
        3, 1, 2, 0, 0,
    )  # fmt: skip
    res = import_observations(conn, st, obs, "test")
    assert res.received - res.duplicates == res.inserted + res.updated + res.unchanged == 2
