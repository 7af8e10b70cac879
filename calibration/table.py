"""Paired co-location tables from delimited text, without pandas.

:func:`read_table` parses lines (the caller opens the file) into float columns. It handles the
traps of real exports: a custom delimiter and decimal comma, missing-value markers and numeric
sentinels such as UCI's ``-200``, trailing empty rows and empty header fields, and a time column
to sort by. A value that is neither a number nor a missing marker is an error naming the row.
"""

from __future__ import annotations

import contextlib
import csv
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import TextIO

import numpy as np
import numpy.typing as npt

from luftnett.errors import CalibrationError, ConfigError

__all__ = ["DEFAULT_NA", "Table", "open_csv", "parse_time", "read_table"]

FloatArray = npt.NDArray[np.float64]
DEFAULT_NA = frozenset({"", "na", "nan", "n/a", "null", "none", "-"})


@dataclass(frozen=True, slots=True, eq=False)
class Table:
    """Float columns of the complete rows, in time order when a time column was given."""

    columns: dict[str, FloatArray]
    times: tuple[datetime, ...] | None
    rows_read: int
    rows_dropped: int
    missing: dict[str, int]  # missing values per column among the rows read

    def __len__(self) -> int:
        return self.rows_read - self.rows_dropped


@contextlib.contextmanager
def open_csv(csv_path: str) -> Iterator[TextIO]:
    """``csv_path`` opened as UTF-8 text for :mod:`csv` (a BOM is skipped).

    A missing file, a directory, an unreadable file and text in another encoding (UTF-16,
    Latin-1: also while the caller reads on) become a one-line :class:`ConfigError`.
    """
    path = Path(csv_path)
    if path.is_dir():
        raise ConfigError(f"{csv_path} is a directory, not a file; give the CSV file in it")
    if not path.exists():
        raise ConfigError(f"no such file: {csv_path}")
    try:
        with path.open(newline="", encoding="utf-8-sig") as fh:
            yield fh
    except UnicodeDecodeError as exc:
        utf16 = exc.start == 0 and bytes(exc.object[:2]) in (b"\xff\xfe", b"\xfe\xff")
        encoding = "UTF-16" if utf16 else "LATIN1"
        raise ConfigError(
            f"{path.name} is not UTF-8 text ({exc.reason}{'; it looks like UTF-16' * utf16}); "
            f"save it as UTF-8 (in Excel: CSV UTF-8) or convert it, e.g. iconv -f {encoding} "
            "-t UTF-8"
        ) from exc
    except OSError as exc:
        raise ConfigError(f"cannot read {csv_path}: {exc.strerror}") from exc


def parse_time(text: str, fmt: str | None = None) -> datetime:
    """ISO 8601 (or ``fmt`` for strptime); a naive time is taken as UTC."""
    try:
        t = (
            datetime.strptime(text.strip(), fmt)  # noqa: DTZ007 - made aware below
            if fmt
            else datetime.fromisoformat(text.strip())
        )
    except ValueError as exc:
        hint = f"format {fmt!r}" if fmt else "ISO 8601; give --time-format"
        raise CalibrationError(f"cannot read time {text!r} ({hint})") from exc
    return t.replace(tzinfo=UTC) if t.tzinfo is None else t.astimezone(UTC)


def _number(token: str, decimal: str, na: frozenset[str], na_values: frozenset[float]) -> float:
    t = token.strip()
    if t.lower() in na:
        return float("nan")
    if decimal != ".":
        t = t.replace(decimal, ".")
    v = float(t)  # ValueError handled by the caller, which knows the row and column
    return float("nan") if v in na_values else v


def read_table(
    lines: Iterable[str],
    columns: Sequence[str],
    *,
    delimiter: str = ",",
    decimal: str = ".",
    na: Iterable[str] = (),
    time_column: str | None = None,
    time_format: str | None = None,
    source: str = "input",
) -> Table:
    """Read ``columns`` as floats, drop rows where any is missing, sort by ``time_column``.

    ``na`` adds missing markers to :data:`DEFAULT_NA`; a marker that parses as a number (such
    as ``-200``) also matches numerically. Rows whose every field is empty are skipped
    silently (spreadsheet padding); other incomplete rows are counted in ``rows_dropped``.
    """
    if decimal == delimiter:
        raise ConfigError(f"decimal mark and delimiter are both {decimal!r}")
    extra_na = {t.strip().lower() for t in na}
    na_tokens = DEFAULT_NA | frozenset(extra_na)
    na_numbers: set[float] = set()
    for t in extra_na:
        try:
            na_numbers.add(float(t.replace(decimal, ".")))
        except ValueError:
            continue
    reader = csv.reader(lines, delimiter=delimiter)
    header = next(reader, None)
    if header is None:
        raise ConfigError(f"{source} is empty; expected a header row")
    header = [h.strip().lstrip("\ufeff") for h in header]
    available = [h for h in header if h]
    wanted = list(dict.fromkeys([*columns, *([time_column] if time_column else [])]))
    absent = [c for c in wanted if c not in available]
    if absent:
        hint = (
            ""
            if len(available) > 1
            else f" (one column only: is the delimiter {delimiter!r} right?)"
        )
        raise ConfigError(
            f"{source}: no column {', '.join(repr(c) for c in absent)}; "
            f"available: {', '.join(available)}{hint}"
        )
    index = {c: header.index(c) for c in wanted}
    values: dict[str, list[float]] = {c: [] for c in columns}
    times: list[datetime] = []
    read = dropped = 0
    missing = dict.fromkeys(columns, 0)
    for lineno, row in enumerate(reader, start=2):
        if not any(f.strip() for f in row):
            continue
        read += 1
        rec: dict[str, float] = {}
        for c in columns:
            i = index[c]
            token = row[i] if i < len(row) else ""
            try:
                rec[c] = _number(token, decimal, na_tokens, frozenset(na_numbers))
            except ValueError:
                hint = (
                    "a decimal comma? use --decimal ','"
                    if decimal == "." and "," in token
                    else f"decimal mark {decimal!r}; add it to --na if it marks a missing value"
                )
                raise CalibrationError(
                    f"{source} line {lineno}, column {c!r}: {token!r} is not a number ({hint})"
                ) from None
        t_token = row[index[time_column]] if time_column and index[time_column] < len(row) else ""
        for c, v in rec.items():
            missing[c] += int(np.isnan(v))
        if any(np.isnan(v) for v in rec.values()) or (time_column and not t_token.strip()):
            dropped += 1
            continue
        if time_column:
            times.append(parse_time(t_token, time_format))
        for c in columns:
            values[c].append(rec[c])
    arrays = {c: np.asarray(v, dtype=np.float64) for c, v in values.items()}
    if time_column:
        order = np.asarray(sorted(range(len(times)), key=times.__getitem__), dtype=np.intp)
        arrays = {c: a[order] for c, a in arrays.items()}
        return Table(arrays, tuple(times[i] for i in order), read, dropped, missing)
    return Table(arrays, None, read, dropped, missing)
