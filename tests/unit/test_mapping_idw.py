"""IDW: exact at the data, bounded by the data, LOOCV equal to a brute-force recomputation."""

from __future__ import annotations

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.mapping.errors import MappingError
from luftnett.mapping.idw import Idw


@pytest.fixture
def data() -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(7)
    xy = rng.uniform(0, 1000, (40, 2))
    z = 10 + np.sin(xy[:, 0] / 150) * 5 + rng.normal(0, 1, 40)
    return xy, z


@pytest.mark.parametrize(
    "kwargs",
    [
        pytest.param({}, id="all"),
        pytest.param({"k": 5}, id="k5"),
        pytest.param({"radius_m": 300.0}, id="r300"),
        pytest.param({"power": 1.0, "k": 8, "radius_m": 400.0}, id="p1-k8-r400"),
    ],
)
def test_idw_exact_at_data_and_bounded(data, kwargs) -> None:
    xy, z = data
    idw = Idw(xy, z, **kwargs)
    assert_allclose(idw.predict(xy), z, rtol=0, atol=1e-12)
    grid = np.random.default_rng(1).uniform(-100, 1100, (500, 2))
    p = idw.predict(grid)
    finite = p[np.isfinite(p)]
    assert finite.size > 0
    assert finite.min() >= z.min() - 1e-12
    assert finite.max() <= z.max() + 1e-12


def test_idw_matches_formula_at_one_point(data) -> None:
    xy, z = data
    x0 = np.array([[500.0, 500.0]])
    d = np.hypot(*(xy - x0).T)
    w = d**-2.0
    assert_allclose(Idw(xy, z).predict(x0), [np.sum(w * z) / np.sum(w)], rtol=1e-12)
    near = np.argsort(d)[:3]
    w3 = d[near] ** -3.0
    assert_allclose(
        Idw(xy, z, power=3.0, k=3).predict(x0), [np.sum(w3 * z[near]) / np.sum(w3)], rtol=1e-12
    )


def test_idw_radius_without_neighbours_is_nan(data) -> None:
    xy, z = data
    p = Idw(xy, z, radius_m=10.0).predict([[5000.0, 5000.0]])
    assert np.isnan(p[0])


@pytest.mark.parametrize("kwargs", [{}, {"k": 6}, {"radius_m": 250.0}, {"k": 4, "power": 1.5}])
def test_idw_loocv_equals_brute_force(data, kwargs) -> None:
    xy, z = data
    cv = Idw(xy, z, **kwargs).loocv()
    brute = np.array(
        [
            Idw(np.delete(xy, i, axis=0), np.delete(z, i), **kwargs).predict(xy[i : i + 1])[0]
            for i in range(z.size)
        ]
    )
    assert_allclose(cv.predicted, brute, rtol=1e-12, equal_nan=True)
    err = (brute - z)[np.isfinite(brute)]
    assert cv.rmse == pytest.approx(np.sqrt(np.mean(err**2)), rel=1e-12)
    assert cv.bias == pytest.approx(np.mean(err), rel=1e-12)
    assert cv.se is None


def test_idw_rejects_bad_parameters(data) -> None:
    xy, z = data
    with pytest.raises(MappingError, match="power"):
        Idw(xy, z, power=0)
    with pytest.raises(MappingError, match="k must be"):
        Idw(xy, z, k=0)
    with pytest.raises(MappingError, match="40 locations but 39 values"):
        Idw(xy, z[:-1])
