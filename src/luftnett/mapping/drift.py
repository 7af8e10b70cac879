"""Covariate grids for kriging with external drift, in a GeoTIFF-free CSV format.

A drift grid is a CSV file with columns ``x``, ``y`` (metres, cell centres, same CRS as the
points) and ``drift``: one row per node of a rectilinear grid, every combination of its
distinct ``x`` and ``y`` values exactly once, in any order. It is sampled at points by
bilinear interpolation (or nearest node); a point outside the grid is an error, never an
extrapolation.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
from numpy.typing import ArrayLike, NDArray
from scipy.interpolate import RegularGridInterpolator

from luftnett.mapping.errors import MappingError
from luftnett.mapping.points import read_columns

__all__ = ["DriftGrid", "read_drift_grid"]

Array = NDArray[np.float64]


@dataclass(frozen=True, slots=True)
class DriftGrid:
    """Covariate ``values`` (ny, nx) at nodes ``xs`` (nx,) x ``ys`` (ny,), both ascending."""

    xs_m: Array
    ys_m: Array
    values: Array

    @classmethod
    def from_nodes(cls, x_m: ArrayLike, y_m: ArrayLike, drift: ArrayLike) -> DriftGrid:
        """Assemble a grid from one row per node; refuses gaps and repeated nodes."""
        x = np.asarray(x_m, dtype=np.float64)
        y = np.asarray(y_m, dtype=np.float64)
        v = np.asarray(drift, dtype=np.float64)
        xs, ix = np.unique(x, return_inverse=True)
        ys, iy = np.unique(y, return_inverse=True)
        if xs.size < 2 or ys.size < 2:
            raise MappingError(
                f"a drift grid needs at least 2 distinct x and 2 distinct y "
                f"(got {xs.size} x {ys.size})"
            )
        if v.size != xs.size * ys.size:
            raise MappingError(
                f"a drift grid of {xs.size} x {ys.size} nodes needs {xs.size * ys.size} rows, "
                f"got {v.size}: every x,y combination exactly once"
            )
        grid = np.full((ys.size, xs.size), np.nan)
        grid[iy.ravel(), ix.ravel()] = v
        if np.isnan(grid).any():
            raise MappingError(
                "the drift grid repeats some x,y nodes and lacks others; give each node once"
            )
        return cls(xs_m=xs, ys_m=ys, values=grid)

    def sample(self, xy_m: ArrayLike, method: Literal["linear", "nearest"] = "linear") -> Array:
        """Drift at ``xy_m`` (m, 2) by bilinear interpolation or nearest node."""
        at = np.asarray(xy_m, dtype=np.float64).reshape(-1, 2)
        interp = RegularGridInterpolator(
            (self.ys_m, self.xs_m), self.values, method=method, bounds_error=False
        )
        out = np.asarray(interp(at[:, ::-1]), dtype=np.float64)
        outside = np.isnan(out)
        if outside.any():
            i = int(np.argmax(outside))
            raise MappingError(
                f"{int(outside.sum())} location(s) lie outside the drift grid "
                f"(x {self.xs_m[0]:g}..{self.xs_m[-1]:g}, y {self.ys_m[0]:g}..{self.ys_m[-1]:g}), "
                f"first ({at[i, 0]:g}, {at[i, 1]:g}); extend the grid"
            )
        return out


def read_drift_grid(path: Path) -> DriftGrid:
    """Read a CSV drift grid (``x,y,drift``)."""
    cols = read_columns(path, ["x", "y", "drift"])
    try:
        return DriftGrid.from_nodes(cols["x"], cols["y"], cols["drift"])
    except MappingError as exc:
        raise MappingError(f"{path}: {exc}") from None
