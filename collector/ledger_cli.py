"""`luftnett ledger` (completeness per device and day) and `luftnett devices health`."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime, timedelta

import click

from luftnett.cli import settings_of
from luftnett.collector.annotate_cli import DAY, require_device

_CONVENTIONS = click.Choice(["utc+01", "Europe/Oslo"], case_sensitive=False)


@click.command()
@click.option("--device", "device_id", default=None, help="One device (default: every device).")
@click.option(
    "--day",
    type=DAY,
    default=None,
    help="YYYY-MM-DD (default: today in the day convention).",
)
@click.option(
    "--days",
    type=click.IntRange(1, 366),
    default=1,
    show_default=True,
    help="How many days, ending with --day (one query, whatever the fleet).",
)
@click.option(
    "--day-convention",
    "convention",
    type=_CONVENTIONS,
    default="Europe/Oslo",
    show_default=True,
    help="utc+01 (compliance days) or Europe/Oslo (display days, 23/25 h at DST).",
)
@click.option(
    "--late-after",
    type=click.IntRange(min=0),
    default=3600,
    show_default=True,
    help="A reading received more than this many seconds after its ts is late.",
)
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
@click.pass_context
def ledger(
    ctx: click.Context,
    device_id: str | None,
    day: date | None,
    days: int,
    convention: str,
    late_after: int,
    as_json: bool,
) -> None:
    """Completeness per device and day: sent (from seq numbers), stored, late, duplicates,
    missing seq ranges. "We lost nothing" is missing = 0.

    With --device, a line for every day, empty days included; without, every device and day
    that stored or dropped readings.

    Examples:
      luftnett ledger --device demo-001 --day 2026-11-22 --day-convention utc+01
      luftnett ledger --days 7          (the fleet, the last seven days)
    """
    import psycopg

    from luftnett.collector.ledger import ledger as build
    from luftnett.collector.rollups import DayConvention
    from luftnett.connect import database_url

    conv = DayConvention.parse(convention)
    last: date = day if day else datetime.now(UTC).astimezone(conv.tz).date()
    if not date(1970, 1, 1) <= last <= date(2099, 12, 31):
        raise click.BadParameter("must lie between 1970-01-01 and 2099-12-31", param_hint="--day")
    first = last - timedelta(days=days - 1)
    if first < date(1970, 1, 1):
        raise click.BadParameter(
            f"the first day ({first}) is before 1970-01-01: ask for fewer days", param_hint="--days"
        )
    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        if device_id is not None:
            require_device(conn, device_id)
        entries = build(conn, last, device_id, conv, timedelta(seconds=late_after), days)
    if as_json:
        for e in entries:
            click.echo(json.dumps(e.as_dict()))
        return
    span = str(last) if days == 1 else f"{first} to {last}"
    click.echo(f"{'day' if days == 1 else 'days'} {span} ({conv.describe})")
    if not entries:
        click.echo("no readings stored or dropped " + ("that day" if days == 1 else "those days"))
        return
    click.echo(
        f"{'device':<24} {'day':<10} {'sent':>7} {'stored':>7} {'missing':>7} {'dupes':>6} "
        f"{'late':>6}  missing seq ranges"
    )
    for e in entries:
        ranges = ", ".join(f"{a}-{b}" if a != b else str(a) for a, b in e.missing_ranges[:10])
        if len(e.missing_ranges) > 10:
            ranges += f", ... ({len(e.missing_ranges)} ranges)"
        click.echo(
            f"{e.device_id:<24} {e.day!s:<10} {e.sent:>7} {e.stored:>7} {e.missing:>7} "
            f"{e.duplicates:>6} {e.late:>6}  {ranges or '-'}"
        )
    if len(entries) > 1:
        sent, stored = sum(e.sent for e in entries), sum(e.stored for e in entries)
        click.echo(
            f"{'total':<35} {sent:>7} {stored:>7} {sent - stored:>7} "
            f"{sum(e.duplicates for e in entries):>6} {sum(e.late for e in entries):>6}"
        )


@click.group()
def devices() -> None:
    """Devices: their health."""


@devices.command("health")
@click.option(
    "--silent-after",
    type=click.IntRange(min=1),
    default=900,
    show_default=True,
    help="A device not heard from for this many seconds is silent.",
)
@click.option("--all", "show_all", is_flag=True, help="List healthy devices too.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per device.")
@click.pass_context
def devices_health(ctx: click.Context, silent_after: int, show_all: bool, as_json: bool) -> None:
    """List devices that are silent, stuck (one PM or NO2 value repeated), or report sensor faults.

    Problems: silent, stuck, sensor_error, clock_suspect, seq_reused (in the last day the
    device numbered readings from an earlier seq again, e.g. after a new SD card: they wait
    in quarantine, see `luftnett quarantine list --reason seq_reused`), and sensor_silent (one
    of the device's sensors stopped reporting while the device reports through another, e.g.
    a dead PM sensor beside a working temperature/RH sensor; the line names it).

    Exit status 0 either way; an empty list means every device is healthy.

    Example:  luftnett devices health --silent-after 600
    """
    import psycopg

    from luftnett.collector.health import device_health
    from luftnett.connect import database_url
    from luftnett.timefmt import utc_local

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        report = device_health(conn, timedelta(seconds=silent_after))
    shown = [h for h in report if show_all or not h.ok]
    for h in shown:
        if as_json:
            click.echo(json.dumps(h.as_dict()))
        else:
            quiet = "".join(
                f"; silent sensor {s.model}{f' {s.serial}' if s.serial else ''}, last reading "
                f"{utc_local(s.last_reading)}"
                for s in h.silent_sensors
            )
            click.echo(
                f"{h.device_id:<24} {', '.join(h.problems) or 'ok':<28} "
                f"last seen {utc_local(h.last_seen)} "
                f"({round(h.silent_for.total_seconds())} s ago){quiet}"
            )
    if not shown and not as_json:
        click.echo(f"all {len(report)} devices healthy")
