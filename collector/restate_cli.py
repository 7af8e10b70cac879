"""`luftnett qc`: quality control over stored readings."""

from __future__ import annotations

from datetime import datetime

import click

from luftnett.cli import settings_of
from luftnett.collector.annotate_cli import AWARE


@click.group()
def qc() -> None:
    """Quality control over stored readings (docs/quality.md)."""


@qc.command("restate")
@click.option("--device", "device_id", default=None, help="One device (default: all).")
@click.option("--since", type=AWARE, default=None, help="Readings from this time (default: all).")
@click.option("--until", type=AWARE, default=None, help="Readings before this time.")
@click.pass_context
def qc_restate(
    ctx: click.Context, device_id: str | None, since: datetime | None, until: datetime | None
) -> None:
    """Re-run the stuck and spike checks over stored readings and update those whose result
    changed, with their hourly rollups. One transaction per page of 20,000 readings, so the
    collector waits for a device's lock one page at most; a line per device (and per page of
    a long one, on stderr).

    The collector keeps these results current for readings it stores (a later reading can
    make an earlier one stuck); run this once after upgrading, for readings an earlier
    version stored, whose flags were set once.

    Example:  luftnett qc restate --since 2026-01-01T00:00Z
    """
    import psycopg

    from luftnett.collector.restate import restate_device
    from luftnett.connect import database_url

    if since is not None and until is not None and since >= until:
        raise click.UsageError(
            f"--since ({since.isoformat()}) must be before --until ({until.isoformat()})"
        )
    total = changed = 0
    # autocommit: each page of restate_device is a transaction of its own
    with database_url(settings_of(ctx)) as url, psycopg.connect(url, autocommit=True) as conn:
        devices = [
            r[0]
            for r in conn.execute(
                "SELECT device_id FROM devices WHERE %(d)s::text IS NULL OR device_id = %(d)s"
                " ORDER BY 1",
                {"d": device_id},
            )
        ]
        if device_id and not devices:
            raise click.ClickException(
                f"no device {device_id!r}; `luftnett devices health --all` lists them"
            )
        for d in devices:

            def progress(checked: int, restated: int, d: str = d) -> None:
                # a device longer than a page: a line per page so far, on stderr
                click.echo(f"  {d}: {checked:,} checked, {restated:,} restated", err=True)

            res = restate_device(conn, d, since=since, until=until, progress=progress)
            total += res.readings
            changed += res.restated
            click.echo(f"{d}: {res.readings:,} readings checked, {res.restated:,} restated, "
                       f"{res.hours:,} hourly rollups recomputed")  # fmt: skip
    click.echo(f"{len(devices)} devices: {total:,} readings checked, {changed:,} restated")
