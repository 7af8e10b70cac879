"""Metrics, GDE REU, targets, splits and the CSV reader on small hand-checked inputs."""

from __future__ import annotations

import math

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.calibration.evaluate import evaluate_model
from luftnett.calibration.fit import fit_linear
from luftnett.calibration.metrics import compute_metrics
from luftnett.calibration.split import RandomSplitWarning, train_test_split
from luftnett.calibration.table import read_table
from luftnett.calibration.targets import cen_class, check_epa, default_limit
from luftnett.calibration.uncertainty import gde_reu, reu_curve
from luftnett.errors import CalibrationError, ConfigError

# Five pairs, worked by hand (x̄ = 30, ȳ = 31.4):
#   Sxx = 1000, Syy = 1049.2, Sxy = 1020
#   b1 = (49.2 + sqrt(49.2² + 4·1020²)) / 2040 = 1.0244084
#   b0 = 31.4 − 30·b1 = 0.6677469
#   RSS = Σ (y − b0 − b1·x)² = 8.8194343
#   u² at L = 30: 8.8194343/3 + (0.6677469 + 0.0244084·30)² = 2.9398114 + 1.9600000 = 4.8998114
#   REU = 2·sqrt(4.8998114)/30 = 14.757 %
REF = [10.0, 20.0, 30.0, 40.0, 50.0]
SEN = [12.0, 19.0, 33.0, 41.0, 52.0]


def test_reu_matches_hand_computation() -> None:
    r = gde_reu(REF, SEN, limit=30.0)
    assert_allclose(r.slope, 1.0244084352, rtol=1e-9)
    assert_allclose(r.intercept, 0.6677469431, rtol=1e-9)
    assert_allclose(r.rss, 8.8194343012, rtol=1e-9)
    assert_allclose(r.bias_at_limit, 0.6677469431 + 0.0244084352 * 30, rtol=1e-9)
    assert_allclose(r.reu_pct, 14.757011793, rtol=1e-9)


def test_reu_subtracts_reference_uncertainty() -> None:
    # u(x_ref) = 0.5: u² = 2.9398114 − 0.25 + 1.96 -> REU 14.3756 %
    assert_allclose(gde_reu(REF, SEN, 30.0, u_ref=0.5).reu_pct, 14.375614281, rtol=1e-9)
    # a reference uncertainty larger than the scatter clips the random term at 0
    r = gde_reu(REF, SEN, 30.0, u_ref=10.0)
    assert r.random_var == 0.0
    assert_allclose(r.reu_pct, 200 * abs(r.bias_at_limit) / 30)


def test_reu_curve_agrees_with_point_values() -> None:
    conc = [5.0, 30.0, 60.0]
    curve = reu_curve(REF, SEN, conc)
    for c, w in zip(conc, curve, strict=True):
        assert_allclose(w, gde_reu(REF, SEN, c).reu_pct, rtol=1e-12)


def test_reu_rejects_bad_limit() -> None:
    with pytest.raises(CalibrationError, match="limit value must be > 0"):
        gde_reu(REF, SEN, 0.0)


def test_metrics_by_hand() -> None:
    m = compute_metrics(REF, SEN)
    e = np.subtract(SEN, REF)  # 2, -1, 3, 1, 2
    assert m.n == 5
    assert_allclose(m.mbe, 1.4)
    assert_allclose(m.mae, 1.8)
    assert_allclose(m.rmse, math.sqrt(np.mean(e**2)))  # sqrt(19/5)
    assert_allclose(m.ols_slope, 1.02)  # Sxy/Sxx
    assert_allclose(m.ols_intercept, 31.4 - 1.02 * 30)
    assert_allclose(m.r, 1020 / math.sqrt(1000 * 1049.2))
    assert_allclose(m.r2, m.r**2)


def test_metrics_drop_nan_pairs_and_refuse_all_nan() -> None:
    m = compute_metrics([*REF, np.nan], [*SEN, 3.0])
    assert m.n == 5
    with pytest.raises(CalibrationError, match="all values are missing"):
        compute_metrics([np.nan] * 4, [1.0] * 4)


def test_epa_pm25_targets_and_nrmse_escape() -> None:
    m = compute_metrics(REF, SEN)
    assert all(c.passed for c in check_epa(m, "pm25"))
    # RMSE 12 > 7 but NRMSE = 12/60 = 20 % ≤ 30 % still passes the error target
    ref = np.array([40.0, 50, 60, 70, 80])
    sen = ref + np.array([12.0, -12, 12, -12, 12])
    err = {c.name: c for c in check_epa(compute_metrics(ref, sen), "pm25")}["rmse"]
    assert err.passed
    o3 = {c.name: c.passed for c in check_epa(compute_metrics(ref, sen), "o3")}
    assert o3["rmse"] is False


@pytest.mark.parametrize(
    ("reu", "pollutant", "cls"),
    [(20.0, "no2", 1), (25.0, "no2", 1), (26.0, "no2", 2), (80.0, "no2", 3), (30.0, "o3", 1),
     (50.0, "pm25", 1), (99.0, "pm25", 2), (101.0, "pm10", 3)],
)  # fmt: skip
def test_cen_class_thresholds(reu: float, pollutant: str, cls: int) -> None:
    assert cen_class(reu, pollutant) == cls  # type: ignore[arg-type]


def test_default_limits() -> None:
    assert_allclose(default_limit("no2", "ppb"), 40 / 1.91)
    assert default_limit("pm25", "ugm3") == 30.0
    with pytest.raises(CalibrationError, match="not a gas"):
        default_limit("pm25", "ppb")


def test_split_is_chronological_by_default_and_random_warns() -> None:
    mask = train_test_split(10, 0.3)
    assert mask.tolist() == [True] * 3 + [False] * 7
    with pytest.warns(RandomSplitWarning, match="optimistic"):
        rnd = train_test_split(10, 0.3, "random", seed=1)
    assert rnd.sum() == 3
    with pytest.raises(CalibrationError, match="empty train or test"):
        train_test_split(2, 0.1)


def test_evaluate_model_reports_raw_and_calibrated() -> None:
    rng = np.random.default_rng(0)
    ref = rng.uniform(5, 60, 600)
    sensor = 1.5 * ref + 3 + rng.normal(0, 2, 600)
    model = fit_linear(sensor[:300], ref[:300])
    ev = evaluate_model(model, ref[300:], sensor[300:], limit=30.0, pollutant="pm25")
    assert ev.raw.rmse > 10
    assert ev.calibrated.rmse < 2
    assert 90 < ev.coverage_pct <= 100  # ±2u covers ~95 % of the errors
    d = ev.as_dict()
    assert d["epa_pass"] is True
    assert d["cen_ts_17660_class"] == 1
    assert d["reu_pct"] == pytest.approx(ev.reu.reu_pct if ev.reu else 0)


def test_read_table_handles_uci_traps() -> None:
    lines = [
        "Date;Time;NO2(GT);PT08.S4(NO2);T;;\r\n",
        "10/03/2004;18.00.00;113;1692;13,6;;\r\n",
        "10/03/2004;19.00.00;-200;1559;13,3;;\r\n",
        "10/03/2004;20.00.00;114;-200,0;11,9;;\r\n",
        "10/03/2004;21.00.00;122;1584;11,0;;\r\n",
        ";;;;;;\r\n",
        ";;;;;;\r\n",
    ]
    t = read_table(lines, ["NO2(GT)", "PT08.S4(NO2)", "T"], delimiter=";", decimal=",", na=["-200"])
    assert t.rows_read == 4
    assert t.rows_dropped == 2
    assert t.missing == {"NO2(GT)": 1, "PT08.S4(NO2)": 1, "T": 0}
    assert_allclose(t.columns["T"], [13.6, 11.0])


def test_read_table_sorts_by_time_and_names_bad_values() -> None:
    lines = ["ts,ref,s\n", "2021-01-02T00:00Z,2,20\n", "2021-01-01T00:00Z,1,10\n", ",3,30\n"]
    t = read_table(lines, ["ref", "s"], time_column="ts")
    assert t.columns["ref"].tolist() == [1.0, 2.0]
    assert t.rows_dropped == 1
    with pytest.raises(CalibrationError, match=r"line 3, column 's': 'abc' is not a number"):
        read_table(["ref,s\n", "1,2\n", "1,abc\n"], ["ref", "s"])
    with pytest.raises(ConfigError, match="no column 'x'; available: ref, s"):
        read_table(["ref,s\n", "1,2\n"], ["ref", "x"])
