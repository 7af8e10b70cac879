"""The ``luftnett`` command line. Heavy imports live inside the commands, so --help is instant."""

from __future__ import annotations

import contextlib
import importlib
import logging
import sys
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import click

from luftnett import __version__
from luftnett.errors import LuftnettError
from luftnett.settings import Settings, load_settings
from luftnett.signals import sigterm_as_interrupt

# Subcommand groups that live beside their code: name -> "module:attribute".
LAZY_COMMANDS: dict[str, str] = {
    "decode": "luftnett.edge.decode_cli:decode",
    "api": "luftnett.api.cli:api",
    "collector": "luftnett.collector.cli:collector",
    "edge": "luftnett.edge.cli:edge",
    "device": "luftnett.edge.provision:device",
    "quarantine": "luftnett.collector.cli:quarantine",
    "sim": "luftnett.firmware_sim.cli:sim",
    "calibrate": "luftnett.calibration.cli:calibrate",
    "reference": "luftnett.calibration.db_cli:reference",
    "map": "luftnett.mapping.cli:map_group",
    "annotate": "luftnett.collector.annotate_cli:annotate",
    "ledger": "luftnett.collector.ledger_cli:ledger",
    "devices": "luftnett.collector.ledger_cli:devices",
    "rollup": "luftnett.collector.rollup_cli:rollup",
    "qc": "luftnett.collector.restate_cli:qc",
    "soak": "luftnett.soak.cli:soak",
    "publish": "luftnett.publish.cli:publish_cmd",
}


class LazyGroup(click.Group):
    """A group whose listed subcommands are imported only when used."""

    def list_commands(self, ctx: click.Context) -> list[str]:
        return sorted([*super().list_commands(ctx), *LAZY_COMMANDS])

    def get_command(self, ctx: click.Context, name: str) -> click.Command | None:
        if name in LAZY_COMMANDS:
            module, attr = LAZY_COMMANDS[name].split(":")
            cmd: click.Command = getattr(importlib.import_module(module), attr)
            return cmd
        return super().get_command(ctx, name)

    def invoke(self, ctx: click.Context) -> Any:
        try:
            return super().invoke(ctx)
        except LuftnettError as exc:
            click.echo(f"error: {exc}", err=True)
            sys.exit(1)
        except Exception as exc:
            message = database_error(exc)
            if message is None:
                raise
            if logging.getLogger().isEnabledFor(logging.DEBUG):
                logging.getLogger("luftnett").exception("database error")
            click.echo(f"error: {message}", err=True)
            sys.exit(1)


def database_error(exc: BaseException) -> str | None:
    """One line for an error psycopg raised that no command turned into its own message: the
    database cannot be reached (what to check), or it refused a statement (its own words);
    None for any other exception. The traceback is logged at --log-level DEBUG."""
    psycopg = sys.modules.get("psycopg")  # imported by whichever command talked to it
    if psycopg is None or not isinstance(exc, psycopg.Error):
        return None
    first = (str(exc).strip().splitlines() or [type(exc).__name__])[0]
    if isinstance(exc, psycopg.OperationalError) and getattr(exc, "sqlstate", None) is None:
        return (
            f"cannot reach the database ({first}); check LUFTNETT_DATABASE_URL, or with "
            "nothing configured start the embedded servers with `luftnett demo`"
        )
    return f"the database refused the command: {first}"


def settings_of(ctx: click.Context) -> Settings:
    s: Settings = ctx.find_root().obj["settings"]
    return s


@click.group(cls=LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    envvar="LUFTNETT_CONFIG",
    help="TOML config file (also LUFTNETT_CONFIG).",
)
@click.option(
    "--log-level",
    default=None,
    type=click.Choice(["DEBUG", "INFO", "WARNING", "ERROR"], case_sensitive=False),
    help="DEBUG, INFO, WARNING, ERROR (default INFO; DEBUG also prints tracebacks).",
)
@click.version_option(__version__, prog_name="luftnett")
@click.pass_context
def main(ctx: click.Context, config_file: Path | None, log_level: str | None) -> None:
    """luftnett: an air-quality microsensor network.

    Sensors on serial ports -> edge agents -> MQTT -> collector -> PostgreSQL/TimescaleDB
    -> API. Settings come from LUFTNETT_* environment variables and an optional TOML file;
    with nothing configured, commands use the servers of `luftnett demo`.

    Start with:  luftnett demo
    """
    from luftnett import log

    try:
        settings = load_settings(config_file)
    except LuftnettError as exc:
        click.echo(f"error: {exc}", err=True)
        sys.exit(1)
    log.setup(log_level or settings.log_level)
    ctx.obj = {"settings": settings}


# -- demo ---------------------------------------------------------------------------------
@main.command()
@click.option(
    "--devices",
    default=5,
    show_default=True,
    type=click.IntRange(1, 200),
    help="Number of simulated sites, one box each (an SDS011 and a DGS-NO2 module).",
)
@click.option(
    "--duration",
    type=click.FloatRange(min=1),
    default=None,
    help="Stop after this many seconds (default: run until Ctrl-C).",
)
@click.option(
    "--window",
    "window_s",
    default=5.0,
    show_default=True,
    type=click.FloatRange(min=1),
    help="Edge averaging window, seconds.",
)
@click.pass_context
def demo(ctx: click.Context, devices: int, duration: float | None, window_s: float) -> None:
    """Run a small synthetic fleet end to end and serve it over the API.

    Starts a private PostgreSQL and Mosquitto (unless LUFTNETT_DATABASE_URL / LUFTNETT_MQTT_URL
    point at running ones), migrates, simulates a box per site of a synthetic town (an SDS011 for
    PM and a DGS-NO2 module for NO2, byte for byte on pseudo-terminals), runs an edge agent per
    box, the collector and the API, and prints the URL to open. Ctrl-C stops everything; the
    data stay for the next run and for other commands.

    Example:  luftnett demo --devices 5 --duration 60
    """
    import logging
    import os

    from luftnett.demo import run_demo

    if ctx.find_root().params.get("log_level") is None and "LUFTNETT_LOG_LEVEL" not in os.environ:
        logging.getLogger("luftnett").setLevel(logging.WARNING)  # the demo prints its own progress
    run_demo(settings_of(ctx), devices, duration, window_s, click.echo)


# -- db -----------------------------------------------------------------------------------
@main.group()
def db() -> None:
    """Database schema and status."""


@db.command()
@click.pass_context
def migrate(ctx: click.Context) -> None:
    """Apply pending schema migrations (idempotent: running it twice is a no-op).

    Example:  LUFTNETT_DATABASE_URL=postgresql://localhost/luftnett luftnett db migrate
    """
    import psycopg

    from luftnett.connect import database_url
    from luftnett.db.migrate import apply_migrations, timescale_enabled

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        applied = apply_migrations(conn)
        for m in applied:
            click.echo(f"applied {m.version:04d}_{m.name}")
        if not applied:
            click.echo("schema up to date; nothing to apply")
        backend = "TimescaleDB hypertable" if timescale_enabled(conn) else "plain PostgreSQL"
        click.echo(f"readings storage: {backend}")


@db.command()
@click.pass_context
def status(ctx: click.Context) -> None:
    """Show the schema version, storage backend, row counts and the readings whose calibrated
    values the collectors still owe (they write them just after storing the readings).

    Example:  luftnett db status
    """
    import psycopg

    from luftnett.connect import database_url
    from luftnett.db.migrate import available_migrations, timescale_enabled

    with database_url(settings_of(ctx)) as url, psycopg.connect(url) as conn:
        try:
            done = {r[0] for r in conn.execute("SELECT version FROM schema_migrations")}
        except psycopg.errors.UndefinedTable:
            raise LuftnettError("database not migrated yet; run `luftnett db migrate`") from None
        pending = [m for m in available_migrations() if m.version not in done]
        click.echo(f"schema: {len(done)} migrations applied, {len(pending)} pending")
        click.echo(f"storage: {'TimescaleDB' if timescale_enabled(conn) else 'plain PostgreSQL'}")
        for table in ("sites", "devices", "deployments", "readings", "quarantine"):
            (n,) = conn.execute(f"SELECT count(*) FROM {table}").fetchone() or (0,)  # noqa: S608
            click.echo(f"{table:12s} {n}")
        if not any(m.name == "calibration_pending" for m in pending):
            from luftnett.collector.deferred import pending_summary

            runs, owed, age = pending_summary(conn)
            since = f", the oldest queued {age:.0f} s ago" if age is not None else ""
            click.echo(
                f"calibration owed: {owed} readings in {runs} runs{since} (collectors write "
                "calibrated values after storing the readings: docs/storage.md)"
            )


def wait_forever(
    what: str, every_s: float = 3600.0, tick: Callable[[], object] | None = None
) -> None:
    """Block until Ctrl-C or SIGTERM (systemd's and docker's stop), for long-running services;
    either returns, so the caller's clean-up runs. ``tick`` (if given) is called every
    ``every_s`` seconds meanwhile. A shell's background job (``cmd &`` without job control)
    starts with SIGINT ignored: stop it with SIGTERM."""
    click.echo(f"{what} running; Ctrl-C stops", err=True)
    with sigterm_as_interrupt(), contextlib.suppress(KeyboardInterrupt):
        while True:
            time.sleep(every_s)
            if tick is not None:
                tick()


if __name__ == "__main__":  # pragma: no cover
    main()
