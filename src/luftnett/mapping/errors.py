"""The error raised by :mod:`luftnett.mapping`, defined in the one tree of :mod:`luftnett.errors`
and re-exported here for the mapping modules."""

from __future__ import annotations

from luftnett.errors import MappingError

__all__ = ["MappingError"]
