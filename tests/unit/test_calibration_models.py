"""Calibration models on synthetic data whose answer is known exactly."""

from __future__ import annotations

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from numpy.testing import assert_allclose

from luftnett.calibration.fit import (
    BARKJOHN_2021,
    epa_purpleair,
    fit_kohler,
    fit_linear,
    fit_model,
    fit_multilinear,
)
from luftnett.calibration.humidity import absolute_humidity_gm3, kohler_growth
from luftnett.calibration.model import CalibrationModel, ModelMeta
from luftnett.calibration.regression import deming, ols
from luftnett.errors import CalibrationError


def _line_data(n: int = 2000, seed: int = 1) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    truth = rng.uniform(0, 50, n)
    x = truth + rng.normal(0, 1.0, n)  # equal error variance on both axes: Deming λ = 1
    y = 2.0 * truth + 1.0 + rng.normal(0, 1.0, n)
    return x, y


def test_ols_recovers_exact_line_without_noise() -> None:
    x = np.linspace(0, 10, 11)
    line = ols(x, 2 * x + 1)
    assert_allclose([line.slope, line.intercept], [2.0, 1.0], atol=1e-12)
    d = deming(x, 2 * x + 1)
    assert_allclose([d.slope, d.intercept], [2.0, 1.0], atol=1e-12)


def test_ols_and_deming_on_noisy_line() -> None:
    """y = 2x + 1 with noise on both axes: Deming stays unbiased, OLS is attenuated."""
    x, y = _line_data()
    d = deming(x, y, lam=1.0)
    assert_allclose(d.slope, 2.0, atol=0.02)  # tolerance: ~4 standard errors at n = 2000
    assert_allclose(d.intercept, 1.0, atol=0.3)
    o = ols(x, y)
    # attenuation factor var(truth)/(var(truth)+1) = 208.3/209.3 -> slope ≈ 1.990
    assert_allclose(o.slope, 2.0 * 208.33 / 209.33, atol=0.02)


def test_deming_matches_total_least_squares_eigenvector() -> None:
    """Orthogonal regression = principal axis of the 2×2 scatter matrix (closed form)."""
    x, y = _line_data(300, seed=7)
    m = np.cov(np.vstack([x, y]))
    w, v = np.linalg.eigh(m)
    axis = v[:, np.argmax(w)]
    slope = axis[1] / axis[0]
    d = deming(x, y, 1.0)
    assert_allclose(d.slope, slope, rtol=1e-10)
    assert_allclose(d.intercept, y.mean() - slope * x.mean(), rtol=1e-10)


def test_linear_fit_coefficients_and_uncertainty() -> None:
    rng = np.random.default_rng(3)
    x = rng.uniform(0, 40, 500)
    y = 0.8 * x + 2.0 + rng.normal(0, 1.5, 500)
    m = fit_linear(x, y)
    assert m.family == "linear"
    assert_allclose(m.coefficient_map["sensor"], 0.8, atol=0.02)
    assert_allclose(m.coefficient_map["intercept"], 2.0, atol=0.3)
    assert_allclose(m.residual_sd, 1.5, rtol=0.1)
    out = m.apply([0.0, 20.0, 40.0])
    # u = sqrt(parameter part + s²); parameter part is smallest at the mean of x (~20)
    assert np.all(out.u >= m.residual_sd)
    assert out.u[1] < out.u[0]
    assert out.u[1] < out.u[2]
    # the parameter part by hand at x = 40
    d = np.array([1.0, 40.0])
    assert_allclose(out.u[2] ** 2, d @ np.asarray(m.covariance) @ d + m.residual_sd**2)


def test_multilinear_with_rh_t_abs_humidity_and_cross_gas() -> None:
    rng = np.random.default_rng(5)
    n = 3000
    ref = rng.uniform(2, 60, n)
    rh = rng.uniform(20, 95, n)
    t = rng.uniform(-5, 30, n)
    o3 = rng.uniform(0, 50, n)
    ah = absolute_humidity_gm3(t, rh)
    # sensor = 1.25·ref + 0.1·RH − 0.2·T + 0.3·O3 − 0.5·AH + 4 (exact inverse is linear)
    sensor = 1.25 * ref + 0.1 * rh - 0.2 * t + 0.3 * o3 - 0.5 * ah + 4.0
    m = fit_multilinear(
        sensor, ref, {"RH": rh, "T": t, "O3": o3}, rh="RH", temperature="T", abs_humidity=True
    )
    c = m.coefficient_map
    assert m.terms == ("intercept", "sensor", "RH", "T", "O3", "ah_gm3")
    assert_allclose(c["sensor"], 0.8, rtol=1e-8)
    assert_allclose([c["RH"], c["T"], c["O3"], c["ah_gm3"]], [-0.08, 0.16, -0.24, 0.4], atol=1e-8)
    assert_allclose(m.apply(sensor, {"RH": rh, "T": t, "O3": o3}).value, ref, atol=1e-8)


def test_absolute_humidity_reference_value() -> None:
    # 20 °C, 50 % RH: e_s = 23.37 hPa -> AH = 216.7·11.69/293.15 = 8.64 g/m³
    assert_allclose(absolute_humidity_gm3(20.0, 50.0), 8.64, atol=0.02)


def test_robust_fit_ignores_outliers_that_move_ols() -> None:
    rng = np.random.default_rng(11)
    x = rng.uniform(0, 50, 400)
    y = 0.5 * x + 3.0 + rng.normal(0, 0.5, 400)
    y[:20] += 60.0  # 5 % gross outliers
    robust = fit_model("robust", x, y)
    plain = fit_model("multilinear", x, y)
    assert robust.fit_method == "huber"
    assert_allclose(robust.coefficient_map["sensor"], 0.5, atol=0.02)
    assert_allclose(robust.coefficient_map["intercept"], 3.0, atol=0.4)
    assert abs(plain.coefficient_map["intercept"] - 3.0) > 1.5


def test_epa_purpleair_coefficients() -> None:
    m = epa_purpleair("humidity_a")
    assert m.coefficient_map == {"intercept": 5.75, "sensor": 0.524, "humidity_a": -0.0862}
    assert BARKJOHN_2021 == {"intercept": 5.75, "sensor": 0.524, "rh": -0.0862}
    out = m.apply([20.0, 0.0], {"humidity_a": [50.0, 0.0]})
    assert_allclose(out.value, [0.524 * 20 - 0.0862 * 50 + 5.75, 5.75])
    assert_allclose(out.u, [3.0, 3.0])  # paper RMSE until checked on local data


def test_kohler_recovers_known_kappa() -> None:
    rng = np.random.default_rng(2)
    n = 4000
    dry = rng.uniform(2, 40, n)
    rh = rng.uniform(30, 97, n)
    sensor = 1.6 * dry * kohler_growth(rh, 0.4) + rng.normal(0, 0.3, n)
    m = fit_kohler(sensor, dry, rh, rh="RH")
    c = m.coefficient_map
    assert_allclose(c["kappa"], 0.4, atol=0.02)  # tolerance ~5 standard errors
    assert_allclose(c["slope"], 1 / 1.6, rtol=0.02)
    assert_allclose(c["intercept"], 0.0, atol=0.1)
    assert np.sqrt(m.covariance[0][0]) < 0.01
    out = m.apply(sensor, {"RH": rh})
    # the 0.3 noise is divided by 1.6·growth (≥ 1.6), so the dry-mass error stays below 0.19
    assert np.sqrt(np.mean((out.value - dry) ** 2)) < 0.3 / 1.6


def test_kohler_growth_clips_rh_below_100() -> None:
    g = kohler_growth([100.0, 120.0, 99.0], 0.5)
    assert np.all(np.isfinite(g))
    assert_allclose(g, 1 + 0.5 * 0.99 / 0.01)


def test_json_round_trip_keeps_everything_and_the_id() -> None:
    rng = np.random.default_rng(4)
    x, rh = rng.uniform(0, 30, 100), rng.uniform(20, 90, 100)
    y = 0.6 * x - 0.05 * rh + 2 + rng.normal(0, 0.5, 100)
    meta = ModelMeta("pa-1234", "µg/m³", "µg/m³ cf_1", "NILU-7", "2021-01-01T00:00:00+00:00", "x")
    for m in (
        fit_model("multilinear", x, y, {"RH": rh}, meta=meta),
        fit_model("kohler", x, y, {"RH": rh}, rh="RH", meta=meta),
        fit_model("epa-pa", x, y, {"RH": rh}, rh="RH", meta=meta),
    ):
        text = m.to_json()
        doc = json.loads(text)
        assert doc["model_id"] == m.model_id
        assert doc["reference_station"] == "NILU-7"
        assert doc["training_window"]["from"] == "2021-01-01T00:00:00+00:00"
        back = CalibrationModel.from_json(text)
        assert back == m
        assert back.model_id == m.model_id
        assert_allclose(back.apply(x, {"RH": rh}).value, m.apply(x, {"RH": rh}).value)


def test_model_id_changes_with_any_coefficient_and_tampering_is_refused() -> None:
    m = fit_linear([1.0, 2.0, 3.0, 4.0], [2.0, 4.1, 5.9, 8.0])
    doc = json.loads(m.to_json())
    doc["coefficients"]["sensor"] += 1e-9
    with pytest.raises(CalibrationError, match="does not match"):
        CalibrationModel.from_json(json.dumps(doc))
    del doc["model_id"]
    assert CalibrationModel.from_json(json.dumps(doc)).model_id != m.model_id


@pytest.mark.parametrize(
    ("text", "match"),
    [
        pytest.param("{}", "invalid calibration model JSON", id="empty-object"),
        pytest.param("not json", "invalid calibration model JSON", id="not-json"),
        pytest.param(
            '{"family": "cubic", "fit_method": "ols", "coefficients": {"a": 1}, '
            '"covariance": [[0]], "residual_sd": 1}',
            "family",
            id="unknown-family",
        ),
    ],
)
def test_bad_model_json_is_a_calibration_error(text: str, match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        CalibrationModel.from_json(text)


@pytest.mark.parametrize(
    ("sensor", "reference", "match"),
    [
        pytest.param([1.0, 2.0], [1.0, 2.0], "only 2 complete pairs", id="too-few"),
        pytest.param([np.nan] * 5, [1.0] * 5, "all values are missing", id="all-nan"),
        pytest.param([3.0] * 10, list(range(10)), "singular design", id="constant-sensor"),
        pytest.param([1.0, np.nan, 3.0, 4.0], [1.0, 2, 3, 4], "NaN", id="nan-in-fit"),
    ],
)
def test_fit_errors_are_clear(sensor: list[float], reference: list[float], match: str) -> None:
    with pytest.raises(CalibrationError, match=match):
        fit_linear(sensor, reference)


def test_collinear_covariates_are_a_singular_design() -> None:
    x = np.arange(20.0)
    with pytest.raises(CalibrationError, match="singular design"):
        fit_multilinear(x, 2 * x, {"a": x * 3 + 1})


def test_apply_names_a_missing_input() -> None:
    m = epa_purpleair("humidity_a")
    with pytest.raises(CalibrationError, match="needs input 'humidity_a'"):
        m.apply([1.0, 2.0])


def test_apply_passes_nan_through() -> None:
    m = fit_linear([1.0, 2.0, 3.0, 4.0], [2.0, 4.1, 5.9, 8.0])
    out = m.apply([np.nan, 2.0])
    assert np.isnan(out.value[0])
    assert np.isfinite(out.value[1])


_finite = st.floats(min_value=-1e3, max_value=1e3, allow_nan=False, allow_infinity=False)


@settings(max_examples=60, deadline=None)
@given(
    xs=st.lists(_finite, min_size=4, max_size=60),
    slope=st.floats(min_value=-5, max_value=5),
    noise=st.lists(st.floats(min_value=-10, max_value=10), min_size=60, max_size=60),
    model=st.sampled_from(["linear", "robust"]),
)
def test_apply_of_fit_is_finite(
    xs: list[float], slope: float, noise: list[float], model: str
) -> None:
    x = np.asarray(xs)
    y = slope * x + np.asarray(noise[: x.size])
    try:
        m = fit_model(model, x, y)  # type: ignore[arg-type]
    except CalibrationError:
        # only degenerate inputs may be refused: (nearly) constant x
        assert np.ptp(x) < 1e-6 * max(1.0, float(np.abs(x).max()))
        return
    out = m.apply(x)
    assert np.all(np.isfinite(out.value))
    assert np.all(np.isfinite(out.u))
    assert np.all(out.u >= 0)
