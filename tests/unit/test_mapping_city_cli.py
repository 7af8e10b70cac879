"""``luftnett map city`` writes files that ``map interpolate`` takes, with a known truth."""

from __future__ import annotations

import csv
import io
from pathlib import Path

import numpy as np
from click.testing import CliRunner

from luftnett.cli import main


def test_city_files_feed_interpolate_and_match_the_truth(tmp_path: Path) -> None:
    res = CliRunner().invoke(
        main, ["map", "city", "--out", str(tmp_path), "--sensors", "40", "--cell", "200"]
    )
    assert res.exit_code == 0, res.stderr
    for name in ("truth", "sensors", "readings", "points", "predict", "drift"):
        assert (tmp_path / f"{name}.csv").stat().st_size > 0
    with (tmp_path / "readings.csv").open() as fh:
        rows = list(csv.DictReader(fh))
    assert len(rows) == 40 * 24 and rows[0]["ts"].endswith("Z")
    res = CliRunner().invoke(
        main,
        [
            "--log-level",
            "ERROR",
            "map",
            "interpolate",
            "--points",
            str(tmp_path / "points.csv"),
            "--method",
            "uk",
            "--predict-at",
            str(tmp_path / "predict.csv"),
        ],
    )
    assert res.exit_code == 0, res.stderr
    pred = np.genfromtxt(io.StringIO(res.stdout), delimiter=",", names=True)
    truth = np.genfromtxt(tmp_path / "truth.csv", delimiter=",", names=True)
    assert_same = np.allclose(pred["x"], truth["x"]) and np.allclose(pred["y"], truth["y"])
    assert assert_same
    rmse = float(np.sqrt(np.mean((pred["value"] - truth["no2"]) ** 2)))
    assert rmse < 0.5 * float(np.std(truth["no2"])) + 1.0


def test_city_rejects_a_bad_date(tmp_path: Path) -> None:
    res = CliRunner().invoke(main, ["map", "city", "--out", str(tmp_path), "--at", "soon"])
    assert res.exit_code == 1
    assert res.stderr.startswith("error: --at must look like")
