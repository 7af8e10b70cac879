"""Kriging: exactness, smoothing with measurement error, standard errors, LOOCV, drift."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose
from scipy.spatial.distance import cdist

from luftnett.mapping.errors import MappingError
from luftnett.mapping.kriging import Kriging, duplicate_pairs
from luftnett.mapping.variogram import VariogramModel

VGM = VariogramModel("exponential", nugget=0.0, psill=4.0, range_m=400.0)


def simulate(model: VariogramModel, xy: np.ndarray, seed: int) -> np.ndarray:
    """A zero-mean Gaussian random field with ``model``'s covariance at ``xy``."""
    c = model.covariance(cdist(xy, xy))
    chol = np.linalg.cholesky(c + 1e-10 * np.eye(len(xy)))
    return chol @ np.random.default_rng(seed).standard_normal(len(xy))


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(3)
    xy = rng.uniform(0, 1000, (50, 2))
    return xy, 20 + simulate(VGM, xy, seed=4)


@pytest.mark.parametrize("kind", ["spherical", "exponential", "gaussian"])
@pytest.mark.parametrize("trend", [False, True], ids=["ok", "uk"])
def test_exact_at_data_with_zero_sigma_and_nugget(data, kind, trend) -> None:
    xy, z = data
    vgm = VariogramModel(kind, nugget=0.0, psill=4.0, range_m=250.0)
    p = Kriging(xy, z, vgm, linear_trend=trend).predict(xy)
    assert_allclose(p.value, z, atol=1e-6)
    assert_allclose(p.se, 0.0, atol=1e-4)


def test_exact_at_data_with_nugget_but_zero_sigma(data) -> None:
    """The nugget is micro-scale variance of the true field: still exact, se 0 at the data."""
    xy, z = data
    vgm = VariogramModel("exponential", nugget=1.0, psill=3.0, range_m=400.0)
    p = Kriging(xy, z, vgm).predict(xy)
    assert_allclose(p.value, z, atol=1e-9)
    assert_allclose(p.se, 0.0, atol=1e-5)
    # a metre away the micro-scale part is unknown: se jumps to at least sqrt(nugget)
    assert np.all(Kriging(xy, z, vgm).predict(xy + 1.0).se > 1.0)


def test_sigma_smooths_and_leaves_se_at_data(data) -> None:
    xy, z = data
    sigma = np.full(z.size, 1.0)
    p = Kriging(xy, z, VGM, sigma=sigma).predict(xy)
    assert np.max(np.abs(p.value - z)) > 0.1
    assert np.all(p.se > 0.05)
    assert np.all(p.se < sigma)  # better than the observation alone
    # more error, more smoothing: the prediction moves further from the data
    p2 = Kriging(xy, z, VGM, sigma=3 * sigma).predict(xy)
    assert np.mean(np.abs(p2.value - z)) > np.mean(np.abs(p.value - z))


def test_sigma_only_on_one_point_smooths_that_point(data) -> None:
    xy, z = data
    sigma = np.zeros(z.size)
    sigma[0] = 2.0
    p = Kriging(xy, z, VGM, sigma=sigma).predict(xy)
    assert abs(p.value[0] - z[0]) > 1e-3
    assert_allclose(p.value[1:], z[1:], atol=1e-6)


def test_se_grows_with_distance_from_data() -> None:
    xy = np.array([[0.0, 0.0], [100.0, 0.0], [0.0, 100.0], [100.0, 100.0]])
    z = np.array([1.0, 2.0, 3.0, 4.0])
    k = Kriging(xy, z, VGM)
    line = np.column_stack([np.linspace(100, 3000, 30), np.full(30, 100.0)])
    se = k.predict(line).se
    assert se[0] == pytest.approx(0.0, abs=1e-4)
    assert np.all(np.diff(se) > 0)
    # far away OK tends to the sill (plus the uncertainty of the mean)
    assert se[-1] > 0.95 * np.sqrt(VGM.sill)


def test_loocv_equals_brute_force(data) -> None:
    xy, z = data
    sigma = np.random.default_rng(5).uniform(0.2, 0.8, z.size)
    for trend in (False, True):
        k = Kriging(xy, z, VGM, sigma=sigma, linear_trend=trend)
        cv = k.loocv()
        pred = np.empty(z.size)
        se = np.empty(z.size)
        for i in range(z.size):
            sub = Kriging(
                np.delete(xy, i, 0),
                np.delete(z, i),
                VGM,
                sigma=np.delete(sigma, i),
                linear_trend=trend,
            )
            p = sub.predict(xy[i : i + 1])
            pred[i] = p.value[0]
            se[i] = np.sqrt(p.se[0] ** 2 + sigma[i] ** 2)  # error of pred - observation
        assert_allclose(cv.predicted, pred, rtol=1e-9, atol=1e-9)
        assert_allclose(cv.se, se, rtol=1e-9)
        e = pred - z
        assert cv.rmse == pytest.approx(np.sqrt(np.mean(e**2)), rel=1e-9)
        assert cv.bias == pytest.approx(np.mean(e), rel=1e-9, abs=1e-12)
        assert cv.mse_std == pytest.approx(np.mean(e / se), rel=1e-9, abs=1e-12)
        assert cv.rmsse == pytest.approx(np.sqrt(np.mean((e / se) ** 2)), rel=1e-9)


def test_loocv_with_external_drift_equals_brute_force(data) -> None:
    xy, z = data
    cov = np.column_stack([np.sin(xy[:, 0] / 200.0), xy[:, 1] ** 0.5])
    k = Kriging(xy, z, VGM, covariates=cov)
    pred = [
        Kriging(np.delete(xy, i, 0), np.delete(z, i), VGM, covariates=np.delete(cov, i, 0))
        .predict(xy[i : i + 1], cov[i : i + 1])
        .value[0]
        for i in range(z.size)
    ]
    assert_allclose(k.loocv().predicted, pred, rtol=1e-9, atol=1e-9)


def _drift_field(seed: int) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Truth = 0.02 * x - 0.015 * y + a small GRF; 40 observations and a 41 x 41 grid."""
    rng = np.random.default_rng(seed)
    xy = rng.uniform(0, 1000, (40, 2))
    g = np.linspace(-100, 1100, 41)
    gx, gy = np.meshgrid(g, g)
    grid = np.column_stack([gx.ravel(), gy.ravel()])
    small = VariogramModel("exponential", nugget=0.0, psill=1.0, range_m=200.0)
    field = simulate(small, np.vstack([xy, grid]), seed=seed + 100)
    truth = 0.02 * np.vstack([xy, grid])[:, 0] - 0.015 * np.vstack([xy, grid])[:, 1] + field
    return xy, truth[:40], grid, truth[40:]


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_universal_kriging_recovers_linear_drift_better_than_ok(seed) -> None:
    xy, z, grid, truth = _drift_field(seed)
    ok = Kriging.fit(xy, z).predict(grid).value
    uk = Kriging.fit(xy, z, linear_trend=True).predict(grid).value
    rmse_ok = np.sqrt(np.mean((ok - truth) ** 2))
    rmse_uk = np.sqrt(np.mean((uk - truth) ** 2))
    assert rmse_uk < 0.85 * rmse_ok, (rmse_uk, rmse_ok)


def test_external_drift_beats_ok_on_road_like_covariate() -> None:
    rng = np.random.default_rng(11)
    xy = rng.uniform(0, 1000, (60, 2))
    g = np.linspace(0, 1000, 41)
    gx, gy = np.meshgrid(g, g)
    grid = np.column_stack([gx.ravel(), gy.ravel()])

    def road(p: np.ndarray) -> np.ndarray:  # a sharp ridge along y = 500
        return np.exp(-np.abs(p[:, 1] - 500.0) / 40.0)

    noise = VariogramModel("exponential", nugget=0.0, psill=0.5, range_m=300.0)
    field = simulate(noise, np.vstack([xy, grid]), seed=12)
    truth = 10 + 15 * road(np.vstack([xy, grid])) + field
    z, t = truth[:60], truth[60:]
    ok = Kriging.fit(xy, z).predict(grid).value
    ked = Kriging.fit(xy, z, covariates=road(xy)).predict(grid, road(grid)).value
    rmse_ok = np.sqrt(np.mean((ok - t) ** 2))
    rmse_ked = np.sqrt(np.mean((ked - t) ** 2))
    assert rmse_ked < 0.5 * rmse_ok, (rmse_ked, rmse_ok)


def test_reported_se_covers_the_truth() -> None:
    """A known field is recovered within its reported uncertainty (about 95 % in +-1.96 se)."""
    rng = np.random.default_rng(21)
    xy = rng.uniform(0, 1000, (80, 2))
    grid = rng.uniform(0, 1000, (400, 2))
    truth = simulate(VGM, np.vstack([xy, grid]), seed=22)
    sigma = np.full(80, 0.5)
    z = truth[:80] + sigma * rng.standard_normal(80)
    p = Kriging(xy, z, VGM, sigma=sigma).predict(grid)
    inside = np.abs(p.value - truth[80:]) <= 1.96 * p.se
    assert 0.88 <= inside.mean() <= 0.99


def test_duplicates_are_refused_without_sigma(data) -> None:
    xy, z = data
    xy2 = np.vstack([xy, xy[3]])
    z2 = np.append(z, z[3] + 1)
    assert duplicate_pairs(xy2) == [(3, 50)]
    with pytest.raises(MappingError, match="observations 3 and 50 share the location"):
        Kriging(xy2, z2, VGM)
    # two co-located sensors with known errors are fine: their weighted mean is used
    p = Kriging(xy2, z2, VGM, sigma=np.full(51, 0.5)).predict(xy2[3:4])
    assert z[3] < p.value[0] < z[3] + 1


def test_predict_requires_covariates_for_external_drift(data) -> None:
    xy, z = data
    k = Kriging(xy, z, VGM, covariates=xy[:, 0] ** 2)
    with pytest.raises(MappingError, match="give covariates"):
        k.predict(xy)
    with pytest.raises(MappingError, match="constant"):
        Kriging(xy, z, VGM, covariates=np.ones(z.size))


def test_fit_needs_three_points() -> None:
    with pytest.raises(MappingError, match="at least 3 points"):
        Kriging.fit([[0, 0], [1, 1]], [1.0, 2.0])
