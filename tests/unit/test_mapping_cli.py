"""``luftnett map interpolate`` through the real entry point, with files in tmp_path."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from luftnett.cli import main
from luftnett.mapping.idw import Idw
from luftnett.mapping.kriging import Kriging


def write(path: Path, header: str, rows: list[tuple[float, ...]]) -> Path:
    path.write_text(header + "\n" + "".join(",".join(map(str, r)) + "\n" for r in rows))
    return path


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    rng = np.random.default_rng(42)
    xy = rng.uniform(0, 1000, (25, 2)).round(1)
    road = np.exp(-np.abs(xy[:, 1] - 500) / 100)
    z = (10 + 8 * road + rng.normal(0, 0.5, 25)).round(3)
    at = [(100.0, 100.0), (500.0, 500.0), (xy[0, 0], xy[0, 1])]
    g = np.arange(-50.0, 1051.0, 50.0)
    grid = [(x, y, float(np.exp(-abs(y - 500) / 100))) for x in g for y in g]
    return {
        "points": write(
            tmp_path / "pts.csv", "x,y,value", [(*p, v) for p, v in zip(xy, z, strict=True)]
        ),
        "sigma": write(
            tmp_path / "pts_sigma.csv",
            "x,y,value,sigma",
            [(*p, v, 0.5) for p, v in zip(xy, z, strict=True)],
        ),
        "points_drift": write(
            tmp_path / "pts_drift.csv",
            "x,y,value,drift",
            [(*p, v, d) for p, v, d in zip(xy, z, road, strict=True)],
        ),
        "at": write(tmp_path / "at.csv", "x,y", at),
        "at_drift": write(
            tmp_path / "at_drift.csv",
            "x,y,drift",
            [(x, y, float(np.exp(-abs(y - 500) / 100))) for x, y in at],
        ),
        "grid": write(tmp_path / "roads.csv", "x,y,drift", grid),
    }


def run(*args: str | Path) -> tuple[int, str, str]:
    res = CliRunner().invoke(main, ["map", "interpolate", *map(str, args)])
    return res.exit_code, res.stdout, res.stderr


def table(text: str) -> dict[str, np.ndarray]:
    rows = list(csv.DictReader(io.StringIO(text)))
    return {k: np.array([float(r[k]) if r[k] else np.nan for r in rows]) for k in rows[0]}


def test_ok_writes_csv_and_loocv(files) -> None:
    code, out, err = run("--points", files["points"], "--method", "ok", "--predict-at", files["at"])
    assert code == 0, err
    assert out.splitlines()[0] == "x,y,value,se"
    t = table(out)
    assert t["x"].tolist() == [100.0, 500.0, pytest.approx(t["x"][2])]
    # the third location is an observation: exact there, se 0
    z0 = float(files["points"].read_text().splitlines()[1].split(",")[2])
    assert t["value"][2] == pytest.approx(z0, abs=1e-6)
    assert t["se"][2] == pytest.approx(0.0, abs=1e-4)
    assert np.all(t["se"][:2] > 0)
    assert "loocv n=25 rmse=" in err
    assert "bias=" in err
    assert "variogram=exponential" in err


def test_ok_matches_the_library(files) -> None:
    code, out, _ = run(
        "--points",
        files["sigma"],
        "--method",
        "ok",
        "--predict-at",
        files["at"],
        "--model",
        "spherical",
    )
    assert code == 0
    data = np.loadtxt(files["sigma"], delimiter=",", skiprows=1)
    at = np.loadtxt(files["at"], delimiter=",", skiprows=1)
    p = Kriging.fit(data[:, :2], data[:, 2], sigma=data[:, 3], model="spherical").predict(at)
    t = table(out)
    assert_allclose(t["value"], p.value, rtol=1e-8)
    assert_allclose(t["se"], p.se, rtol=1e-8)
    assert abs(t["value"][2] - data[0, 2]) > 1e-4  # sigma > 0: smooths


def test_idw_has_empty_se(files) -> None:
    code, out, err = run(
        "--points",
        files["points"],
        "--method",
        "idw",
        "--predict-at",
        files["at"],
        "--power",
        "3",
        "--neighbours",
        "5",
    )
    assert code == 0, err
    assert all(line.endswith(",") for line in out.splitlines()[1:])
    data = np.loadtxt(files["points"], delimiter=",", skiprows=1)
    at = np.loadtxt(files["at"], delimiter=",", skiprows=1)
    assert_allclose(
        table(out)["value"], Idw(data[:, :2], data[:, 2], 3.0, 5).predict(at), rtol=1e-8
    )
    assert "idw power=3 k=5" in err
    assert "loocv n=25" in err
    assert "mse_std" not in err


@pytest.mark.parametrize(
    ("points", "at", "extra", "says"),
    [
        pytest.param("points", "at", [], "drift=x,y", id="linear-trend"),
        pytest.param("points", "at", ["--drift", "grid"], "drift=grid", id="drift-grid"),
        pytest.param("points_drift", "at_drift", [], "drift=column", id="drift-column"),
    ],
)
def test_uk_drift_sources(files, points, at, extra, says) -> None:
    extra = [files.get(e, e) for e in extra]
    code, out, err = run(
        "--points", files[points], "--method", "uk", "--predict-at", files[at], *extra
    )
    assert code == 0, err
    assert says in err
    t = table(out)
    assert np.all(np.isfinite(t["value"]))
    assert np.all(t["se"] >= 0)


def test_drift_grid_and_column_agree(files) -> None:
    """Bilinear sampling of the grid at the points reproduces the column to grid accuracy."""
    _, grid_out, _ = run(
        "--points",
        files["points"],
        "--method",
        "uk",
        "--drift",
        files["grid"],
        "--predict-at",
        files["at"],
    )
    _, col_out, _ = run(
        "--points", files["points_drift"], "--method", "uk", "--predict-at", files["at_drift"]
    )
    assert_allclose(table(grid_out)["value"], table(col_out)["value"], atol=0.5)


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        pytest.param("x,value\n1,2\n", [], "missing column(s) y (found: x, value)", id="missing"),
        pytest.param("a,b\n1,2\n", [], "missing column(s) x, y, value", id="missing-all"),
        pytest.param("", [], "empty file", id="empty"),
        pytest.param(
            "x,y,value\n1,2,3\n4,5,abc\n",
            [],
            "line 3: column value is not a number ('abc')",
            id="non-numeric",
        ),
        pytest.param(
            "x,y,value\n1,2,3\n4,5,nan\n6,7,8\n",
            [],
            "line 3: column value must be finite",
            id="nan",
        ),
        pytest.param(
            "x,y,value\n1,2,3\n4,5\n", [], "line 3: 2 fields, but the header has 3", id="ragged"
        ),
        pytest.param(
            "x,y,value\n1,2,3\n4,5,6\n", [], "at least 3 points are needed (got 2)", id="two-points"
        ),
        pytest.param(
            "x,y,value\n1,2,3\n4,5,6\n1,2,7\n9,9,1\n",
            [],
            "data rows 1 and 3 share the location (1, 2)",
            id="duplicate",
        ),
        pytest.param(
            "x,y,value,sigma\n1,2,3,-1\n4,5,6,1\n7,7,7,1\n",
            [],
            "sigma must be >= 0",
            id="negative-sigma",
        ),
        pytest.param(
            "x,y,value\n1,2,3\n4,5,6\n7,7,7\n",
            ["--power", "2"],
            "apply to --method idw only",
            id="power-for-ok",
        ),
    ],
)
def test_bad_input_is_one_line_exit_1(tmp_path, files, content, args, message) -> None:
    bad = tmp_path / "bad.csv"
    bad.write_text(content)
    code, out, err = run("--points", bad, "--method", "ok", "--predict-at", files["at"], *args)
    assert code == 1
    assert out == ""
    assert err.count("\n") == 1, err
    assert err.startswith("error: ")
    assert message in err
    assert "Traceback" not in err


def test_duplicates_are_fine_for_idw(tmp_path, files) -> None:
    pts = write(tmp_path / "dup.csv", "x,y,value", [(1, 2, 3), (1, 2, 5), (9, 9, 1)])
    code, out, _ = run("--points", pts, "--method", "idw", "--predict-at", files["at"])
    assert code == 0
    at = write(tmp_path / "at1.csv", "x,y", [(1, 2)])
    _, out, _ = run("--points", pts, "--method", "idw", "--predict-at", at)
    assert table(out)["value"][0] == pytest.approx(4.0)


@pytest.mark.parametrize(
    ("method", "points", "at", "drift", "message"),
    [
        pytest.param("ok", "points", "at", "grid", "--drift applies to --method uk only", id="ok"),
        pytest.param("uk", "points", "at", "nope", "nope.csv: cannot read", id="no-file"),
        pytest.param("uk", "points", "far", "grid", "outside the drift grid", id="outside"),
        pytest.param(
            "uk", "points_drift", "at", None, "needs one too (missing: drift)", id="one-side"
        ),
        pytest.param(
            "uk", "points_drift", "at", "grid", "has a drift column and a drift grid", id="both"
        ),
        pytest.param("uk", "points", "at", "points", "missing column(s) drift", id="not-a-grid"),
    ],
)
def test_drift_errors(tmp_path, files, method, points, at, drift, message) -> None:
    files = {**files, "far": write(tmp_path / "far.csv", "x,y", [(5000.0, 5000.0)])}
    files["nope"] = tmp_path / "nope.csv"
    args = ["--points", files[points], "--method", method, "--predict-at", files[at]]
    if drift is not None:
        args += ["--drift", files[drift]]
    code, _, err = run(*args)
    assert code == 1, err
    assert message in err
    assert err.count("\n") == 1


def test_help_has_an_example() -> None:
    res = CliRunner().invoke(main, ["map", "interpolate", "--help"])
    assert res.exit_code == 0
    assert "Example:" in res.output
