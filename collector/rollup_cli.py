"""`luftnett rollup`: recompute rollups from scratch (a scheduled job) and show them."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from decimal import Decimal
from typing import Any

import click

from luftnett.cli import settings_of
from luftnett.collector.annotate_cli import AWARE, DAY, require_device


@click.group()
def rollup() -> None:
    """Hourly and daily rollups with coverage."""


@rollup.command("refresh")
@click.option("--device", "device_id", default=None, help="One device (default: all).")
@click.option("--since", type=AWARE, default=None, help="From this time (default: the start).")
@click.option("--until", type=AWARE, default=None, help="Up to this time (default: the end).")
@click.pass_context
def rollup_refresh(
    ctx: click.Context, device_id: str | None, since: datetime | None, until: datetime | None
) -> None:
    """Recompute hourly and daily rollups from the readings, one transaction per device.

    The collector keeps rollups after each batch; this gives the same rows from scratch
    (run it from cron where the collector writes with rollups off, or after bulk imports).

    Example:  luftnett rollup refresh --since 2026-11-01T00:00Z
    """
    import psycopg

    from luftnett.collector.rollups import refresh
    from luftnett.connect import database_url

    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        if device_id is not None:
            require_device(conn, device_id)
        res = refresh(conn, device_id, since, until)
        conn.commit()
    click.echo(f"refreshed {res.devices} devices: {res.hours} hours, {res.days} days")


_SHOW = """
SELECT d.*, to_jsonb(m) AS by_quantity
FROM rollup_daily d
LEFT JOIN rollup_daily_means m USING (device_id, day_convention, day)
WHERE d.device_id = %(device)s AND d.day_convention = %(conv)s
  AND (%(since)s::date IS NULL OR d.day >= %(since)s)
  AND (%(until)s::date IS NULL OR d.day <= %(until)s)
ORDER BY d.day
"""

#: a day's statistic of a quantity is valid with this many valid hours of it (LIMITS.md)
DAY_MIN_VALID_HOURS = 18


def _quantities(by: dict[str, Any] | None, quantities: tuple[str, ...]) -> dict[str, Any]:
    """Per quantity with data: the mean of its valid hourly means, its valid hours (>= 75 %
    of the hour's expected readings with a valid value of it) and whether the day is valid
    for it, as the API's daily series have them (rollup_daily_means, migration 0040)."""
    out: dict[str, Any] = {}
    for q in quantities:
        hours = int(by.get(f"{q}_hours_valid") or 0) if by else 0
        if not by or not by.get(f"{q}_n"):
            continue
        total = by.get(f"{q}_mean_sum")
        out[q] = {
            "mean": float(total) / hours if hours and total is not None else None,
            "hours_valid": hours,
            "valid": hours >= DAY_MIN_VALID_HOURS,
        }
    return out


def _plain(v: Any) -> Any:
    if isinstance(v, Decimal):
        return float(v)
    if isinstance(v, datetime):
        return v.astimezone(UTC).isoformat()
    if hasattr(v, "isoformat"):
        return v.isoformat()
    return v


@rollup.command("show")
@click.option("--device", "device_id", required=True, help="Device id.")
@click.option(
    "--day-convention",
    "convention",
    type=click.Choice(["utc+01", "Europe/Oslo"], case_sensitive=False),
    default="utc+01",
    show_default=True,
    help="utc+01 (compliance days) or Europe/Oslo (display days).",
)
@click.option("--since", type=DAY, default=None, help="First day.")
@click.option("--until", type=DAY, default=None, help="Last day.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per day.")
@click.pass_context
def rollup_show(
    ctx: click.Context,
    device_id: str,
    convention: str,
    since: date | None,
    until: date | None,
    as_json: bool,
) -> None:
    """Daily means with coverage for one device, in the chosen day convention.

    Per quantity with data: the mean of its valid hourly means and its valid hours (an hour is
    valid with 75 % of its expected readings valid for that quantity; a day with 18 valid
    hours), as the API's daily series. Each quantity is judged by its own readings: a box with
    a PM sensor and an SHT31 stores two readings a window, and its PM2.5 day is judged by the
    PM sensor's. --json adds the day's rollup row (the box's readings of any sensor).

    Example:  luftnett rollup show --device demo-001 --day-convention Europe/Oslo
    """
    import psycopg
    from psycopg.rows import dict_row

    from luftnett.collector.rollups import DayConvention
    from luftnett.connect import database_url
    from luftnett.db.schema import VALUE_COLUMNS

    if since is not None and until is not None and since > until:
        raise click.UsageError(
            f"--since ({since}) is after --until ({until}): give the first day first"
        )
    conv = DayConvention.parse(convention)
    p = {
        "device": device_id,
        "conv": conv.value,
        "since": since,
        "until": until,
    }
    with (
        database_url(settings_of(ctx)) as url,
        psycopg.connect(url) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        require_device(conn, device_id)
        rows = cur.execute(_SHOW, p).fetchall()
    if not as_json:
        click.echo(f"{device_id}: {conv.describe}")
        if not rows:
            click.echo("no rollup days in this range (`luftnett rollup refresh` computes them "
                       "from the stored readings)")  # fmt: skip
    for r in rows:
        per = _quantities(r.pop("by_quantity"), VALUE_COLUMNS)
        if as_json:
            doc = {k: _plain(v) for k, v in r.items() if not k.endswith("_sum")}
            doc["day_start_local"] = r["day_start"].astimezone(conv.tz).isoformat()
            doc["day_end_local"] = r["day_end"].astimezone(conv.tz).isoformat()
            doc["means"] = {
                q: float(r[f"{q}_sum"] / r[f"{q}_n"]) if r[f"{q}_n"] else None
                for q in VALUE_COLUMNS
            }
            doc["quantities"] = per
            click.echo(json.dumps(doc))
            continue
        shown = " ".join(
            f"{q}={'-' if v['mean'] is None else format(v['mean'], '.1f')} "
            f"({v['hours_valid']} h valid{'' if v['valid'] else ': insufficient data'})"
            for q, v in per.items()
        )
        click.echo(f"{r['day']} {r['hours_in_day']}h readings={r['n_stored']} {shown}")
