"""Regular grids in a metric CRS and their export as GeoJSON cells in WGS84.

A :class:`RegularGrid` has square cells of ``cell_m`` metres, ``nx`` columns eastwards from
``x0_m`` and ``ny`` rows northwards from ``y0_m`` (the lower-left corner). Cell ``(row, col)``
has its centre at ``(x0 + (col + 0.5) cell, y0 + (row + 0.5) cell)``; arrays over the grid are
flat in row-major order (``index = row * nx + col``), as :meth:`RegularGrid.centres` returns.

GeoJSON (RFC 7946) is always WGS84 longitude/latitude: each cell is a Polygon whose four
corners are transformed from the metric CRS, exterior ring counter-clockwise and closed.
Missing numbers (NaN) become ``null``.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import ArrayLike, NDArray

from luftnett.mapping.crs import to_wgs84
from luftnett.mapping.errors import MappingError

__all__ = ["MAX_CELLS", "RegularGrid", "write_geojson"]

Array = NDArray[np.float64]
MAX_CELLS = 4_000_000


@dataclass(frozen=True, slots=True)
class RegularGrid:
    """Square cells in metric CRS ``epsg`` (ETRS89 / UTM, EPSG:25832 or 25833)."""

    x0_m: float
    y0_m: float
    cell_m: float
    nx: int
    ny: int
    epsg: int = 25833

    def __post_init__(self) -> None:
        if not (self.cell_m > 0 and math.isfinite(self.cell_m)):
            raise MappingError(f"grid cell size must be > 0 m (got {self.cell_m})")
        if self.nx < 1 or self.ny < 1:
            raise MappingError(f"a grid needs at least one cell (got {self.nx} x {self.ny})")
        if self.nx * self.ny > MAX_CELLS:
            raise MappingError(
                f"{self.nx} x {self.ny} cells is more than {MAX_CELLS}; use larger cells"
            )

    @classmethod
    def from_bbox(
        cls,
        xmin_m: float,
        ymin_m: float,
        xmax_m: float,
        ymax_m: float,
        cell_m: float,
        epsg: int = 25833,
    ) -> RegularGrid:
        """The smallest grid of ``cell_m`` cells from (xmin, ymin) that covers the box."""
        if not (xmax_m > xmin_m and ymax_m > ymin_m):
            raise MappingError(
                f"bounding box needs xmin < xmax and ymin < ymax "
                f"(got {xmin_m:g}, {ymin_m:g}, {xmax_m:g}, {ymax_m:g})"
            )
        if not cell_m > 0:
            raise MappingError(f"grid cell size must be > 0 m (got {cell_m})")
        nx = max(1, math.ceil((xmax_m - xmin_m) / cell_m - 1e-9))
        ny = max(1, math.ceil((ymax_m - ymin_m) / cell_m - 1e-9))
        return cls(x0_m=xmin_m, y0_m=ymin_m, cell_m=cell_m, nx=nx, ny=ny, epsg=epsg)

    @property
    def size(self) -> int:
        return self.nx * self.ny

    def centres(self) -> Array:
        """Cell centres, shape (ny * nx, 2), row-major from the south-west corner."""
        xc = self.x0_m + (np.arange(self.nx) + 0.5) * self.cell_m
        yc = self.y0_m + (np.arange(self.ny) + 0.5) * self.cell_m
        gx, gy = np.meshgrid(xc, yc)
        return np.column_stack([gx.ravel(), gy.ravel()])

    def to_geojson(
        self,
        value: ArrayLike,
        se: ArrayLike | None = None,
        *,
        digits: int = 7,
        extra: Mapping[str, Any] | None = None,
    ) -> dict[str, Any]:
        """A FeatureCollection with one Polygon per cell and properties ``value``, ``se``,
        ``row``, ``col``. ``extra`` adds members at the top (e.g. the LOOCV summary)."""
        v = np.asarray(value, dtype=np.float64).ravel()
        s = None if se is None else np.asarray(se, dtype=np.float64).ravel()
        if v.size != self.size or (s is not None and s.size != self.size):
            raise MappingError(f"the grid has {self.size} cells; give one value (and se) each")
        xe = self.x0_m + np.arange(self.nx + 1) * self.cell_m
        ye = self.y0_m + np.arange(self.ny + 1) * self.cell_m
        gx, gy = np.meshgrid(xe, ye)
        lon, lat = to_wgs84(gx, gy, self.epsg)
        lon = np.round(lon, digits)
        lat = np.round(lat, digits)

        def num(a: float) -> float | None:
            return float(a) if math.isfinite(a) else None

        features = []
        for row in range(self.ny):
            for col in range(self.nx):
                # south-west, south-east, north-east, north-west, back: counter-clockwise
                ring = [
                    [float(lon[r, c]), float(lat[r, c])]
                    for r, c in (
                        (row, col),
                        (row, col + 1),
                        (row + 1, col + 1),
                        (row + 1, col),
                        (row, col),
                    )
                ]
                i = row * self.nx + col
                features.append(
                    {
                        "type": "Feature",
                        "geometry": {"type": "Polygon", "coordinates": [ring]},
                        "properties": {
                            "value": num(v[i]),
                            "se": None if s is None else num(s[i]),
                            "row": row,
                            "col": col,
                        },
                    }
                )
        doc: dict[str, Any] = {
            "type": "FeatureCollection",
            "bbox": [
                float(lon.min()),
                float(lat.min()),
                float(lon.max()),
                float(lat.max()),
            ],
            "features": features,
        }
        if extra:
            doc.update(extra)
        return doc


def write_geojson(path: Path, doc: Mapping[str, Any]) -> None:
    """Write ``doc`` as strict JSON (a NaN anywhere is an error, never invalid output)."""
    try:
        text = json.dumps(doc, allow_nan=False, separators=(",", ":"))
    except ValueError as exc:
        raise MappingError(f"GeoJSON would hold a NaN or infinity: {exc}") from exc
    path.write_text(text, encoding="utf-8")
