"""Areas (polygons) and receptors (points) from GeoJSON files, in WGS84 longitude/latitude.

An area file is a FeatureCollection of Polygon or MultiPolygon features (districts, school
catchments); a receptor file one of Point features (schools, kindergartens, nursing homes).
Each feature's ``name`` property names it (else its ``id``, else its position) and an
optional ``kind`` property says what it is (``district``, ``school``, ``kindergarten``,
``nursing-home``, ...). Point-in-polygon is the even-odd rule on the projected rings, holes
included.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from importlib import resources
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from luftnett.mapping.crs import to_metric
from luftnett.mapping.errors import MappingError

__all__ = [
    "Area",
    "Receptor",
    "example_path",
    "inside",
    "read_areas",
    "read_receptors",
]

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class Area:
    """A named polygon: ``rings`` is a list of polygons, each a list of (k, 2) lon/lat rings
    (the first exterior, the rest holes)."""

    name: str
    kind: str
    rings: list[list[Array]]

    def contains(self, xy_m: Array, epsg: int) -> NDArray[np.bool_]:
        """Which metric points ``xy_m`` (m, 2) lie inside, in CRS ``epsg``."""
        out = np.zeros(xy_m.shape[0], dtype=bool)
        for polygon in self.rings:
            inside_poly = np.zeros_like(out)
            for ring in polygon:
                x, y = to_metric(ring[:, 0], ring[:, 1], epsg)
                inside_poly ^= inside(xy_m, np.column_stack([x, y]))
            out |= inside_poly
        return out


@dataclass(frozen=True, slots=True)
class Receptor:
    """A named point where people are exposed."""

    name: str
    kind: str
    lon: float
    lat: float


def inside(xy: Array, ring: Array) -> NDArray[np.bool_]:
    """Even-odd ray casting: points (m, 2) inside the closed or open ring (k, 2)."""
    x, y = xy[:, 0][:, None], xy[:, 1][:, None]
    x1, y1 = ring[:, 0][None, :], ring[:, 1][None, :]
    x2, y2 = np.roll(ring[:, 0], -1)[None, :], np.roll(ring[:, 1], -1)[None, :]
    crosses = (y1 > y) != (y2 > y)
    with np.errstate(divide="ignore", invalid="ignore"):
        xcross = x1 + (y - y1) * (x2 - x1) / (y2 - y1)
    hit = crosses & (x < xcross)
    return np.asarray(hit.sum(axis=1) % 2 == 1)


def example_path(name: str) -> Path:
    """A packaged example file for the synthetic town (``districts.geojson``, ...)."""
    return Path(str(resources.files("luftnett.mapping").joinpath("examples", name)))


def _features(path: Path) -> list[dict[str, Any]]:
    try:
        doc = json.loads(path.read_text(encoding="utf-8"))
    except OSError as exc:
        raise MappingError(f"{path}: cannot read ({exc.strerror or exc})") from exc
    except (json.JSONDecodeError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: not valid JSON ({exc})") from exc
    if not isinstance(doc, dict) or doc.get("type") != "FeatureCollection":
        raise MappingError(f"{path}: expected a GeoJSON FeatureCollection")
    feats = doc.get("features")
    if not isinstance(feats, list) or not feats:
        raise MappingError(f"{path}: the FeatureCollection has no features")
    return feats


def _name(f: dict[str, Any], i: int) -> tuple[str, str]:
    props = f.get("properties") or {}
    name = props.get("name") or f.get("id") or f"feature {i + 1}"
    return str(name), str(props.get("kind") or "")


def _ring(coords: Any, path: Path, name: str) -> Array:
    try:
        ring = np.asarray(coords, dtype=np.float64)
    except (TypeError, ValueError):
        ring = np.empty((0, 0))
    if ring.ndim != 2 or ring.shape[0] < 4 or ring.shape[1] < 2 or not np.isfinite(ring).all():
        raise MappingError(f"{path}: {name}: a polygon ring needs at least 4 [lon, lat] positions")
    if np.abs(ring[:, 0]).max() > 180 or np.abs(ring[:, 1]).max() > 90:
        raise MappingError(f"{path}: {name}: coordinates must be WGS84 longitude, latitude")
    return ring[:, :2]


def read_areas(path: Path) -> list[Area]:
    """Polygons and multipolygons of a GeoJSON FeatureCollection; other geometries refused."""
    out = []
    for i, f in enumerate(_features(path)):
        name, kind = _name(f, i)
        geom = f.get("geometry") or {}
        if geom.get("type") == "Polygon":
            polys = [geom.get("coordinates")]
        elif geom.get("type") == "MultiPolygon":
            polys = list(geom.get("coordinates") or [])
        else:
            raise MappingError(
                f"{path}: {name}: areas must be Polygon or MultiPolygon (got {geom.get('type')})"
            )
        rings = [[_ring(r, path, name) for r in (p or [])] for p in polys]
        if not rings or not all(rings):
            raise MappingError(f"{path}: {name}: empty polygon")
        out.append(Area(name, kind or "area", rings))
    return out


def read_receptors(path: Path) -> list[Receptor]:
    """Points of a GeoJSON FeatureCollection; other geometries refused."""
    out = []
    for i, f in enumerate(_features(path)):
        name, kind = _name(f, i)
        geom = f.get("geometry") or {}
        c = geom.get("coordinates")
        if geom.get("type") != "Point" or not isinstance(c, list) or len(c) < 2:
            raise MappingError(f"{path}: {name}: receptors must be Point features")
        try:
            lon, lat = float(c[0]), float(c[1])
        except (TypeError, ValueError):
            raise MappingError(f"{path}: {name}: coordinates are not numbers") from None
        if not (abs(lon) <= 180 and abs(lat) <= 90):
            raise MappingError(f"{path}: {name}: coordinates must be WGS84 longitude, latitude")
        out.append(Receptor(name, kind or "receptor", lon, lat))
    return out
