"""``luftnett calibrate jobs``: list reprocessing jobs, run workers, wait with a progress bar.

``luftnett calibrate activate`` queues a job and starts a background worker
(:func:`start_background_worker`); these commands show and work the queue.
"""

from __future__ import annotations

import json
import subprocess
import sys
from typing import TYPE_CHECKING, Any

import click

if TYPE_CHECKING:
    import psycopg

    from luftnett.calibration.jobs import JobStatus

__all__ = ["jobs", "start_background_worker", "status_line", "wait_with_progress"]

_PART_ROWS_HELP = "Readings per part (one transaction each) when planning a job."


def start_background_worker(ctx: click.Context) -> int:
    """Start ``luftnett calibrate jobs run`` detached (it exits when no job is open); its pid.

    It reads the same settings (environment, and ``--config`` when given). It is not our
    child (``sh`` starts it in the background and exits), so it outlives this command; what
    goes wrong is recorded in the job (``luftnett calibrate jobs``)."""
    root = ctx.find_root()
    cmd = [sys.executable, "-m", "luftnett.cli"]
    config = root.params.get("config_file")
    if config is not None:
        cmd += ["--config", str(config)]
    cmd += ["calibrate", "jobs", "run"]
    res = subprocess.run(
        ["sh", "-c", '"$@" </dev/null >/dev/null 2>&1 & echo $!', "sh", *cmd],
        stdin=subprocess.DEVNULL, capture_output=True, text=True, start_new_session=True,
        check=True,
    )  # fmt: skip
    return int(res.stdout.strip())


def status_line(s: JobStatus) -> str:
    """One line of a job's state and progress, as `luftnett calibrate jobs` lists it."""
    total = f"{s.readings_total:,}" if s.readings_total is not None else "?"
    extra = f"  {s.error}" if s.error else ""
    return (
        f"{s.job_id:>6} version {s.version_id:<6} {s.pollutant:<5} {s.scope:<24} "
        f"{s.state:<8} {s.percent:5.1f} %  {s.readings_done:,}/{total} readings{extra}"
    )


def wait_with_progress(conn: psycopg.Connection[Any], job_id: int) -> JobStatus:
    """Wait for a job, drawing a progress bar on a terminal; prints and returns its status."""
    from luftnett.calibration.jobs import wait_for

    if not sys.stderr.isatty():
        st = wait_for(conn, job_id)
    else:
        with click.progressbar(length=100, label=f"reprocessing (job {job_id})",
                               file=sys.stderr) as bar:  # fmt: skip
            shown = [0]

            def show(s: JobStatus) -> None:
                pct = int(s.percent)
                if pct > shown[0]:
                    bar.update(pct - shown[0])
                    shown[0] = pct

            st = wait_for(conn, job_id, show)
    click.echo(status_line(st))
    if st.state == "failed":
        from luftnett.errors import CalibrationError

        raise CalibrationError(f"reprocessing job {job_id} failed: {st.error}")
    return st


@click.group("jobs", invoke_without_command=True)
@click.option("--open", "open_only", is_flag=True, help="Only queued and running jobs.")
@click.option("--json", "as_json", is_flag=True, help="One JSON object per line.")
@click.option("--limit", type=click.IntRange(min=1), default=20, show_default=True,
              help="How many of the latest jobs.")  # fmt: skip
@click.pass_context
def jobs(ctx: click.Context, open_only: bool, as_json: bool, limit: int) -> None:
    """Reprocessing jobs (queued by `calibrate activate`): list them, or run and wait.

    Without a subcommand, lists the latest jobs with state and progress (readings done of
    the readings planned). A job is worked in parts, one transaction each; a worker that
    dies loses only its current part, which the next worker redoes.

    Example:  luftnett calibrate jobs --open
    """
    if ctx.invoked_subcommand is not None:
        return
    from luftnett.calibration.db_cli import _connect
    from luftnett.calibration.jobs import list_jobs

    with _connect() as conn:
        rows = list_jobs(conn, open_only, limit)
    for s in rows:
        click.echo(json.dumps(s.to_dict(), ensure_ascii=False) if as_json else status_line(s))
    if not rows and not as_json:
        click.echo("no reprocessing jobs" + (" open" if open_only else ""))


@jobs.command("run")
@click.option("--workers", type=click.IntRange(1, 16), default=1, show_default=True,
              help="Parallel database connections working parts.")  # fmt: skip
@click.option("--forever", is_flag=True,
              help="Keep polling for new jobs instead of exiting when none is open.")  # fmt: skip
@click.option("--part-rows", type=click.IntRange(min=100), default=200_000, show_default=True,
              help=_PART_ROWS_HELP)  # fmt: skip
@click.option("--poll", "poll_s", type=click.FloatRange(min=0.1), default=2.0, show_default=True,
              help="Seconds between looks at the queue when idle.")  # fmt: skip
@click.pass_context
def run(ctx: click.Context, workers: int, forever: bool, part_rows: int, poll_s: float) -> None:
    """Work reprocessing jobs: plan queued ones, then compute their parts in PostgreSQL.

    Exits when no job is queued or running (or, with --forever, runs as a service:
    deploy/systemd/luftnett-calibrate-jobs.service). Several workers, here or in other
    processes, share the parts safely. SIGTERM lets each worker finish its current part,
    then exits; a worker killed outright loses only that part, which the next one redoes.

    Example:  luftnett calibrate jobs run --workers 2
    """
    import signal
    import threading

    from luftnett.calibration.db_cli import _connect
    from luftnett.calibration.jobs import run_workers
    from luftnett.cli import settings_of
    from luftnett.connect import database_url

    stop = threading.Event()
    previous = signal.signal(signal.SIGTERM, lambda _sig, _frame: stop.set())
    try:
        with database_url(settings_of(ctx)) as url, _connect():  # _connect checks the tables
            stats = run_workers(url, workers, until_idle=not forever, poll_s=poll_s,
                                part_rows=part_rows, stop=stop)  # fmt: skip
    finally:
        signal.signal(signal.SIGTERM, previous)
    click.echo(
        f"{stats.parts} parts, {stats.readings:,} readings, {stats.values:,} values written, "
        f"{stats.jobs_planned} jobs planned, {stats.errors} failed parts"
    )
    if stats.errors:
        sys.exit(1)


@jobs.command("wait")
@click.argument("job_id", type=int)
@click.pass_context
def wait(ctx: click.Context, job_id: int) -> None:
    """Wait for a job to finish, with a progress bar on a terminal.

    On the demo's own database while `luftnett demo` is not running, no other worker can
    reach the database, so the queue is worked here, in the foreground.

    Example:  luftnett calibrate jobs wait 7
    """
    from luftnett.calibration.db_cli import _connect, _work_in_foreground
    from luftnett.cli import settings_of
    from luftnett.connect import database_is_transient, database_url

    settings = settings_of(ctx)
    transient = database_is_transient(settings)
    with database_url(settings) as url, _connect() as conn:
        if transient:
            _work_in_foreground(conn, url, job_id, settings.home)
        else:
            wait_with_progress(conn, job_id)
