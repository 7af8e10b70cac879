"""Write a map's files, and rank areas and receptors on a map built earlier.

A map directory holds:

- ``grid.geojson``: one WGS84 Polygon per cell with ``value`` and ``se`` (null where none);
  the map's metadata, LOOCV included, in the collection's ``properties`` member;
- ``layer.png`` and ``layer.json``: the image layer, its WGS84 bounds and colour scale, and
  the same metadata (the sidecar);
- ``ranking.json``: areas and receptors ranked, with 95 % intervals and guideline verdicts;
- ``summary.md``: "where to act", in Norwegian bokmål and English.
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any

import numpy as np

from luftnett.mapping.errors import MappingError
from luftnett.mapping.exposure import ExposureMap
from luftnett.mapping.features import Area, Receptor
from luftnett.mapping.grid import RegularGrid, write_geojson
from luftnett.mapping.guidelines import Guideline
from luftnett.mapping.ranking import (
    FittedSurface,
    GridSurface,
    Surface,
    rank_areas,
    rank_receptors,
)
from luftnett.mapping.render import render_layer
from luftnett.mapping.summary import summary_markdown

__all__ = ["MAP_FILES", "rank_on", "rank_saved_map", "write_map"]

MAP_FILES = ("grid.geojson", "layer.png", "layer.json", "ranking.json", "summary.md")


def _dump(path: Path, doc: Any) -> None:
    path.write_text(json.dumps(doc, allow_nan=False, indent=1, ensure_ascii=False) + "\n", "utf-8")


def rank_on(
    surface: Surface,
    grid: RegularGrid,
    meta: dict[str, Any],
    guidelines: list[Guideline],
    areas: list[Area],
    receptors: list[Receptor],
) -> dict[str, Any]:
    """The ranking document for ``areas`` and ``receptors`` on ``surface``."""
    ranked_a, skip_a = rank_areas(surface, grid, areas, guidelines)
    ranked_r, skip_r = rank_receptors(surface, grid, receptors, guidelines)
    return {
        "pollutant": meta["pollutant"],
        "unit": meta["unit"],
        "statistic": meta["statistic"],
        "period": meta["period"],
        "method": meta["method"],
        "loocv": meta["loocv"],
        "guidelines": meta["guidelines"],
        "interval": "95 % = value ± 1.96 se; " + surface.interval_method,
        "label": meta["label"],
        "areas": [r.as_dict() for r in ranked_a],
        "receptors": [r.as_dict() for r in ranked_r],
        "outside_map": {"areas": skip_a, "receptors": skip_r},
    }


def write_map(
    m: ExposureMap, out_dir: Path, areas: list[Area], receptors: list[Receptor]
) -> dict[str, Any]:
    """Write the five files of :data:`MAP_FILES` into ``out_dir``; return the ranking."""
    try:
        out_dir.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise MappingError(f"cannot create {out_dir} ({exc.strerror or exc})") from exc
    meta = m.metadata()
    se = m.se if m.interp.kriging is not None else np.full(m.value.shape, np.nan)
    doc = m.grid.to_geojson(m.value, se, extra={"properties": meta})
    write_geojson(out_dir / "grid.geojson", doc)
    layer = render_layer(out_dir / "layer.png", m.grid, m.value)
    _dump(out_dir / "layer.json", {**layer, "map": meta})
    ranking = rank_on(FittedSurface(m.interp), m.grid, meta, m.guidelines, areas, receptors)
    ranking["sites"] = [s.as_dict() for s in m.stats]
    _dump(out_dir / "ranking.json", ranking)
    (out_dir / "summary.md").write_text(summary_markdown(ranking, meta), encoding="utf-8")
    return ranking


def _read_saved(map_dir: Path) -> tuple[RegularGrid, np.ndarray, np.ndarray, dict[str, Any]]:
    path = map_dir / "grid.geojson"
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
        meta = doc["properties"]
        g = meta["grid"]
        grid = RegularGrid(
            x0_m=float(g["x0_m"]),
            y0_m=float(g["y0_m"]),
            cell_m=float(g["cell_m"]),
            nx=int(g["nx"]),
            ny=int(g["ny"]),
            epsg=int(g["epsg"]),
        )
        value = np.full(grid.size, np.nan)
        se = np.full(grid.size, np.nan)
        for f in doc["features"]:
            p = f["properties"]
            i = int(p["row"]) * grid.nx + int(p["col"])
            value[i] = math.nan if p["value"] is None else float(p["value"])
            se[i] = math.nan if p["se"] is None else float(p["se"])
    except OSError as exc:
        raise MappingError(
            f"{path}: cannot read ({exc.strerror or exc}); build a map with `luftnett map build`"
        ) from exc
    except (ValueError, KeyError, TypeError) as exc:
        raise MappingError(f"{path}: not a map written by `luftnett map build` ({exc})") from exc
    return grid, value, se, meta


def rank_saved_map(
    map_dir: Path, areas: list[Area], receptors: list[Receptor], out_dir: Path | None = None
) -> dict[str, Any]:
    """Rank on the map saved in ``map_dir``; write ranking.json and summary.md to
    ``out_dir`` (default ``map_dir``). IDW maps (no se) use the LOOCV RMSE as se."""
    grid, value, se, meta = _read_saved(map_dir)
    if not np.isfinite(se).any():
        se = np.full(grid.size, float(meta["loocv"]["rmse"] or math.nan))
    guidelines = [Guideline(**g) for g in meta["guidelines"]]
    ranking = rank_on(GridSurface(grid, value, se), grid, meta, guidelines, areas, receptors)
    out = out_dir or map_dir
    out.mkdir(parents=True, exist_ok=True)
    _dump(out / "ranking.json", ranking)
    (out / "summary.md").write_text(summary_markdown(ranking, meta), encoding="utf-8")
    return ranking
