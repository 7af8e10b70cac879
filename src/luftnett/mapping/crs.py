"""WGS84 <-> ETRS89 / UTM with pyproj, always in (x, y) = (east, north) = (lon, lat) order.

Maps are computed in metres (ETRS89 / UTM zone 32N, EPSG:25832, or zone 33N, EPSG:25833, the
national choice for Norway); the web gets WGS84 (EPSG:4326) longitude/latitude in degrees.
``always_xy=True`` throughout, so longitude comes first whatever the CRS's axis order says.
"""

from __future__ import annotations

from functools import lru_cache

import numpy as np
from numpy.typing import ArrayLike, NDArray
from pyproj import Transformer

from luftnett.mapping.errors import MappingError

__all__ = ["METRIC_EPSG", "WGS84_EPSG", "metric_epsg_for", "to_metric", "to_wgs84"]

WGS84_EPSG = 4326
# ETRS89 / UTM zones 32N-35N: zone 32 covers 6-12 E, 33 12-18 E, ... (Norway uses 32, 33, 35).
METRIC_EPSG = (25832, 25833, 25834, 25835)


@lru_cache(maxsize=16)
def _transformer(src: int, dst: int) -> Transformer:
    return Transformer.from_crs(f"EPSG:{src}", f"EPSG:{dst}", always_xy=True)


def _check(epsg: int) -> int:
    if epsg not in METRIC_EPSG:
        raise MappingError(
            f"metric CRS must be one of EPSG:{', '.join(map(str, METRIC_EPSG))} "
            f"(ETRS89 / UTM 32N-35N); got EPSG:{epsg}"
        )
    return epsg


def metric_epsg_for(lon_deg: float) -> int:
    """The ETRS89 / UTM EPSG code whose zone contains longitude ``lon_deg`` (6-30 E).

    >>> metric_epsg_for(10.75)  # Oslo
    25832
    """
    zone = int((lon_deg + 180.0) // 6.0) + 1
    return _check(25800 + zone)


def to_metric(
    lon_deg: ArrayLike, lat_deg: ArrayLike, epsg: int = 25833
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """WGS84 longitude, latitude (degrees) -> easting, northing (metres) in ``epsg``."""
    x, y = _transformer(WGS84_EPSG, _check(epsg)).transform(
        np.asarray(lon_deg, dtype=np.float64), np.asarray(lat_deg, dtype=np.float64)
    )
    return np.asarray(x, dtype=np.float64), np.asarray(y, dtype=np.float64)


def to_wgs84(
    x_m: ArrayLike, y_m: ArrayLike, epsg: int = 25833
) -> tuple[NDArray[np.float64], NDArray[np.float64]]:
    """Easting, northing (metres) in ``epsg`` -> WGS84 longitude, latitude (degrees)."""
    lon, lat = _transformer(_check(epsg), WGS84_EPSG).transform(
        np.asarray(x_m, dtype=np.float64), np.asarray(y_m, dtype=np.float64)
    )
    return np.asarray(lon, dtype=np.float64), np.asarray(lat, dtype=np.float64)
