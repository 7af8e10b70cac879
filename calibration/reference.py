"""Reference-station data in: a documented CSV and the NILU air-quality API (I/O, no database).

This module reads files and HTTP; :mod:`luftnett.calibration.store` writes what it returns.
Values are converted to luftnett's unit of each pollutant: PM in µg/m³, NO2 and O3 in ppb
(µg/m³ ÷ 1.91 for NO2, ÷ 2.00 for O3, at 20 °C and 101.3 kPa as in 2008/50/EC).

NILU (https://api.nilu.no), the endpoints used:

* ``GET /lookup/stations`` (optionally ``?area=``): a list of stations, each with ``id``,
  ``zone``, ``municipality``, ``area``, ``station`` (the name), ``eoi`` (the EoI code),
  ``type``, ``latitude``, ``longitude``, ``owner``, ``status``, ``components`` (comma-separated,
  e.g. ``"NO2, PM10, PM2.5"``), ``firstMeasurment``, ``lastMeasurment``.
* ``GET /obs/historical/{from}/{to}/{station}?components=PM2.5;NO2``: a list with one object
  per station and component: the station fields above plus ``component``, ``unit``,
  ``timestep`` (s) and ``values``, a list of ``{fromTime, toTime, value, qualityControlled}``.

``qualityControlled: true`` is taken as the provider's *validated* status, ``false`` as
*provisional*. Only hourly series (``timestep`` 3600) are kept. The data must be credited:
:data:`NILU_ATTRIBUTION` is stored with the station and printed with every output.
"""

from __future__ import annotations

import csv
import json
import logging
import math
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any, Literal

from luftnett.collector.qc import RANGES
from luftnett.errors import CalibrationError

__all__ = [
    "CSV_COLUMNS",
    "NILU_ATTRIBUTION",
    "NILU_BASE_URL",
    "NiluClient",
    "ParseStats",
    "ReferenceDataError",
    "ReferenceObservation",
    "ReferenceStation",
    "Status",
    "check_base_url",
    "parse_nilu_historical",
    "parse_nilu_stations",
    "read_reference_csv",
    "to_luftnett_unit",
]

log = logging.getLogger(__name__)

Status = Literal["provisional", "validated"]
POLLUTANTS = ("pm25", "pm10", "no2", "o3")
NILU_BASE_URL = "https://api.nilu.no"
NILU_ATTRIBUTION = (
    "Reference data: NILU – Norwegian Institute for Air Research (api.nilu.no) and "
    "luftkvalitet.info; provisional values may change after validation."
)
#: NILU component names -> luftnett pollutant codes
NILU_COMPONENTS: dict[str, str] = {"PM2.5": "pm25", "PM10": "pm10", "NO2": "no2", "O3": "o3"}
_UGM3_PER_PPB: dict[str, float] = {"no2": 1.91, "o3": 2.00}
_UNITS_UGM3 = ("µg/m³", "ug/m3", "µg/m3", "ugm3", "ug/m³")

#: plausible range of each pollutant in luftnett's unit: the collector's QC ranges (values
#: outside are flagged OUT_OF_RANGE there, refused here); O3 has none, so only ±inf is refused
_RANGES: dict[str, tuple[float, float]] = {
    "pm25": RANGES["pm25_ugm3"],
    "pm10": RANGES["pm10_ugm3"],
    "no2": RANGES["no2_ppb"],
}
_UNIT = {"pm25": "µg/m³", "pm10": "µg/m³", "no2": "ppb", "o3": "ppb"}
#: how many line numbers an error or a report shows
_SHOWN = 5

#: the columns of a reference CSV, in any order (extra columns are ignored)
CSV_COLUMNS: tuple[str, ...] = ("time", "pollutant", "value", "unit", "status")


class ReferenceDataError(CalibrationError):
    """Reference data could not be read, fetched or understood."""


@dataclass(frozen=True, slots=True)
class ReferenceStation:
    station_id: str
    name: str
    provider: str
    lat: float | None = None
    lon: float | None = None
    pollutants: tuple[str, ...] = ()
    attribution: str | None = None


@dataclass(frozen=True, slots=True)
class ReferenceObservation:
    """One hourly value for the hour starting at ``hour_start`` (aware UTC), luftnett units."""

    pollutant: str
    hour_start: datetime
    value: float
    status: Status


@dataclass(slots=True)
class ParseStats:
    """What a parser kept and what it skipped, by reason (with the first few line numbers)."""

    kept: int = 0
    skipped: dict[str, int] = field(default_factory=dict)
    lines: dict[str, list[int]] = field(default_factory=dict)

    def skip(self, why: str, line: int | None = None) -> None:
        self.skipped[why] = self.skipped.get(why, 0) + 1
        if line is not None and len(at := self.lines.setdefault(why, [])) < _SHOWN:
            at.append(line)

    def describe(self) -> list[str]:
        """One line per reason: ``skipped 2 values: empty value (lines 3, 7)``."""
        out = []
        for why, n in self.skipped.items():
            at = self.lines.get(why)
            where = f" (line{'s' if n > 1 else ''} {_lines(at, n)})" if at else ""
            out.append(f"skipped {n} value{'s' if n > 1 else ''}: {why}{where}")
        return out


def to_luftnett_unit(pollutant: str, value: float, unit: str) -> float:
    """``value`` in ``unit`` converted to luftnett's unit of ``pollutant``."""
    u = unit.strip().lower().replace(" ", "")
    if pollutant in ("pm25", "pm10"):
        if u in _UNITS_UGM3:
            return value
        raise ReferenceDataError(f"{pollutant} must be in µg/m³ (got unit {unit!r})")
    if u == "ppb":
        return value
    if u in _UNITS_UGM3:
        return value / _UGM3_PER_PPB[pollutant]
    raise ReferenceDataError(f"{pollutant} must be in µg/m³ or ppb (got unit {unit!r})")


def _aware(text: str, where: str) -> datetime:
    try:
        t = datetime.fromisoformat(text.strip().replace("Z", "+00:00"))
    except ValueError as exc:
        raise ReferenceDataError(f"{where}: cannot read time {text!r} (ISO 8601)") from exc
    if t.tzinfo is None:
        raise ReferenceDataError(f"{where}: time {text!r} has no UTC offset; add +00:00 or Z")
    t = t.astimezone(UTC)
    if t.minute or t.second or t.microsecond:
        raise ReferenceDataError(f"{where}: {text!r} is not the start of an hour")
    return t


def _bad_range(pollutant: str, value: float) -> bool:
    lim = _RANGES.get(pollutant)
    if lim is None:
        return not math.isfinite(value)
    return not lim[0] <= value <= lim[1]


def _lines(numbers: Sequence[object], total: int) -> str:
    shown = ", ".join(str(n) for n in numbers[:_SHOWN])
    return shown + (f" and {total - _SHOWN} more" if total > _SHOWN else "")


def _header_hint(fieldnames: Sequence[str], delimiter: str) -> str:
    """Why the header has none of the columns: most often a semicolon export (Excel, Norway)."""
    if len(fieldnames) != 1:
        return ""
    hint = f"; the header is one column: is the delimiter {delimiter!r} right?"
    for d in (";", "\t", ",", "|"):
        if d != delimiter and d in fieldnames[0]:
            shown = "tab" if d == "\t" else d
            hint += f" It holds {shown!r}: try --delimiter {shown!r}"
            if d == ";":
                hint += " (and --decimal ',' if the values have a decimal comma)"
            break
    return hint


def read_reference_csv(
    lines: Iterable[str],
    source: str = "csv",
    *,
    delimiter: str = ",",
    decimal: str = ".",
    stats: ParseStats | None = None,
    station: str | None = None,
) -> list[ReferenceObservation]:
    """Parse a reference CSV (columns :data:`CSV_COLUMNS`); raise on a bad line.

    ``time`` is the start of the hour, ISO 8601 with an offset; ``pollutant`` one of pm25,
    pm10, no2, o3; ``value`` a number with ``decimal`` as its decimal mark; ``unit`` µg/m³ (or
    ug/m3) or ppb; ``status`` provisional or validated (empty = provisional).

    The whole file is refused (nothing returned) on a malformed line, on values outside the
    plausible range of their pollutant (:data:`RANGES`, the collector's QC ranges; infinity
    too), and on one hour given twice with different values and the same status; the error
    counts them and names the first lines. Skipped and counted in ``stats`` (with the first
    line numbers): an empty or NaN value, and a repeated hour (the same value again, or a
    provisional value where the file also has a validated one: validated wins, as on import).
    ``station`` only names the station in errors.
    """
    stats = stats if stats is not None else ParseStats()
    reader = csv.DictReader(lines, delimiter=delimiter)
    fieldnames = [(f or "").strip() for f in (reader.fieldnames or [])]
    reader.fieldnames = fieldnames
    missing = [c for c in ("time", "pollutant", "value", "unit") if c not in fieldnames]
    if missing:
        raise ReferenceDataError(
            f"{source}: missing column(s) {', '.join(missing)}; a reference CSV needs "
            f"{', '.join(CSV_COLUMNS)} (status optional)"
            + (_header_hint(fieldnames, delimiter) if fieldnames else "")
        )
    out: list[ReferenceObservation] = []
    seen: dict[tuple[str, datetime], tuple[int, int]] = {}  # -> (line, index in out)
    out_of_range: list[str] = []
    conflicts: list[str] = []
    for i, row in enumerate(reader, start=2):
        where = f"{source} line {i}"
        if not any((v or "").strip() for v in row.values() if isinstance(v, str)):
            continue
        pol = (row["pollutant"] or "").strip().lower().replace(".", "")
        if pol not in POLLUTANTS:
            raise ReferenceDataError(f"{where}: unknown pollutant {row['pollutant']!r}")
        raw = (row["value"] or "").strip()
        if raw == "":
            stats.skip("empty value", i)
            continue
        try:
            v = float(raw.replace(decimal, ".") if decimal != "." else raw)
        except ValueError as exc:
            hint = " (a decimal comma? use --decimal ',')" if "," in raw and decimal == "." else ""
            raise ReferenceDataError(f"{where}: value {raw!r} is not a number{hint}") from exc
        if math.isnan(v):
            stats.skip("value is NaN (not a number)", i)
            continue
        status = (row.get("status") or "").strip().lower() or "provisional"
        if status not in ("provisional", "validated"):
            raise ReferenceDataError(f"{where}: status must be provisional or validated")
        unit = row["unit"] or ""
        try:
            value = to_luftnett_unit(pol, v, unit)
        except ReferenceDataError as exc:
            raise ReferenceDataError(f"{where}: {exc}") from exc
        hour = _aware(row["time"] or "", where)
        if _bad_range(pol, value):
            out_of_range.append(f"{i} ({pol} {raw} {unit.strip()})")
            continue
        obs = ReferenceObservation(pol, hour, value, status)  # type: ignore[arg-type]
        key = (pol, hour)
        if key not in seen:
            seen[key] = (i, len(out))
            out.append(obs)
            continue
        first_line, at = seen[key]
        first = out[at]
        if first.status == obs.status and first.value != obs.value:
            name = f"station {station} " if station else ""
            conflicts.append(
                f"{name}{pol} hour {hour:%Y-%m-%d %H:%M}Z on lines {first_line} "
                f"({first.value:g}) and {i} ({obs.value:g})"
            )
        elif first.status == obs.status:
            stats.skip("same hour again with the same value (kept once)", i)
        else:
            stats.skip("same hour given provisional and validated (validated kept)", i)
            if obs.status == "validated":
                out[at] = obs
                seen[key] = (i, at)
    if out_of_range:
        limits = ", ".join(f"{p} {lo:g} to {hi:g} {_UNIT[p]}" for p, (lo, hi) in _RANGES.items())
        raise ReferenceDataError(
            f"{source}: {len(out_of_range)} value(s) outside the plausible range, line(s) "
            f"{_lines(out_of_range, len(out_of_range))}; the ranges are {limits} (luftnett's "
            "QC ranges, after unit conversion); correct or remove those rows (nothing imported)"
        )
    if conflicts:
        raise ReferenceDataError(
            f"{source}: {len(conflicts)} hour(s) given twice with different values: "
            f"{'; '.join(conflicts[:_SHOWN])}"
            + (f" and {len(conflicts) - _SHOWN} more" if len(conflicts) > _SHOWN else "")
            + "; keep one value per pollutant and hour (nothing imported)"
        )
    stats.kept = len(out)
    return out


def parse_nilu_stations(doc: Any) -> list[ReferenceStation]:
    """Stations from a ``/lookup/stations`` response."""
    if not isinstance(doc, list):
        raise ReferenceDataError("NILU /lookup/stations: expected a JSON list")
    out = []
    for s in doc:
        try:
            comps = [c.strip() for c in str(s.get("components") or "").split(",")]
            out.append(
                ReferenceStation(
                    station_id=str(s.get("eoi") or s["id"]),
                    name=str(s["station"]),
                    provider="nilu",
                    lat=float(s["latitude"]),
                    lon=float(s["longitude"]),
                    pollutants=tuple(NILU_COMPONENTS[c] for c in comps if c in NILU_COMPONENTS),
                    attribution=NILU_ATTRIBUTION,
                )
            )
        except (KeyError, TypeError, ValueError, AttributeError) as exc:
            raise ReferenceDataError(f"NILU /lookup/stations: malformed station {s!r}") from exc
    return out


def parse_nilu_historical(
    doc: Any, stats: ParseStats | None = None
) -> tuple[ReferenceStation | None, list[ReferenceObservation]]:
    """The station and its hourly observations from an ``/obs/historical`` response."""
    stats = stats if stats is not None else ParseStats()
    if not isinstance(doc, list):
        raise ReferenceDataError("NILU /obs/historical: expected a JSON list")
    station: ReferenceStation | None = None
    out: list[ReferenceObservation] = []
    pols: list[str] = []
    for series in doc:
        try:
            comp = str(series["component"])
            unit = str(series.get("unit") or "")
            timestep = int(series.get("timestep") or 3600)
            values = series["values"]
            if station is None:
                station = ReferenceStation(
                    station_id=str(series.get("eoi") or series["station"]),
                    name=str(series["station"]),
                    provider="nilu",
                    lat=float(series["latitude"]),
                    lon=float(series["longitude"]),
                    attribution=NILU_ATTRIBUTION,
                )
        except (KeyError, TypeError, ValueError) as exc:
            raise ReferenceDataError(f"NILU /obs/historical: malformed series: {exc}") from exc
        pol = NILU_COMPONENTS.get(comp)
        if pol is None:
            stats.skip(f"component {comp}")
            continue
        if timestep != 3600:
            stats.skip(f"timestep {timestep} s")
            continue
        pols.append(pol)
        for v in values:
            value = v.get("value")
            if value is None or not math.isfinite(float(value)):
                stats.skip("missing value")
                continue
            start = _aware(str(v["fromTime"]), f"NILU {comp}")
            if "toTime" in v and _aware(str(v["toTime"]), f"NILU {comp}") - start != timedelta(
                hours=1
            ):
                stats.skip("not an hourly value")
                continue
            status: Status = "validated" if v.get("qualityControlled") else "provisional"
            out.append(ReferenceObservation(pol, start, to_luftnett_unit(pol, value, unit), status))
            stats.kept += 1
    if station is not None:
        station = ReferenceStation(
            station.station_id, station.name, station.provider, station.lat, station.lon,
            tuple(dict.fromkeys(pols)), station.attribution,
        )  # fmt: skip
    return station, out


def check_base_url(url: str) -> str:
    """``url`` if it is an http(s) URL with a host, else a :class:`ReferenceDataError`."""
    parts = urllib.parse.urlsplit(url.strip())
    if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
        raise ReferenceDataError(
            f"the NILU API URL must be http:// or https:// with a host, such as "
            f"{NILU_BASE_URL} (got {url!r})"
        )
    return url.strip()


class NiluClient:
    """A small client of the NILU API (stdlib urllib; ``base_url`` points tests at a recording)."""

    def __init__(self, base_url: str = NILU_BASE_URL, timeout_s: float = 30.0) -> None:
        self.base_url = check_base_url(base_url).rstrip("/")
        self.timeout_s = timeout_s

    def _get(self, path: str, query: dict[str, str] | None = None) -> Any:
        url = self.base_url + path
        if query:
            url += "?" + urllib.parse.urlencode(query, safe=";")
        req = urllib.request.Request(url, headers={"Accept": "application/json"})
        try:
            with urllib.request.urlopen(req, timeout=self.timeout_s) as resp:
                body = resp.read()
        except urllib.error.HTTPError as exc:
            raise ReferenceDataError(f"NILU API answered HTTP {exc.code} for {url}") from exc
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            reason = getattr(exc, "reason", exc)
            raise ReferenceDataError(
                f"cannot reach the NILU API at {self.base_url} ({reason}); check the network "
                "or --base-url"
            ) from exc
        try:
            return json.loads(body)
        except ValueError as exc:
            raise ReferenceDataError(f"NILU API: {url} did not return JSON") from exc

    def stations(self, area: str | None = None) -> list[ReferenceStation]:
        return parse_nilu_stations(self._get("/lookup/stations", {"area": area} if area else None))

    def find_station(self, key: str) -> ReferenceStation:
        """The station whose EoI code or name is ``key`` (case-insensitive)."""
        k = key.strip().lower()
        for s in self.stations():
            if k in (s.station_id.lower(), s.name.lower()):
                return s
        raise ReferenceDataError(f"NILU has no station {key!r} (give its name or EoI code)")

    def historical(
        self,
        station_name: str,
        start: datetime,
        end: datetime,
        components: Sequence[str] = ("PM2.5", "PM10", "NO2"),
    ) -> tuple[ReferenceStation | None, list[ReferenceObservation], ParseStats]:
        """Hourly observations of ``station_name`` from ``start`` to ``end`` (aware times)."""
        fmt = "%Y-%m-%d %H:%M"
        t0 = urllib.parse.quote(start.astimezone(UTC).strftime(fmt))
        t1 = urllib.parse.quote(end.astimezone(UTC).strftime(fmt))
        path = f"/obs/historical/{t0}/{t1}/{urllib.parse.quote(station_name)}"
        stats = ParseStats()
        station, obs = parse_nilu_historical(
            self._get(path, {"components": ";".join(components)}), stats
        )
        return station, obs, stats
