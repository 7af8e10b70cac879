"""The hourly download: the open-data archive's ``hourly`` dataset, served by the API.

Rows come from :meth:`luftnett.publish.source.Source.hourly`, the code that writes the
archive's hourly files, for the asked devices only, a UTC month at a time (each month's rows
are built, sent and dropped before the next is read), with the archive's columns
(:func:`luftnett.publish.schema.fields`) and its partition key ``pollutant`` as a column: what
a reader of the archive's Hive partitions gets, without ``year`` and ``month``. So the
catalogue's ``hourly`` record describes this download as well as the archive's files.
"""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from datetime import date
from typing import Any

from luftnett.api.export import Sink
from luftnett.publish.schema import POLLUTANTS, arrow_schema

__all__ = ["Only", "months", "stream_hourly"]


def months(start: date, end: date) -> Iterator[tuple[date, date]]:
    """[a, b) per UTC calendar month of the days [start, end)."""
    a = start
    while a < end:
        nxt = date(a.year + a.month // 12, a.month % 12 + 1, 1)
        b = min(nxt, end)
        yield a, b
        a = b


@dataclass(frozen=True)
class Only:
    """Keep the hours of these devices, or at these sites (the site of the hour)."""

    devices: set[str]
    sites: set[str]

    def mask(self, t: Any) -> Any:
        import pyarrow as pa  # type: ignore[import-untyped]
        import pyarrow.compute as pc  # type: ignore[import-untyped]

        dev = pc.is_in(t.column("device_id"), value_set=pa.array(sorted(self.devices), pa.string()))
        site = pc.is_in(t.column("site_id"), value_set=pa.array(sorted(self.sites), pa.string()))
        return pc.or_(dev, pc.fill_null(site, False))


def _month_table(
    src: Any, a: date, b: date, devices: list[str], codes: list[str], only: Only | None = None
) -> Any:
    """The span's hourly rows of ``devices`` and pollutants ``codes`` (``src``: a publish
    Source; ``only``: of those, the rows it keeps), ordered by device, hour and pollutant,
    with the archive's types and field metadata; None when there are none."""
    import pyarrow as pa

    tables, _ = src.hourly(a, b, devices)
    parts = []
    for code in codes:
        t = tables.get(code)
        if t is not None and only is not None:
            t = t.filter(only.mask(t))
        if t is None or not t.num_rows:
            continue
        parts.append(t.append_column("pollutant", pa.array([code] * t.num_rows, pa.string())))
    if not parts:
        return None
    whole = pa.concat_tables(parts)
    return whole.sort_by(
        [("device_id", "ascending"), ("hour_start", "ascending"), ("pollutant", "ascending")]
    )


def _csv_bytes(table: Any, header: bool) -> bytes:
    """CSV text as the readings download writes it: times as PostgreSQL's ISO text
    (``2026-05-01 00:00:00+00``; local times without offset), empty fields for nulls."""
    import pyarrow as pa
    import pyarrow.compute as pc
    import pyarrow.csv as pacsv  # type: ignore[import-untyped]

    cols = []
    for name in table.column_names:
        col = table.column(name)
        if pa.types.is_timestamp(col.type):
            fmt = "%Y-%m-%d %H:%M:00" + ("+00" if col.type.tz else "")  # whole hours
            col = pc.strftime(col, format=fmt)
        cols.append(col)
    out = io.BytesIO()
    if header:  # written here: pyarrow quotes the names
        out.write((",".join(table.column_names) + "\n").encode())
    # no quotes: the text columns are ids, units and codes (a-z, 0-9, "-", "µg/m³"), which
    # hold no comma, quote or line break (pyarrow would refuse to write one)
    options = pacsv.WriteOptions(include_header=False, quoting_style="none")
    pacsv.write_csv(pa.Table.from_arrays(cols, names=table.column_names), out, options)
    return out.getvalue()


async def stream_hourly(
    url: str,
    timezone: str,
    start: date,
    end: date,
    devices: list[str],
    codes: list[str],
    fmt: str,
    metadata: dict[str, str],
    only: Only | None = None,
) -> AsyncIterator[bytes]:
    """CSV text or Parquet bytes of the hourly rows of the days [start, end), a UTC month
    per step, each ordered by device, hour and pollutant (``fmt``: "csv" or "parquet";
    Parquet: a row group per month, ``metadata`` in the file's key-value metadata)."""
    import pyarrow as pa
    import pyarrow.parquet as pq  # type: ignore[import-untyped]

    from luftnett.publish.source import Source

    schema = arrow_schema("hourly", timezone)
    schema = schema.append(pa.field("pollutant", pa.string(), metadata={
        "description": "pollutant code: " + ", ".join(POLLUTANTS.values())
    }))  # fmt: skip
    src = await asyncio.to_thread(Source, url, timezone)
    try:
        if fmt == "csv":
            yield _csv_bytes(schema.empty_table(), header=True)
        else:
            sink = Sink()
            writer = pq.ParquetWriter(
                sink,
                schema.with_metadata(metadata),
                compression="zstd",
                use_dictionary=["device_id", "site_id", "unit", "pollutant"],
            )
        for a, b in months(start, end):
            t = await asyncio.to_thread(_month_table, src, a, b, devices, codes, only)
            if t is None:
                continue
            if fmt == "csv":
                yield _csv_bytes(t.cast(schema), header=False)
            else:
                writer.write_table(t.cast(schema))
                yield sink.drain()
        if fmt != "csv":
            writer.close()
            yield sink.drain()
    finally:
        await asyncio.to_thread(src.close)
