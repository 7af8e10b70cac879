"""Reproduce the anchors of the shared co-location datasets (see each SOURCE.md there).

The data are not vendored (licences); they are found through LUFTNETT_SHARED_DATA, by default
``../shared/data`` next to the repository. Tolerances: ±0.02 on RMSE-type numbers that SOURCE.md
gives to two decimals, unless stated.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from click.testing import CliRunner
from numpy.testing import assert_allclose

from luftnett.calibration.fit import epa_purpleair
from luftnett.calibration.metrics import compute_metrics
from luftnett.calibration.table import read_table
from luftnett.cli import main

REPO = Path(__file__).resolve().parents[2]
SHARED = Path(os.environ.get("LUFTNETT_SHARED_DATA", REPO.parent / "shared" / "data"))
DIEZ = SHARED / "diez2022-manchester-york"
PURPLE = SHARED / "purpleair-seus-mathieu2024"
PA_DAILY = PURPLE / "DAILY90_r0_5km_processeddata_PA_AQS_Jan2021_Aug2023_Final.csv"
UCI = SHARED / "uci-airquality-devito2008" / "AirQualityUCI.csv"

pytestmark = pytest.mark.skipif(
    not SHARED.is_dir(), reason=f"shared co-location data not found at {SHARED}"
)

UCI_ARGS = [
    "--csv", str(UCI), "--delimiter", ";", "--decimal", ",", "--na", "-200",
    "--reference", "NO2(GT)", "--sensor", "PT08.S4(NO2)",
    "--covariates", "PT08.S3(NOx),T,RH,AH", "--model", "multilinear",
    "--time", "Date", "--time-format", "%d/%m/%Y",  # file order kept within a day (stable sort)
]  # fmt: skip
PA_ARGS = [
    "--csv", str(PA_DAILY), "--reference", "conc", "--sensor", "A_B_Avg",
    "--rh", "humidity_a", "--temp", "temp_Celsius", "--time", "DAILY",
    "--split-at", "2023-01-01", "--pollutant", "pm25", "--unit", "µg/m³",
]  # fmt: skip


def _json(args: list[str]) -> dict[str, object]:
    res = CliRunner().invoke(main, ["calibrate", "evaluate", *args, "--json"])
    assert res.exit_code == 0, res.output
    doc: dict[str, object] = json.loads(res.stdout)
    return doc


def _raw(doc: dict[str, object], key: str) -> float:
    raw = doc["raw"]
    assert isinstance(raw, dict)
    return float(raw[key])


def test_diez_no2_linear_first_quarter() -> None:
    """SOURCE.md: LCS1 linear fit on the first 25 % of hours, RMSE 5.29 -> 3.64 ppb, r 0.966."""
    doc = _json(
        ["--csv", str(DIEZ / "Fig5.csv"), "--reference", "NO2", "--sensor", "LCS1",
         "--time", "Timestamp", "--train-fraction", "0.25", "--pollutant", "no2", "--unit", "ppb"]
    )  # fmt: skip
    assert doc["rows_read"] == 5184
    assert doc["rows_dropped"] == 28  # 5 156 complete pairs, as SOURCE.md
    assert doc["n_train"] + doc["n"] == 5156  # type: ignore[operator]
    assert_allclose(_raw(doc, "rmse"), 5.29, atol=0.01)
    assert_allclose(doc["rmse"], 3.64, atol=0.01)
    assert_allclose(doc["r"], 0.966, atol=0.001)
    required = {"n", "rmse", "mbe", "mae", "r", "r2", "ols_slope", "ols_intercept",
                "orthogonal_slope", "orthogonal_intercept", "reu_pct"}  # fmt: skip
    assert required <= set(doc)
    # REU at the annual LV, 40 µg/m³ = 20.9 ppb; measured 43.8 % -> CEN/TS 17660 class 2
    assert_allclose(doc["limit"], 40 / 1.91)
    assert_allclose(doc["reu_pct"], 43.8, atol=0.1)
    assert doc["cen_ts_17660_class"] == 2


def test_diez_pm_season_transfer(tmp_path: Path) -> None:
    """SOURCE.md: LCS3 fit on spring, applied to autumn: RMSE 5.93 -> 2.88, MBE 2.09 -> 0.59."""
    model = tmp_path / "lcs3.json"
    res = CliRunner().invoke(
        main,
        ["calibrate", "fit", "--csv", str(DIEZ / "Fig6_a_c.csv"), "--reference",
         "PM2.5_Fidas200", "--sensor", "LCS3", "--time", "Timestamp", "--unit", "µg/m³",
         "--reference-station", "manchester-fidas200", "--out", str(model)],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    saved = json.loads(model.read_text())
    assert saved["n_train"] == 1339
    assert saved["training_window"]["from"].startswith("2020-04-01")
    doc = _json(
        ["--csv", str(DIEZ / "Fig6b.csv"), "--reference", "PM2.5_Fidas200", "--sensor", "LCS3",
         "--model-file", str(model), "--pollutant", "pm25"]
    )  # fmt: skip
    assert doc["n"] == 1370
    assert_allclose([_raw(doc, "rmse"), _raw(doc, "mbe")], [5.93, 2.09], atol=0.01)
    assert_allclose([doc["rmse"], doc["mbe"]], [2.88, 0.59], atol=0.01)


def test_purpleair_barkjohn_on_all_days() -> None:
    """SOURCE.md: Barkjohn RMSE 2.77 (raw 7.27), MBE −1.12, slope 0.93, R² 0.76; raw r 0.871."""
    with PA_DAILY.open(newline="") as fh:
        t = read_table(fh, ["conc", "A_B_Avg", "humidity_a"])
    assert len(t) == 5666
    ref, raw, rh = t.columns["conc"], t.columns["A_B_Avg"], t.columns["humidity_a"]
    m_raw = compute_metrics(ref, raw)
    assert_allclose([m_raw.rmse, m_raw.mbe, m_raw.r], [7.27, 4.20, 0.871], atol=0.01)
    out = epa_purpleair("humidity_a").apply(raw, {"humidity_a": rh})
    m = compute_metrics(ref, out.value)
    assert_allclose([m.rmse, m.mbe, m.ols_slope, m.r2], [2.77, -1.12, 0.93, 0.76], atol=0.01)
    # the authors' own application of the same equation (hourly, then averaged): RMSE 2.76
    with (PURPLE / "Daily_Predicted_concentrations.csv").open(newline="") as fh:
        bj = read_table(fh, ["AQS_conc", "ModelBj"])
    assert_allclose(
        compute_metrics(bj.columns["AQS_conc"], bj.columns["ModelBj"]).rmse, 2.76, atol=0.01
    )


def test_purpleair_mlr_beats_barkjohn_out_of_sample() -> None:
    """SOURCE.md: fit 2021–22, test 2023 (1 630 days): MLR 2.10 vs Barkjohn 2.66 vs raw 7.74."""
    mlr = _json([*PA_ARGS, "--model", "multilinear"])
    epa = _json([*PA_ARGS, "--model", "epa-pa"])
    assert mlr["n"] == epa["n"] == 1630
    assert_allclose(_raw(mlr, "rmse"), 7.74, atol=0.01)
    assert_allclose(mlr["rmse"], 2.10, atol=0.01)
    assert_allclose(epa["rmse"], 2.66, atol=0.01)
    assert mlr["epa_pass"] is True
    assert epa["epa_pass"] is True
    kohler = _json([*PA_ARGS, "--model", "kohler"])
    assert float(kohler["rmse"]) < float(epa["rmse"])  # type: ignore[arg-type]
    kappa = kohler["model"]["coefficients"]["kappa"]  # type: ignore[index]
    assert 0.05 < kappa < 0.5  # measured 0.17: a modest hygroscopic growth


def test_uci_random_split_hides_drift() -> None:
    """SOURCE.md: chronological test RMSE 54.2 (R² −0.15, train 20.4); random ≈ half (27.3)."""
    chrono = _json([*UCI_ARGS, "--train-fraction", "0.5"])
    assert doc_window_to(chrono) == "2004-09-27"
    assert_allclose(chrono["rmse"], 54.2, atol=0.1)
    assert_allclose(chrono["r2_skill"], -0.15, atol=0.01)
    assert_allclose(chrono["model"]["fit_metrics"]["rmse"], 20.4, atol=0.05)  # type: ignore[index]
    res = CliRunner().invoke(
        main,
        [
            "calibrate",
            "evaluate",
            *UCI_ARGS,
            "--split",
            "random",
            "--train-fraction",
            "0.7",
            "--json",
        ],
    )
    assert res.exit_code == 0, res.output
    assert "warning: random train/test split" in res.stderr
    rnd = json.loads(res.stdout)
    ratio = float(rnd["rmse"]) / float(chrono["rmse"])  # type: ignore[arg-type]
    assert 0.4 < ratio < 0.6  # measured 26.1 / 54.2 = 0.48 (seed 0)


def doc_window_to(doc: dict[str, object]) -> str:
    model = doc["model"]
    assert isinstance(model, dict)
    return str(model["training_window"]["to"])[:10]


def test_human_readable_table() -> None:
    res = CliRunner().invoke(
        main,
        ["calibrate", "evaluate", "--csv", str(DIEZ / "Fig5.csv"), "--reference", "NO2",
         "--sensor", "LCS1", "--time", "Timestamp", "--train-fraction", "0.25", "--limit", "20.94"],
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    out = res.stdout
    assert "rows: 5184 read, 28 dropped (missing: NO2 4, LCS1 24)" in out
    assert "RMSE" in out
    assert "REU at L = 20.94: 43.8 %" in out
    rmse_row = next(line for line in out.splitlines() if line.startswith("RMSE"))
    assert rmse_row.split()[1:] == ["5.29", "3.64"]


def test_uci_needs_its_format_options() -> None:
    res = CliRunner().invoke(
        main,
        ["calibrate", "evaluate", "--csv", str(UCI), "--delimiter", ";",
         "--reference", "NO2(GT)", "--sensor", "T"],
    )  # fmt: skip
    assert res.exit_code == 1
    assert "'13,6' is not a number" in res.stderr
    assert "Traceback" not in res.output
