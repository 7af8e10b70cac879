"""`luftnett annotate`: staff annotations of a device's period (add, list, revoke)."""

from __future__ import annotations

import dataclasses
import getpass
import json
import re
from datetime import date, datetime
from typing import TYPE_CHECKING, Any

import click

from luftnett.cli import settings_of
from luftnett.timefmt import utc_local, utc_local_fields

if TYPE_CHECKING:  # click >= 8.2 types ParamType by its value; older click is not generic
    import psycopg

    _DateTimeParam = click.ParamType[datetime]
    _DateParam = click.ParamType[date]
else:
    _DateTimeParam = _DateParam = click.ParamType


class AwareDateTime(_DateTimeParam):
    """ISO 8601 with a time zone: 2026-12-31T23:00:00+01:00 or ...Z."""

    name = "datetime"

    def convert(
        self, value: Any, param: click.Parameter | None, ctx: click.Context | None
    ) -> datetime:
        if isinstance(value, datetime):
            return value
        try:
            t = datetime.fromisoformat(str(value))
        except ValueError:
            self.fail(f"{value!r} is not ISO 8601 (e.g. 2026-12-31T23:00:00+01:00)", param, ctx)
        if t.tzinfo is None:
            self.fail(f"{value!r} has no time zone; add Z or +01:00", param, ctx)
        return t


AWARE = AwareDateTime()


class CalendarDay(_DateParam):
    """A day, YYYY-MM-DD; tells a day that does not exist (2026-02-30) from another format."""

    name = "date"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return "[%Y-%m-%d]"  # as click.DateTime's, which this replaced (docs/cli.md)

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None) -> date:
        if isinstance(value, date):
            return value
        text = str(value)
        if not re.fullmatch(r"\d{4}-\d{2}-\d{2}", text):
            self.fail(f"{text!r} is not a day in the form YYYY-MM-DD (e.g. 2026-11-22)", param, ctx)
        try:
            return date.fromisoformat(text)
        except ValueError:
            self.fail(f"{text!r} is no day of the calendar; check the month and day", param, ctx)


DAY = CalendarDay()


def require_device(conn: psycopg.Connection[Any], device_id: str) -> None:
    """Refuse a device that is not registered (a typo would otherwise report nothing)."""
    if not conn.execute("SELECT 1 FROM devices WHERE device_id = %s", (device_id,)).fetchone():
        raise click.ClickException(
            f"no device {device_id!r}; `luftnett devices health --all` lists them"
        )


@click.group()
def annotate() -> None:
    """Staff annotations: mark a device's period (maintenance, roadworks, fireworks, fog)."""


@annotate.command("add")
@click.option(
    "--device", "device_ids", multiple=True, help="Device id (repeatable: one annotation each)."
)
@click.option("--all-devices", is_flag=True, help="Every registered device (a town-wide event).")
@click.option("--start", required=True, type=AWARE, help="Start, ISO 8601 with zone.")
@click.option("--end", required=True, type=AWARE, help="End (exclusive), ISO 8601 with zone.")
@click.option(
    "--kind",
    required=True,
    type=click.Choice(["maintenance", "roadworks", "fireworks", "fog", "other"]),
    help="What happened.",
)
@click.option("--reason", required=True, help="Why, in words.")
@click.option("--by", default=None, help="Who annotates (default: the login name).")
@click.option(
    "--invalidate/--no-invalidate",
    default=False,
    show_default=True,
    help="Leave the period's readings out of statistics (reversible: revoke).",
)
@click.pass_context
def annotate_add(
    ctx: click.Context,
    device_ids: tuple[str, ...],
    all_devices: bool,
    start: datetime,
    end: datetime,
    kind: str,
    reason: str,
    by: str | None,
    invalidate: bool,
) -> None:
    """Annotate a period of devices; with --invalidate their readings leave the statistics.

    One annotation per device, all in one transaction (all are added, or none). Raw readings
    are never changed; rollups of the covered hours are recomputed at once.

    Example:  luftnett annotate add --all-devices --start 2026-12-31T23:00+01:00
    --end 2027-01-01T02:00+01:00 --kind fireworks --reason "New Year" --invalidate
    """
    import psycopg

    from luftnett.collector import annotations
    from luftnett.connect import database_url

    if device_ids and all_devices:
        raise click.UsageError(
            "--device and --all-devices exclude each other: give --device ID (repeatable) "
            "or --all-devices, not both"
        )
    if not device_ids and not all_devices:
        raise click.UsageError("name the devices: --device ID (repeatable) or --all-devices")
    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        devices = list(device_ids)
        if all_devices:
            devices = [r[0] for r in conn.execute("SELECT device_id FROM devices ORDER BY 1")]
            if not devices:
                raise click.ClickException("no devices are registered yet: nothing to annotate")
        added = annotations.add_many(
            conn, devices, start, end, kind, reason, by or getpass.getuser(), invalidate
        )
        held = annotations.readings_in(conn, added)
    for a, n in zip(added, held, strict=True):
        what = (
            f"invalidates its readings: {n} leave the statistics"
            if a.invalidates
            else f"informational, {n} readings in the period"
        )
        click.echo(f"annotation {a.annotation_id} added for {a.device_id} ({a.kind}, {what})")


@annotate.command("list")
@click.option("--device", "device_id", default=None, help="Only this device.")
@click.option("--active", is_flag=True, help="Only annotations not revoked.")
@click.option("--json", "as_json", is_flag=True, help="JSON lines instead of a table.")
@click.option("--audit", "with_audit", is_flag=True, help="Print each annotation's audit trail.")
@click.pass_context
def annotate_list(
    ctx: click.Context, device_id: str | None, active: bool, as_json: bool, with_audit: bool
) -> None:
    """List annotations (times in UTC and Oslo time), optionally with their audit trail.

    Example:  luftnett annotate list --device demo-001 --audit
    """
    import psycopg

    from luftnett.collector import annotations
    from luftnett.connect import database_url
    from luftnett.db.schema import ANNOTATION_TIMES

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        # times read in UTC, whatever the server's zone: a period stored out of range (ending
        # 9999-12-31 UTC) is then still readable, where local time would pass year 9999
        conn.execute("SET TIME ZONE 'UTC'")
        items = annotations.list_annotations(conn, device_id, active)
        for a in items:
            trail = annotations.audit(conn, a.annotation_id) if with_audit else []
            if as_json:
                doc: dict[str, Any] = {}
                for k, v in dataclasses.asdict(a).items():
                    if k in ANNOTATION_TIMES:
                        doc.update(utc_local_fields(k, v))
                    else:
                        doc[k] = v
                if with_audit:
                    doc["audit"] = [
                        {
                            "action": t["action"],
                            "changed_by": t["changed_by"],
                            **utc_local_fields("changed_at", t["changed_at"]),
                        }
                        for t in trail
                    ]
                click.echo(json.dumps(doc))
                continue
            state = (
                "active"
                if a.revoked_at is None
                else f"revoked {utc_local(a.revoked_at)} by {a.revoked_by}"
            )
            inval = "invalidates" if a.invalidates else "note"
            click.echo(
                f"{a.annotation_id:>6} {a.device_id} {utc_local(a.starts_at)} -> "
                f"{utc_local(a.ends_at)} {a.kind} {inval} by {a.created_by}: {a.reason} [{state}]"
            )
            for t in trail:
                click.echo(
                    f"       {utc_local(t['changed_at'])} {t['action']} by {t['changed_by']}"
                )
        if not items and not as_json:
            click.echo("no annotations")


@annotate.command("revoke")
@click.argument("annotation_id", type=int)
@click.option("--reason", required=True, help="Why it no longer holds.")
@click.option("--by", default=None, help="Who revokes (default: the login name).")
@click.pass_context
def annotate_revoke(ctx: click.Context, annotation_id: int, reason: str, by: str | None) -> None:
    """Revoke an annotation: its readings count again; the annotation and its audit stay.

    Example:  luftnett annotate revoke 12 --reason "entered for the wrong device"
    """
    import psycopg

    from luftnett.collector import annotations
    from luftnett.connect import database_url

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        a = annotations.revoke(conn, annotation_id, by or getpass.getuser(), reason)
    click.echo(f"annotation {a.annotation_id} revoked by {a.revoked_by}")
