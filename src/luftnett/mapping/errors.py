"""The error raised by :mod:`luftnett.mapping`.

    LuftnettError            (luftnett.errors)
    └── MappingError         bad points, grids or parameters for a map

It hangs under the one tree of :mod:`luftnett.errors`, so the CLI prints it as one line and
exits 1. (It lives here until ``luftnett/errors.py`` lists it beside the others.)
"""

from __future__ import annotations

from luftnett.errors import LuftnettError

__all__ = ["MappingError"]


class MappingError(LuftnettError):
    """Input to a map is unusable: missing columns, too few points, duplicates, bad CRS."""
