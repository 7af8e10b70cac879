"""Ranking areas and receptors: order, intervals, verdicts, and the summary text."""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pytest
from numpy.testing import assert_allclose

from luftnett.mapping.crs import to_wgs84
from luftnett.mapping.errors import MappingError
from luftnett.mapping.features import Area, Receptor, example_path, read_areas, read_receptors
from luftnett.mapping.grid import RegularGrid
from luftnett.mapping.guidelines import Guideline, guidelines_for
from luftnett.mapping.interpolate import fit_interpolator
from luftnett.mapping.kriging import Kriging
from luftnett.mapping.points import PointTable
from luftnett.mapping.ranking import (
    FittedSurface,
    GridSurface,
    rank_areas,
    rank_receptors,
    verdict,
)
from luftnett.mapping.summary import summary_markdown
from luftnett.mapping.variogram import VariogramModel

EPSG = 25833
X0, Y0 = 260_000.0, 6_648_000.0
G = Guideline("test", "testverdi", "test value", "limit value", "1y", 15.0, 15.0, None, "-")


def field(xy: np.ndarray) -> np.ndarray:
    """10 everywhere plus a hotspot of +10 at (X0 + 800, Y0 + 800), 200 m wide."""
    d2 = (xy[:, 0] - X0 - 800) ** 2 + (xy[:, 1] - Y0 - 800) ** 2
    return 10 + 10 * np.exp(-d2 / (2 * 200.0**2))


def square(name: str, x: float, y: float, side: float) -> Area:
    xs = np.array([x, x + side, x + side, x, x])
    ys = np.array([y, y, y + side, y + side, y])
    lon, lat = to_wgs84(xs, ys, EPSG)
    return Area(name, "district", [[np.column_stack([lon, lat])]])


def receptor(name: str, x: float, y: float) -> Receptor:
    lon, lat = to_wgs84(x, y, EPSG)
    return Receptor(name, "school", float(lon), float(lat))


@pytest.fixture(scope="module")
def grid() -> RegularGrid:
    return RegularGrid(X0, Y0, 50.0, 24, 24, EPSG)


AREAS = [
    square("far", X0 + 0, X0 * 0 + Y0 + 0, 300),
    square("hot", X0 + 650, Y0 + 650, 300),
    square("near", X0 + 900, Y0 + 300, 300),
]


def test_areas_rank_in_the_true_order_on_an_exact_grid(grid: RegularGrid) -> None:
    c = grid.centres()
    surface = GridSurface(grid, field(c), np.full(grid.size, 0.5))
    ranked, skipped = rank_areas(surface, grid, AREAS, [G])
    assert skipped == []
    assert [r.name for r in ranked] == ["hot", "near", "far"]
    assert [r.rank for r in ranked] == [1, 2, 3]
    for r, a in zip(
        ranked, sorted(AREAS, key=lambda a: [x.name for x in ranked].index(a.name)), strict=True
    ):
        inside = c[a.contains(c, EPSG)]
        assert r.n_cells == len(inside) == 36
        assert_allclose(r.value, field(inside).mean(), rtol=1e-12)
        assert_allclose([r.lo, r.hi], [r.value - 1.959964 * 0.5, r.value + 1.959964 * 0.5])
    assert ranked[0].verdicts[0]["verdict"] == "above"  # about 17 with se 0.5
    assert ranked[-1].verdicts[0]["verdict"] == "below"


def test_receptors_rank_and_outside_ones_are_reported(grid: RegularGrid) -> None:
    surface = GridSurface(grid, field(grid.centres()), np.full(grid.size, 1.0))
    recs = [
        receptor("school far", X0 + 100, Y0 + 100),
        receptor("school hot", X0 + 810, Y0 + 790),
        receptor("outside", X0 - 500, Y0),
    ]
    ranked, skipped = rank_receptors(surface, grid, recs, [G])
    assert [r.name for r in ranked] == ["school hot", "school far"]
    assert skipped == ["outside"]
    assert ranked[0].value > 19


def test_verdict_probabilities() -> None:
    assert verdict(20.0, 1.0, G)["verdict"] == "above"
    v = verdict(15.5, 1.0, G)
    assert v["verdict"] == "probably above"
    assert_allclose(v["p_above"], 0.6915, atol=1e-4)
    assert verdict(14.0, 1.0, G)["verdict"] == "possibly above"
    assert verdict(10.0, 1.0, G)["verdict"] == "below"
    assert verdict(16.0, 0.0, G)["p_above"] == 1.0
    assert verdict(float("nan"), 1.0, G)["verdict"] == "unknown"


def test_block_kriging_se_is_below_the_mean_point_se(grid: RegularGrid) -> None:
    rng = np.random.default_rng(3)
    xy = np.column_stack([rng.uniform(X0, X0 + 1200, 40), rng.uniform(Y0, Y0 + 1200, 40)])
    z = field(xy) + rng.normal(0, 0.3, 40)
    pts = PointTable(Path("t"), xy, z, np.full(40, 0.3), None)
    interp = fit_interpolator(pts, "ok")
    surface = FittedSurface(interp)
    cells = grid.centres()[AREAS[1].contains(grid.centres(), EPSG)]
    value, se = surface.block(cells)
    pv, pse = surface.at_points(cells)
    assert_allclose(value, pv.mean(), rtol=1e-10)  # the block mean is the mean prediction
    assert 0 < se < pse.mean()
    ranked, _ = rank_areas(surface, grid, AREAS, [G])
    assert [r.name for r in ranked] == ["hot", "near", "far"]


def test_block_kriging_of_one_point_is_point_kriging() -> None:
    rng = np.random.default_rng(5)
    xy = rng.uniform(0, 1000, (15, 2))
    k = Kriging(xy, rng.normal(10, 1, 15), VariogramModel("exponential", 0.1, 1.0, 300.0))
    p = k.predict([[400.0, 500.0]])
    value, se = k.predict_mean([[400.0, 500.0]])
    assert_allclose([value, se], [p.value[0], p.se[0]], rtol=1e-9)


def test_idw_intervals_use_the_loocv_rmse(grid: RegularGrid) -> None:
    rng = np.random.default_rng(4)
    xy = np.column_stack([rng.uniform(X0, X0 + 1200, 30), rng.uniform(Y0, Y0 + 1200, 30)])
    interp = fit_interpolator(PointTable(Path("t"), xy, field(xy), None, None), "idw")
    ranked, _ = rank_areas(FittedSurface(interp), grid, AREAS, [G])
    assert all(r.se == pytest.approx(interp.cv.rmse) for r in ranked)


def test_example_files_read_and_lie_in_the_synthetic_town() -> None:
    from luftnett.firmware_sim.city import SyntheticCity

    city = SyntheticCity()
    areas = read_areas(example_path("districts.geojson"))
    catchments = read_areas(example_path("school_catchments.geojson"))
    receptors = read_receptors(example_path("receptors.geojson"))
    assert len(areas) >= 5 and len(catchments) >= 3 and len(receptors) >= 8
    assert {r.kind for r in receptors} == {"school", "kindergarten", "nursing-home"}
    xmin, ymin, xmax, ymax = city.bbox
    grid = RegularGrid.from_bbox(xmin, ymin, xmax, ymax, 100.0, 25832)
    surface = GridSurface(grid, np.ones(grid.size), np.ones(grid.size))
    _, skipped = rank_areas(surface, grid, areas + catchments, [])
    assert skipped == []


@pytest.mark.parametrize(
    ("doc", "message"),
    [
        pytest.param("not json", "not valid JSON", id="not-json"),
        pytest.param('{"type": "Feature"}', "FeatureCollection", id="not-a-collection"),
        pytest.param('{"type": "FeatureCollection", "features": []}', "no features", id="empty"),
        pytest.param(
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
            '{"name": "A"}, "geometry": {"type": "Point", "coordinates": [10, 59]}}]}',
            "A: areas must be Polygon",
            id="point-as-area",
        ),
        pytest.param(
            '{"type": "FeatureCollection", "features": [{"type": "Feature", "properties": '
            '{"name": "B"}, "geometry": {"type": "Polygon", '
            '"coordinates": [[[10, 59], [11, 59]]]}}]}',
            "at least 4",
            id="short-ring",
        ),
    ],
)
def test_bad_area_files_are_one_line_errors(tmp_path: Path, doc: str, message: str) -> None:
    path = tmp_path / "a.geojson"
    path.write_text(doc)
    with pytest.raises(MappingError, match=message):
        read_areas(path)


def test_receptor_file_needs_points(tmp_path: Path) -> None:
    path = tmp_path / "r.geojson"
    path.write_text(
        json.dumps(
            {
                "type": "FeatureCollection",
                "features": [
                    {
                        "type": "Feature",
                        "properties": {"name": "S"},
                        "geometry": {"type": "Polygon", "coordinates": []},
                    }
                ],
            }
        )
    )
    with pytest.raises(MappingError, match="S: receptors must be Point"):
        read_receptors(path)


def test_summary_names_what_exceeds_in_both_languages(grid: RegularGrid) -> None:
    surface = GridSurface(grid, field(grid.centres()), np.full(grid.size, 0.5))
    gl = guidelines_for("pm25", "annual")
    ranked, _ = rank_areas(surface, grid, AREAS, gl)
    ranking = {"areas": [r.as_dict() for r in ranked], "receptors": []}
    meta = {
        "pollutant": "pm25",
        "unit": "µg/m³",
        "statistic": "mean",
        "period": {"kind": "annual", "label": "2026"},
        "method": "ok",
        "guidelines": [g.as_dict() for g in gl],
        "loocv": {"n": 20, "rmse": 1.2, "bias": 0.1, "rmsse": 1.05},
        "sites_used": 20,
    }
    text = summary_markdown(ranking, meta)
    assert "## Norsk (bokmål)" in text and "## English" in text
    assert "Hvor bør vi sette inn tiltak?" in text and "Where to act" in text
    assert "grenseverdi (forurensningsforskriften) 10" in text
    assert "hot (over, P = 100 %)" in text and "hot (above, P = 100 %)" in text
    assert "indikative" in text and "indicative" in text
    assert "(RMSE) 1,20" in text and "(RMSE) 1.20" in text
    # a receptor's kind in each language (the Norwegian section printed "(nursing-home)")
    home = {**ranking["areas"][0], "name": "Solhaug", "kind": "nursing-home"}
    text = summary_markdown({**ranking, "receptors": [home]}, meta)
    no, en = text.split("## English")
    assert "**Solhaug** (sykehjem)" in no and "**Solhaug** (nursing home)" in en
