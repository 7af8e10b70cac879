"""`luftnett reference import/fetch`: bad input is one line (or a usage error) before the
database is touched; the reference CSV refuses impossible values and conflicting hours and
reports what it skips."""

from __future__ import annotations

import io
from pathlib import Path

import pytest
from click.testing import CliRunner

from luftnett.calibration.reference import (
    NiluClient,
    ParseStats,
    ReferenceDataError,
    read_reference_csv,
)
from luftnett.cli import main

HEADER = "time,pollutant,value,unit,status\n"
GOOD = "2024-01-01T00:00:00Z,pm25,5,µg/m³,validated\n"


def _import(csv: Path, *extra: str) -> tuple[int, str, str]:
    res = CliRunner().invoke(
        main, ["reference", "import", "--csv", str(csv), "--station", "NO0083A", *extra]
    )
    return res.exit_code, res.stdout, res.stderr


def _one_line(err: str) -> None:
    assert err.startswith("error: "), err
    assert err.count("\n") == 1, err
    assert "Traceback" not in err


@pytest.mark.parametrize(
    ("encoding", "says"),
    [
        pytest.param("utf-16", "looks like UTF-16", id="utf-16"),
        pytest.param("latin-1", "iconv -f LATIN1", id="latin-1"),
    ],
)
def test_a_file_not_in_utf8_is_one_line(tmp_path: Path, encoding: str, says: str) -> None:
    csv = tmp_path / "ref.csv"
    csv.write_bytes((HEADER + GOOD).encode(encoding))
    code, _, err = _import(csv)
    assert code == 1
    _one_line(err)
    assert "ref.csv is not UTF-8 text" in err
    assert says in err


def test_a_directory_is_named_as_such(tmp_path: Path) -> None:
    code, _, err = _import(tmp_path)
    assert code == 1
    _one_line(err)
    assert f"{tmp_path} is a directory" in err


@pytest.mark.parametrize(
    ("args", "says"),
    [
        pytest.param(["--name", "X", "--lat", "95", "--lon", "10"], "'--lat'", id="lat-95"),
        pytest.param(["--name", "X", "--lat", "59", "--lon", "190"], "'--lon'", id="lon-190"),
        pytest.param(["--name", "X", "--lat", "59"], "--lat and --lon together", id="no-lon"),
        pytest.param(["--name", "X", "--lon", "10"], "--lat and --lon together", id="no-lat"),
        pytest.param(["--lat", "59", "--lon", "10"], "give --name too", id="no-name"),
        pytest.param(["--delimiter", ";;"], "single characters", id="delimiter"),
    ],
)
def test_station_position_and_format_are_usage_errors(
    tmp_path: Path, args: list[str], says: str
) -> None:
    csv = tmp_path / "ref.csv"
    csv.write_text(HEADER + GOOD)
    code, _, err = _import(csv, *args)
    assert code == 2, err
    assert says in err
    assert "Traceback" not in err


def test_a_semicolon_file_gets_the_delimiter_hint(tmp_path: Path) -> None:
    csv = tmp_path / "excel.csv"
    csv.write_text("time;pollutant;value;unit;status\n2024-01-01T00:00:00Z;pm25;5,5;µg/m³;\n")
    code, _, err = _import(csv)
    assert code == 1
    _one_line(err)
    assert "missing column(s)" in err
    assert "try --delimiter ';'" in err
    assert "--decimal ','" in err


def test_semicolon_and_decimal_comma_are_read() -> None:
    text = "time;pollutant;value;unit\n2024-01-01T00:00:00Z;pm25;5,5;µg/m³\n"
    obs = read_reference_csv(io.StringIO(text), "r.csv", delimiter=";", decimal=",")
    assert [o.value for o in obs] == [5.5]


def test_a_decimal_comma_in_a_comma_file_says_so() -> None:
    text = 'time,pollutant,value,unit\n2024-01-01T00:00:00Z,pm25,"5,5",ugm3\n'
    with pytest.raises(ReferenceDataError, match="--decimal ','"):
        read_reference_csv(io.StringIO(text), "r.csv")


def test_out_of_range_values_refuse_the_file_with_count_and_lines() -> None:
    """The QC ranges (collector/qc.py RANGES): PM2.5 0–1000 µg/m³, NO2 −20–2000 ppb."""
    rows = [
        "2024-01-01T00:00:00Z,pm25,-3,µg/m³,validated",  # line 2
        "2024-01-01T01:00:00Z,pm25,1e9,µg/m³,validated",  # line 3
        "2024-01-01T02:00:00Z,pm25,7,µg/m³,validated",  # line 4: fine
        "2024-01-01T03:00:00Z,pm25,inf,µg/m³,validated",  # line 5
        "2024-01-01T04:00:00Z,no2,-10,ppb,",  # line 6: within the NO2 tolerance
        "2024-01-01T05:00:00Z,no2,-60,µg/m³,",  # line 7: -31 ppb
        "2024-01-01T06:00:00Z,o3,-inf,ppb,",  # line 8: O3 has no range, but not infinite
        "2024-01-01T06:00:00Z,pm10,2001,ug/m3,",  # line 9
    ]
    with pytest.raises(ReferenceDataError) as err:
        read_reference_csv(io.StringIO(HEADER + "\n".join(rows) + "\n"), "r.csv")
    msg = str(err.value)
    assert "r.csv: 6 value(s) outside the plausible range" in msg
    assert "2 (pm25 -3 µg/m³), 3 (pm25 1e9 µg/m³), 5 (pm25 inf µg/m³), 7 (no2 -60" in msg
    assert "8 (o3 -inf ppb) and 1 more;" in msg  # the first five lines are named
    assert "pm25 0 to 1000 µg/m³" in msg
    assert "nothing imported" in msg


def test_nan_and_empty_values_are_skipped_and_reported() -> None:
    rows = [
        "2024-01-01T00:00:00Z,pm25,5,µg/m³,validated",
        "2024-01-01T01:00:00Z,pm25,nan,µg/m³,validated",
        "2024-01-01T02:00:00Z,pm25,NaN,µg/m³,validated",
        "2024-01-01T03:00:00Z,pm25,,µg/m³,validated",
    ]
    stats = ParseStats()
    obs = read_reference_csv(io.StringIO(HEADER + "\n".join(rows) + "\n"), "r.csv", stats=stats)
    assert len(obs) == 1
    assert stats.kept == 1
    assert stats.describe() == [
        "skipped 2 values: value is NaN (not a number) (lines 3, 4)",
        "skipped 1 value: empty value (line 5)",
    ]


def test_nan_rows_are_reported_by_the_cli(tmp_path: Path) -> None:
    """The report goes to stderr before the database is asked for (no database here)."""
    csv = tmp_path / "ref.csv"
    csv.write_text(HEADER + GOOD + "2024-01-01T01:00:00Z,pm25,nan,µg/m³,validated\n")
    res = CliRunner().invoke(
        main,
        ["reference", "import", "--csv", str(csv), "--station", "S"],
        env={"LUFTNETT_DATABASE_URL": "postgresql://nobody@127.0.0.1:9/none"},
    )
    assert "skipped 1 value: value is NaN (not a number) (line 3)" in res.stderr


def test_one_hour_with_two_values_is_an_error_naming_it() -> None:
    rows = [
        "2024-01-01T00:00:00Z,pm25,5,µg/m³,validated",
        "2024-01-01T00:00:00Z,pm25,6,µg/m³,validated",
    ]
    with pytest.raises(ReferenceDataError) as err:
        read_reference_csv(io.StringIO(HEADER + "\n".join(rows) + "\n"), "r.csv", station="NO0083A")
    msg = str(err.value)
    assert "1 hour(s) given twice with different values" in msg
    assert "station NO0083A pm25 hour 2024-01-01 00:00Z on lines 2 (5) and 3 (6)" in msg


def test_repeated_hours_are_collapsed_with_a_note() -> None:
    rows = [
        "2024-01-01T00:00:00Z,pm25,5,µg/m³,validated",
        "2024-01-01T00:00:00Z,pm25,5,µg/m³,validated",  # the same again
        "2024-01-01T01:00:00Z,pm25,4,µg/m³,provisional",
        "2024-01-01T01:00:00Z,pm25,4.5,µg/m³,validated",  # validated wins, as on import
        "2024-01-01T02:00:00Z,pm25,3,µg/m³,validated",
        "2024-01-01T02:00:00Z,pm25,9,µg/m³,provisional",  # ... in either order
    ]
    stats = ParseStats()
    obs = read_reference_csv(io.StringIO(HEADER + "\n".join(rows) + "\n"), "r.csv", stats=stats)
    assert [(o.value, o.status) for o in obs] == [
        (5.0, "validated"),
        (4.5, "validated"),
        (3.0, "validated"),
    ]
    assert stats.describe() == [
        "skipped 1 value: same hour again with the same value (kept once) (line 3)",
        "skipped 2 values: same hour given provisional and validated (validated kept) (lines 5, 7)",
    ]


def test_fetch_refuses_a_base_url_that_is_not_http() -> None:
    res = CliRunner().invoke(
        main,
        ["reference", "fetch", "--station", "Kirkeveien", "--from", "2024-01-01", "--to",
         "2024-01-02", "--base-url", "not-a-url"],
    )  # fmt: skip
    assert res.exit_code == 2, res.output
    assert "'not-a-url' is not an http:// or https:// URL" in res.stderr
    assert "Traceback" not in res.output
    with pytest.raises(ReferenceDataError, match="http:// or https://"):
        NiluClient("ftp://api.nilu.no")
