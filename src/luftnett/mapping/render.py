"""An image layer of a map for the web: a PNG and its WGS84 bounds.

Web maps (Leaflet ``imageOverlay``, MapLibre ``image`` sources) stretch an image between two
WGS84 corners *in Web Mercator* (EPSG:3857). The map's cells are square in ETRS89 / UTM,
which is rotated and scaled against Web Mercator, so the image is resampled: each pixel's
centre is taken from Web Mercator to WGS84 to the map's CRS and given the value of the
cell it falls in (nearest cell; no smoothing). Pixels outside the grid, or where the map
has no value, are transparent. Colours come from a matplotlib colormap; the Agg-free
:func:`matplotlib.image.imsave` writes the file (no display needed).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
from numpy.typing import NDArray

from luftnett.mapping.crs import to_metric, to_wgs84
from luftnett.mapping.grid import RegularGrid

__all__ = ["render_layer"]

Array = NDArray[np.float64]
_R = 6_378_137.0  # Web Mercator sphere radius, m


def _merc(lon: Array, lat: Array) -> tuple[Array, Array]:
    x = _R * np.deg2rad(lon)
    y = _R * np.log(np.tan(np.pi / 4 + np.deg2rad(lat) / 2))
    return x, y


def _unmerc(x: Array, y: Array) -> tuple[Array, Array]:
    lon = np.rad2deg(x / _R)
    lat = np.rad2deg(2 * np.arctan(np.exp(y / _R)) - np.pi / 2)
    return lon, lat


def render_layer(
    path: Path,
    grid: RegularGrid,
    value: Array,
    *,
    cmap: str = "YlOrRd",
    vmin: float | None = None,
    vmax: float | None = None,
    upsample: int = 2,
    alpha: float = 0.75,
) -> dict[str, Any]:
    """Write ``value`` on ``grid`` as a PNG at ``path``; return its layer description
    (bounds as ``[[south, west], [north, east]]`` for Leaflet, bbox, colour scale)."""
    import matplotlib as mpl
    import matplotlib.image

    v = np.asarray(value, dtype=np.float64).reshape(grid.ny, grid.nx)
    finite = v[np.isfinite(v)]
    lo = float(np.percentile(finite, 1)) if vmin is None and finite.size else (vmin or 0.0)
    hi = float(np.percentile(finite, 99)) if vmax is None and finite.size else (vmax or 1.0)
    if not hi > lo:
        hi = lo + 1.0
    # WGS84 and Web Mercator extent of the grid's outline
    t = np.linspace(0.0, 1.0, 33)
    w, e = grid.x0_m, grid.x0_m + grid.nx * grid.cell_m
    s, n = grid.y0_m, grid.y0_m + grid.ny * grid.cell_m
    ex = np.concatenate([w + (e - w) * t, np.full(33, e), e - (e - w) * t, np.full(33, w)])
    ey = np.concatenate([np.full(33, s), s + (n - s) * t, np.full(33, n), n - (n - s) * t])
    lon, lat = to_wgs84(ex, ey, grid.epsg)
    mx, my = _merc(lon, lat)
    width = max(2, grid.nx * upsample)
    height = max(2, round(width * (my.max() - my.min()) / (mx.max() - mx.min())))
    px = mx.min() + (np.arange(width) + 0.5) * (mx.max() - mx.min()) / width
    py = my.max() - (np.arange(height) + 0.5) * (my.max() - my.min()) / height  # top row first
    gx, gy = np.meshgrid(px, py)
    plon, plat = _unmerc(gx.ravel(), gy.ravel())
    x, y = to_metric(plon, plat, grid.epsg)
    col = np.floor((x - grid.x0_m) / grid.cell_m).astype(int)
    row = np.floor((y - grid.y0_m) / grid.cell_m).astype(int)
    on = (col >= 0) & (col < grid.nx) & (row >= 0) & (row < grid.ny)
    sampled = np.full(col.size, np.nan)
    sampled[on] = v[row[on], col[on]]
    colormap = mpl.colormaps[cmap]
    norm = (sampled - lo) / (hi - lo)
    rgba = colormap(np.clip(np.nan_to_num(norm), 0.0, 1.0))
    rgba[:, 3] = np.where(np.isfinite(sampled), alpha, 0.0)
    matplotlib.image.imsave(path, rgba.reshape(height, width, 4), format="png")
    west, east = float(lon.min()), float(lon.max())
    south, north = float(lat.min()), float(lat.max())
    stops = np.linspace(0.0, 1.0, 6)
    return {
        "image": path.name,
        "width": width,
        "height": height,
        "bounds": [[south, west], [north, east]],
        "bbox": [west, south, east, north],
        "projection": "pixels equally spaced in Web Mercator (EPSG:3857) between the bounds",
        "colormap": cmap,
        "opacity": alpha,
        "scale": {
            "min": lo,
            "max": hi,
            "stops": [
                {
                    "value": round(lo + f * (hi - lo), 4),
                    "color": mpl.colors.to_hex(colormap(float(f))),
                }
                for f in stops
            ],
            "note": "values below min / above max take the end colours",
        },
        "pixel_m_approx": round(grid.cell_m / upsample, 1),
        "cos_lat": round(math.cos(math.radians((south + north) / 2)), 4),
    }
