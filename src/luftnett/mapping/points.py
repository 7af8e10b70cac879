"""Reading point tables from CSV: ``x``, ``y`` in metres, ``value``, optional ``sigma``/``drift``.

Every problem is a :class:`~luftnett.mapping.errors.MappingError` naming the file, the line and
the value, so the CLI can print it as one line. Extra columns are ignored; blank lines are
skipped; a UTF-8 byte-order mark is accepted.
"""

from __future__ import annotations

import csv
import math
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from numpy.typing import NDArray

from luftnett.mapping.errors import MappingError

__all__ = ["PointTable", "read_columns", "read_points"]

Array = NDArray[np.float64]


def read_columns(
    path: Path, required: Sequence[str], optional: Sequence[str] = ()
) -> dict[str, Array]:
    """Read the numeric ``required`` and (when present) ``optional`` columns of a CSV file."""
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            rows = list(csv.reader(fh))
    except (OSError, UnicodeDecodeError) as exc:
        raise MappingError(f"{path}: cannot read ({exc})") from exc
    except csv.Error as exc:
        raise MappingError(f"{path}: not a valid CSV file ({exc})") from exc
    lines = [(no, row) for no, row in enumerate(rows, start=1) if any(c.strip() for c in row)]
    if not lines:
        raise MappingError(f"{path}: empty file; expected a header with {', '.join(required)}")
    header = [h.strip() for h in lines[0][1]]
    missing = [c for c in required if c not in header]
    if missing:
        raise MappingError(
            f"{path}: missing column(s) {', '.join(missing)} (found: {', '.join(header) or '-'})"
        )
    wanted = [*required, *(c for c in optional if c in header)]
    where = {c: header.index(c) for c in wanted}
    data: dict[str, list[float]] = {c: [] for c in wanted}
    for no, row in lines[1:]:
        if len(row) != len(header):
            raise MappingError(
                f"{path} line {no}: {len(row)} fields, but the header has {len(header)}"
            )
        for c in wanted:
            text = row[where[c]].strip()
            try:
                v = float(text)
            except ValueError:
                raise MappingError(
                    f"{path} line {no}: column {c} is not a number ({text!r})"
                ) from None
            if not math.isfinite(v):
                raise MappingError(f"{path} line {no}: column {c} must be finite ({text!r})")
            data[c].append(v)
    return {c: np.asarray(v, dtype=np.float64) for c, v in data.items()}


@dataclass(frozen=True, slots=True)
class PointTable:
    """Points from one file: ``xy_m`` (n, 2); ``value``, ``sigma``, ``drift`` (n,) or None."""

    path: Path
    xy_m: Array
    value: Array | None
    sigma: Array | None
    drift: Array | None

    @property
    def n(self) -> int:
        return int(self.xy_m.shape[0])


def read_points(path: Path, *, with_value: bool) -> PointTable:
    """Read observations (``with_value=True``: ``x,y,value[,sigma][,drift]``) or prediction
    locations (``x,y[,drift]``; a ``value`` column there is ignored)."""
    required = ["x", "y", "value"] if with_value else ["x", "y"]
    optional = ["sigma", "drift"] if with_value else ["drift"]
    cols = read_columns(path, required, optional)
    sigma = cols.get("sigma")
    if sigma is not None and np.any(sigma < 0):
        line = int(np.argmax(sigma < 0)) + 2
        raise MappingError(f"{path}: sigma must be >= 0 (a standard deviation), see row {line}")
    return PointTable(
        path=path,
        xy_m=np.column_stack([cols["x"], cols["y"]]),
        value=cols.get("value"),
        sigma=sigma,
        drift=cols.get("drift"),
    )
