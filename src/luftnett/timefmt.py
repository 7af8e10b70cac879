"""Times as luftnett prints them: in UTC and in local time (Europe/Oslo), each labelled.

Whatever time zone the database session has (PostgreSQL's ``TimeZone``, which a server set up
in Norway has as ``Europe/Oslo``), a time is converted before it is printed, so a column
headed UTC holds UTC.
"""

from __future__ import annotations

from datetime import UTC, datetime
from zoneinfo import ZoneInfo

__all__ = ["LOCAL_TZ", "utc_local", "utc_local_fields"]

#: the local time of every output (the Norwegian users'; day conventions: collector/rollups.py)
LOCAL_TZ = ZoneInfo("Europe/Oslo")


def _local(t: datetime) -> datetime | None:
    """``t`` in local time; None where that passes Python's range (year 9999 ending late in
    the evening UTC: a period stored by psql, or before luftnett checked its periods)."""
    try:
        return t.astimezone(LOCAL_TZ)
    except OverflowError:
        return None


def utc_local(t: datetime) -> str:
    """``2026-11-24 14:16:08Z (15:16:08 Oslo)``; the local date is written when it differs
    (UTC alone where local time is out of range)."""
    u, loc = t.astimezone(UTC), _local(t)
    if loc is None:
        return f"{u:%Y-%m-%d %H:%M:%S}Z"
    local = f"{loc:%H:%M:%S}" if loc.date() == u.date() else f"{loc:%Y-%m-%d %H:%M:%S}"
    return f"{u:%Y-%m-%d %H:%M:%S}Z ({local} Oslo)"


def utc_local_fields(name: str, t: datetime | None) -> dict[str, str | None]:
    """``{name: t in ISO 8601 UTC, name_local: t in local time}`` for a JSON output (both
    None for None; the local one None where it is out of range)."""
    if t is None:
        return {name: None, f"{name}_local": None}
    loc = _local(t)
    return {
        name: t.astimezone(UTC).isoformat(),
        f"{name}_local": None if loc is None else loc.isoformat(),
    }
