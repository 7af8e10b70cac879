"""CRS helpers, regular grids and their GeoJSON, and drift grids."""

from __future__ import annotations

import json

import numpy as np
import pytest
from numpy.testing import assert_allclose
from pyproj import Geod

from luftnett.mapping.crs import metric_epsg_for, to_metric, to_wgs84
from luftnett.mapping.drift import DriftGrid
from luftnett.mapping.errors import MappingError
from luftnett.mapping.grid import RegularGrid, write_geojson

OSLO = (10.75, 59.91)  # lon, lat


@pytest.mark.parametrize("epsg", [25832, 25833])
def test_oslo_round_trip(epsg) -> None:
    x, y = to_metric(*OSLO, epsg=epsg)
    lon, lat = to_wgs84(x, y, epsg=epsg)
    assert_allclose([lon, lat], OSLO, atol=1e-6)


def test_oslo_in_zone_32_is_where_it_should_be() -> None:
    """Oslo in ETRS89 / UTM 32N is about 598 km east, 6643 km north (always_xy order)."""
    x, y = to_metric(*OSLO, epsg=25832)
    assert 597_000 < x < 599_000
    assert 6_642_000 < y < 6_643_500
    assert metric_epsg_for(OSLO[0]) == 25832
    assert metric_epsg_for(15.0) == 25833


def test_arrays_and_bad_crs() -> None:
    lon = np.array([5.3, 10.75, 18.95])
    lat = np.array([60.39, 59.91, 69.65])
    x, y = to_metric(lon, lat, 25833)
    assert x.shape == (3,)
    assert_allclose(np.column_stack(to_wgs84(x, y, 25833)), np.column_stack([lon, lat]), atol=1e-6)
    with pytest.raises(MappingError, match="EPSG:3857"):
        to_metric(10, 60, epsg=3857)


def test_grid_from_bbox_and_centres() -> None:
    g = RegularGrid.from_bbox(0, 0, 1000, 450, 100)
    assert (g.nx, g.ny) == (10, 5)
    c = g.centres()
    assert c.shape == (50, 2)
    assert_allclose(c[0], [50, 50])
    assert_allclose(c[1], [150, 50])  # row-major: x varies fastest
    assert_allclose(c[-1], [950, 450])
    with pytest.raises(MappingError, match="xmin < xmax"):
        RegularGrid.from_bbox(0, 0, 0, 10, 1)
    with pytest.raises(MappingError, match="larger cells"):
        RegularGrid.from_bbox(0, 0, 1e6, 1e6, 1)


def test_geojson_cells_in_wgs84(tmp_path) -> None:
    x0, y0 = to_metric(*OSLO, epsg=25833)
    g = RegularGrid(float(x0), float(y0), 250.0, nx=3, ny=2, epsg=25833)  # zone 33, off-centre
    value = np.arange(6.0)
    se = np.full(6, 0.5)
    se[4] = np.nan
    doc = g.to_geojson(value, se, extra={"loocv": {"rmse": 1.0}})
    assert doc["type"] == "FeatureCollection"
    assert doc["loocv"] == {"rmse": 1.0}
    assert len(doc["features"]) == 6
    f0 = doc["features"][0]
    ring = f0["geometry"]["coordinates"][0]
    assert f0["geometry"]["type"] == "Polygon"
    assert len(ring) == 5
    assert ring[0] == ring[-1]
    assert ring[0] == pytest.approx(list(OSLO), abs=1e-6)  # south-west corner of the grid
    # on the ellipsoid each cell is 250 m x 250 m (to the UTM scale factor, 0.9996..1.0004),
    # and pyproj.Geod gives a positive area for a counter-clockwise ring (RFC 7946)
    lons, lats = np.array(ring).T
    area, perimeter = Geod(ellps="GRS80").polygon_area_perimeter(lons, lats)
    assert area == pytest.approx(250.0**2, rel=2e-3)
    assert perimeter == pytest.approx(1000.0, rel=1e-3)
    props = [f["properties"] for f in doc["features"]]
    assert [p["value"] for p in props] == value.tolist()
    assert props[4]["se"] is None
    assert (props[5]["row"], props[5]["col"]) == (1, 2)
    out = tmp_path / "map.geojson"
    write_geojson(out, doc)
    assert json.loads(out.read_text())["features"][4]["properties"]["se"] is None
    with pytest.raises(MappingError, match="NaN"):
        write_geojson(out, {"x": float("nan")})


def test_drift_grid_is_bilinear_and_exact_on_planes() -> None:
    xs = np.array([0.0, 100.0, 300.0])
    ys = np.array([0.0, 50.0])
    gx, gy = np.meshgrid(xs, ys)
    plane = 2 * gx - 3 * gy + 1
    order = np.random.default_rng(0).permutation(6)  # rows in any order
    grid = DriftGrid.from_nodes(gx.ravel()[order], gy.ravel()[order], plane.ravel()[order])
    pts = np.array([[0.0, 0.0], [250.0, 10.0], [300.0, 50.0], [42.0, 17.0]])
    assert_allclose(grid.sample(pts), 2 * pts[:, 0] - 3 * pts[:, 1] + 1, rtol=1e-12)
    assert_allclose(grid.sample(pts, "nearest"), [1.0, 2 * 300 - 3 * 0 + 1, 451.0, 1.0])
    with pytest.raises(MappingError, match="1 location"):
        grid.sample([[301.0, 0.0]])


def test_drift_grid_needs_every_node_once() -> None:
    with pytest.raises(MappingError, match="needs 4 rows, got 3"):
        DriftGrid.from_nodes([0, 1, 0], [0, 0, 1], [1, 2, 3])
    with pytest.raises(MappingError, match="repeats"):
        DriftGrid.from_nodes([0, 1, 0, 0], [0, 0, 1, 1], [1, 2, 3, 4])
    with pytest.raises(MappingError, match="at least 2 distinct"):
        DriftGrid.from_nodes([0, 0], [0, 1], [1, 2])
