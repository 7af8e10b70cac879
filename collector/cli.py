"""`luftnett collector`: the service that stores readings."""

from __future__ import annotations

import logging
import time
from typing import TYPE_CHECKING, Any

import click

from luftnett.cli import settings_of, wait_forever

if TYPE_CHECKING:
    import psycopg

    from luftnett.collector.service import Collector, CollectorConfig
    from luftnett.settings import Settings

_SWITCH_INTERVAL_S = 0.001
_RETIRE_QUIET_S = 3.0  # a retiring session is drained when nothing came for this long

log = logging.getLogger("luftnett.collector")


def _config(s: Settings, database_url: str, mqtt_url: str, **overrides: Any) -> CollectorConfig:
    """The collector's configuration from the settings (``overrides``: fields set apart)."""
    from luftnett.collector.service import CollectorConfig

    c = s.collector
    fields: dict[str, Any] = {
        "database_url": database_url,
        "mqtt_url": mqtt_url,
        "topic_root": s.mqtt.topic_root,
        "client_id": c.client_id,
        "batch_size": c.batch_size,
        "batch_readings": c.batch_readings,
        "flush_interval_s": c.flush_interval_s,
        "shared_group": c.shared_group,
        "register_unknown_devices": c.register_unknown_devices,
        "rollup_interval_s": c.rollup_interval_s,
        "mqtt_protocol": c.mqtt_protocol,
        "writers": c.writers,
        "calibration": c.calibration,
        "calibration_max_lag_s": c.calibration_max_lag_s,
    }
    return CollectorConfig(**(fields | overrides))


def _retire(col: Collector) -> None:
    """A retiring worker: store what its session queued, then delete the session. Exits 0
    once done (the service does not start it again), 3 when stopped before."""
    from luftnett.collector.processes import delete_session
    from luftnett.signals import sigterm_as_interrupt

    cfg = col.cfg
    col.start()
    drained = False
    try:
        with sigterm_as_interrupt():
            while not (drained := col.drained(_RETIRE_QUIET_S)):
                time.sleep(0.2)
    except KeyboardInterrupt:
        pass
    finally:
        col.stop()
    if not drained:
        raise SystemExit(3)
    delete_session(cfg.mqtt_url, cfg.client_id, cfg.mqtt_protocol)
    log.info(
        "session retired",
        extra={"client_id": cfg.client_id, "messages": col.counts["messages"]},
    )


@click.group()
def collector() -> None:
    """The collector that stores readings from MQTT."""


@collector.command("run")
@click.pass_context
def collector_run(ctx: click.Context) -> None:
    """Subscribe to readings, validate, dedupe, quarantine and store them.

    Also publishes, per device, the seq ranges the database holds (retained on
    <root>/v1/<device>/stored, every collector.confirm_interval_s when they change): edge
    agents keep each reading until it shows up there, so a broker crash loses nothing.

    With collector.processes = N it runs as N processes on one shared subscription (this
    one and N-1 workers it starts and restarts): one process's pipeline runs under one
    interpreter lock, and a machine with cores to spare stores more with several.

    \b
    Example:  LUFTNETT_COLLECTOR__SHARED_GROUP=c luftnett collector run
    Example:  LUFTNETT_COLLECTOR__PROCESSES=2 luftnett collector run
    """
    import dataclasses
    import gc
    import os
    import sys

    from luftnett.collector.confirm import Confirmer
    from luftnett.collector.processes import (
        PARENT_ENV,
        RETIRE_ENV,
        WorkerProcesses,
        die_with_parent,
        orphan_sessions,
        worker_client_id,
    )
    from luftnett.collector.service import Collector
    from luftnett.connect import broker_url, database_url

    # The writer threads wait on the database many times a transaction, and each time need
    # the GIL back from the validator, which is busy decoding a burst: at Python's default
    # switch interval (5 ms) a 20,000-reading transaction took ~155 ms instead of ~120, and a
    # burst of 200,000 readings was stored at a median 151,000 readings/s against 191,000 at
    # 1 ms (three runs each, docs/benchmarks.md). The process is the collector's own.
    sys.setswitchinterval(_SWITCH_INTERVAL_S)
    s = settings_of(ctx)
    die_with_parent()  # a worker of a service with collector.processes > 1: not past its end
    with database_url(s) as db_url, broker_url(s) as mq_url:
        c = s.collector
        group = c.shared_group or c.client_id  # the workers' (and retiring sessions')
        retiring = os.environ.get(RETIRE_ENV) == "1"
        orphans: list[int] = []
        if PARENT_ENV not in os.environ:  # the service, not one of its workers
            try:
                orphans = orphan_sessions(mq_url, c.client_id, c.processes, c.mqtt_protocol)
            except (ConnectionError, OSError) as exc:
                log.warning(
                    "could not look for the sessions of dropped workers (next start will)",
                    extra={"error": str(exc)[:200]},
                )
        workers = None
        if c.processes > 1 or orphans:
            workers = WorkerProcesses(
                c.processes,
                c.client_id,
                group,
                db_url,
                mq_url,
                retire=orphans,
            )
            if orphans:
                log.warning(
                    "sessions of dropped workers found: storing what they hold, then deleting them",
                    extra={"client_ids": [worker_client_id(c.client_id, k) for k in orphans]},
                )
        cfg = _config(s, db_url, mq_url, shared_group=group if c.processes > 1 else c.shared_group)
        if retiring:
            _retire(Collector(dataclasses.replace(cfg, retire=True)))
            return
        col = Collector(cfg).start()
        confirmer = None
        try:  # from here on a Ctrl-C or SIGTERM (even during the next line) stops all cleanly
            if workers is not None:
                workers.start()
            if c.confirm_interval_s > 0:
                confirmer = Confirmer(db_url, mq_url, s.mqtt.topic_root, c.confirm_interval_s)
                confirmer.start()
            if c.gc_interval_s > 0:
                # Python's automatic collection ran ~150 times a second during a burst, each
                # pass walking the young objects (messages, decoded readings) and every tenth
                # or hundredth the whole heap, all under the GIL: ~10 % of the collector's
                # time, for garbage the collector hardly makes (a few cyclic objects a
                # second). Startup's objects are frozen out of the passes; cycles are
                # collected every gc_interval_s (a pass of ~20-30 ms).
                gc.collect()
                gc.freeze()
                gc.disable()
                wait_forever("collector", c.gc_interval_s, gc.collect)
            else:
                wait_forever("collector")
        finally:
            if workers is not None:
                workers.stop()
            if confirmer is not None:
                confirmer.stop()
            col.stop()


@collector.command("retire")
@click.argument("client_id")
@click.option(
    "--group",
    help="The shared group it subscribed through (default: collector.shared_group); its "
    "subscriptions are dropped either way.",
)
@click.pass_context
def collector_retire(ctx: click.Context, client_id: str, group: str | None) -> None:
    """Store what a stopped collector's broker session still holds, then delete the session.

    For a collector taken out of a shared group for good: the broker keeps giving a
    disconnected member of the group its turn (Mosquitto queues every so-many messages for
    it until its session expires), so removing one without this leaves readings waiting for
    it. Run it once that collector has stopped (a collector still connected under CLIENT_ID
    is disconnected). The dropped workers of `collector.processes` are retired by
    `luftnett collector run` itself.

    \b
    Example:  luftnett collector retire collector-3 --group fleet
    """
    from luftnett.collector.processes import session_exists
    from luftnett.collector.service import Collector
    from luftnett.connect import broker_url, database_url

    s = settings_of(ctx)
    c = s.collector
    with database_url(s) as db_url, broker_url(s) as mq_url:
        if not session_exists(mq_url, client_id, c.mqtt_protocol):
            click.echo(f"the broker keeps no session for {client_id}: nothing to retire")
            return
        click.echo(f"retiring {client_id}: storing what its session holds ...", err=True)
        col = Collector(
            _config(
                s,
                db_url,
                mq_url,
                client_id=client_id,
                shared_group=group or c.shared_group,
                retire=True,
            )
        )
        _retire(col)
        click.echo(
            f"retired {client_id}: {col.counts['messages']:,} messages "
            f"({col.counts['stored']:,} readings stored, {col.counts['duplicates']:,} "
            f"duplicates, {col.counts['quarantined']:,} quarantined); session deleted"
        )


@click.group()
def quarantine() -> None:
    """Inspect and re-process rejected payloads (kept verbatim with their reason)."""


@quarantine.command("list")
@click.option("--reason", help="Only this reason, e.g. schema_version, invalid, not_json.")
@click.option("--all", "show_all", is_flag=True, help="Include records already replayed.")
@click.option("--limit", default=50, show_default=True, type=click.IntRange(1, 100_000))
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.pass_context
def quarantine_list(
    ctx: click.Context, reason: str | None, show_all: bool, limit: int, as_json: bool
) -> None:
    """List quarantined payloads, oldest first.

    Example:  luftnett quarantine list --reason schema_version
    """
    import json

    import psycopg

    from luftnett.collector.quarantine import list_records
    from luftnett.connect import database_url
    from luftnett.timefmt import utc_local, utc_local_fields

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        records = list_records(conn, reason=reason, pending_only=not show_all, limit=limit)
    if as_json:
        for r in records:
            click.echo(
                json.dumps(
                    {
                        "id": r.quarantine_id,
                        **utc_local_fields("received_at", r.received_at),
                        "source": r.source,
                        "topic": r.topic,
                        "reason": r.reason,
                        "detail": r.detail,
                        "bytes": r.size,
                        **utc_local_fields("replayed_at", r.replayed_at),
                        "payload": r.payload.decode("utf-8", "backslashreplace")[:2000],
                    }
                )
            )
        return
    if not records:
        click.echo("quarantine is empty" if not reason else f"no pending records with {reason=}")
        return
    click.echo(f"{'id':>6}  {'received (UTC, Oslo)':36}  {'reason':16}  {'bytes':>7}  detail")
    for r in records:
        when = utc_local(r.received_at)
        click.echo(f"{r.quarantine_id:>6}  {when:36}  {r.reason:16}  {r.size:>7}  {r.detail[:70]}")


def _check_chosen(conn: psycopg.Connection[Any], ids: tuple[int, ...], reason: str | None) -> None:
    """Refuse ids that no quarantined payload has, and a reason that none has (naming the
    reasons there are); ids and reasons of records already replayed are fine (nothing to do)."""
    if ids:
        known = {
            int(r[0])
            for r in conn.execute(
                "SELECT quarantine_id FROM quarantine WHERE quarantine_id = ANY(%s)", (list(ids),)
            )
        }
        missing = sorted(set(ids) - known)
        if missing:
            raise click.ClickException(
                f"no quarantined payload has id {', '.join(map(str, missing))}; "
                "`luftnett quarantine list --all` lists them"
            )
    if reason is not None:
        counts = dict(
            conn.execute(
                "SELECT reason, count(*) FILTER (WHERE replayed_at IS NULL) FROM quarantine "
                "GROUP BY reason ORDER BY reason"
            ).fetchall()
        )
        if reason not in counts:
            listed = ", ".join(f"{r} ({n} pending)" for r, n in counts.items()) or "none"
            raise click.ClickException(
                f"no quarantined payload has reason {reason!r}; the reasons there are: {listed}"
            )
    conn.commit()


@quarantine.command("replay")
@click.option("--id", "ids", multiple=True, type=int, help="Record id (repeatable).")
@click.option("--reason", help="Every pending record with this reason.")
@click.option("--all", "replay_all", is_flag=True, help="Every pending record.")
@click.option("--dry-run", is_flag=True, help="Validate only; write nothing.")
@click.pass_context
def quarantine_replay(
    ctx: click.Context,
    ids: tuple[int, ...],
    reason: str | None,
    replay_all: bool,
    dry_run: bool,
) -> None:
    """Validate quarantined payloads again and store those that now pass.

    Writes are idempotent on (device, seq): replaying twice stores nothing twice.

    Example:  luftnett quarantine replay --reason unknown_device
    """
    import psycopg

    from luftnett.collector.quarantine import replay
    from luftnett.connect import database_url

    if not (ids or reason or replay_all):
        raise click.UsageError("choose what to replay: --id N, --reason R or --all")
    if replay_all and (ids or reason):
        given = "--id" if ids else "--reason"
        raise click.UsageError(
            f"--all and {given} exclude each other: --all replays every pending record; "
            f"drop --all to replay only the chosen ones"
        )
    s = settings_of(ctx)
    with database_url(s) as url, psycopg.connect(url) as conn:
        _check_chosen(conn, ids, reason)
        res = replay(conn, s.mqtt.topic_root, reason=reason, ids=ids or None, dry_run=dry_run)
    verb = "would replay" if dry_run else "replayed"
    click.echo(
        f"{verb} {res.replayed} payloads; {res.stored} new readings stored; "
        f"{len(res.still_rejected)} still rejected"
    )
    for qid, why in sorted(res.still_rejected.items()):
        click.echo(f"  #{qid}: {why}")
