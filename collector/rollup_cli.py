"""`luftnett rollup`: recompute rollups from scratch (a scheduled job) and show them."""

from __future__ import annotations

import json
from datetime import UTC, datetime
from decimal import Decimal
from typing import Any

import click

from luftnett.cli import settings_of
from luftnett.collector.annotate_cli import AWARE


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

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        res = refresh(conn, device_id, since, until)
        conn.commit()
    click.echo(f"refreshed {res.devices} devices: {res.hours} hours, {res.days} days")


_SHOW = """
SELECT * FROM rollup_daily WHERE device_id = %(device)s AND day_convention = %(conv)s
  AND (%(since)s::date IS NULL OR day >= %(since)s)
  AND (%(until)s::date IS NULL OR day <= %(until)s)
ORDER BY day
"""


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
@click.option("--since", type=click.DateTime(["%Y-%m-%d"]), default=None, help="First day.")
@click.option("--until", type=click.DateTime(["%Y-%m-%d"]), default=None, help="Last day.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per day.")
@click.pass_context
def rollup_show(
    ctx: click.Context,
    device_id: str,
    convention: str,
    since: datetime | None,
    until: datetime | None,
    as_json: bool,
) -> None:
    """Daily means with coverage for one device, in the chosen day convention.

    Example:  luftnett rollup show --device demo-001 --day-convention Europe/Oslo
    """
    import psycopg
    from psycopg.rows import dict_row

    from luftnett.collector.rollups import DayConvention
    from luftnett.connect import database_url
    from luftnett.db.schema import VALUE_COLUMNS

    conv = DayConvention.parse(convention)
    p = {
        "device": device_id,
        "conv": conv.value,
        "since": since.date() if since else None,
        "until": until.date() if until else None,
    }
    with (
        database_url(settings_of(ctx)) as url,
        psycopg.connect(url) as conn,
        conn.cursor(row_factory=dict_row) as cur,
    ):
        rows = cur.execute(_SHOW, p).fetchall()
    if not as_json:
        click.echo(f"{device_id}: {conv.describe}")
    for r in rows:
        means = {
            q: float(r[f"{q}_sum"] / r[f"{q}_n"]) if r[f"{q}_n"] else None for q in VALUE_COLUMNS
        }
        if as_json:
            doc = {k: _plain(v) for k, v in r.items() if not k.endswith("_sum")}
            doc["day_start_local"] = r["day_start"].astimezone(conv.tz).isoformat()
            doc["day_end_local"] = r["day_end"].astimezone(conv.tz).isoformat()
            doc["means"] = means
            click.echo(json.dumps(doc))
            continue
        shown = " ".join(f"{q}={v:.1f}" for q, v in means.items() if v is not None)
        click.echo(
            f"{r['day']} {r['hours_in_day']}h valid_hours={r['hours_valid']} "
            f"n={r['n_valid']}/{r['n_expected']} ({r['coverage_pct']} %) "
            f"{'valid' if r['day_valid'] else 'insufficient data'} {shown}"
        )
