"""`luftnett soak`: the fault-injection soak of the whole system."""

from __future__ import annotations

import sys
from pathlib import Path

import click

_DEFAULT_DOC = Path("docs/reliability.md")


@click.command()
@click.option(
    "--profile",
    "profile_name",
    type=click.Choice(["short", "long"]),
    default="short",
    show_default=True,
    help="short: 20 devices, 24 simulated hours (CI); long: 100 devices, 7 days (by hand).",
)
@click.option("--devices", type=click.IntRange(1, 500), help="Override the simulated devices.")
@click.option("--hours", type=click.FloatRange(min=1), help="Override the simulated hours.")
@click.option(
    "--speed", type=click.FloatRange(min=1), help="Simulated seconds per real second (720)."
)
@click.option(
    "--doc",
    type=click.Path(dir_okay=False, path_type=Path),
    default=None,
    help="Markdown file to put the figures in, in this profile's section "
    "(default: docs/reliability.md if it exists here and no override is given).",
)
@click.option(
    "--workdir",
    type=click.Path(file_okay=False, path_type=Path),
    default=None,
    help="Directory for servers, outboxes and logs (kept); default a temporary one.",
)
@click.option(
    "--keep", is_flag=True, help="Keep the temporary directory (kept anyway when a check fails)."
)
def soak(
    profile_name: str,
    devices: int | None,
    hours: float | None,
    speed: float | None,
    doc: Path | None,
    workdir: Path | None,
    keep: bool,
) -> None:
    """Run the whole system through a compressed week of faults and count every reading.

    Starts a private PostgreSQL and Mosquitto, the collector as a process, simulated devices
    with their real protocols (emulator, framer, averager, SQLite outbox, MQTT QoS 1) on a
    simulated clock, a few devices on real ptys and one `luftnett edge run` process, then
    injects the scheduled faults (broker down, database restart, collector and edge SIGKILL,
    full disk, serial garbage, unplugged and stuck sensors, wrong clocks, duplicate and
    out-of-order deliveries, malformed payloads). At the end it prints the figures; the last
    line reads `produced=N stored=S duplicated=D lost=L shed=H quarantined=Q`. Exit 1 if a
    reading was lost or stored twice.

    Example:  luftnett soak --profile short --doc docs/reliability.md
    """
    import logging
    import shutil
    import tempfile

    from luftnett.log import JsonFormatter
    from luftnett.soak.profile import PROFILES
    from luftnett.soak.report import update_doc
    from luftnett.soak.runner import run_soak

    base = PROFILES[profile_name]
    profile = base.with_overrides(devices, hours, speed)
    custom = profile != base
    if doc is None and not custom and _DEFAULT_DOC.exists():
        doc = _DEFAULT_DOC
    made = workdir is None
    work = Path(tempfile.mkdtemp(prefix="luftnett-soak-")) if workdir is None else workdir
    work.mkdir(parents=True, exist_ok=True)
    # a hundred agents' logs go to a file; the soak prints its own progress
    handler = logging.FileHandler(work / "soak.log")
    handler.setFormatter(JsonFormatter())
    component = logging.getLogger("luftnett")
    component.addHandler(handler)
    component.propagate = False
    try:
        result = run_soak(
            profile, click.echo, section="custom" if custom else profile.name, workdir=work
        )
    finally:
        component.removeHandler(handler)
        component.propagate = True
        handler.close()
    for line in result.lines():
        click.echo(line)
    if doc is not None:
        update_doc(doc, result.section, result.markdown())
        click.echo(f"figures written to {doc} (section {result.section})")
    if made and not keep and result.ok:
        shutil.rmtree(work, ignore_errors=True)
    else:
        click.echo(f"logs, outboxes and database kept in {work}")
    click.echo(result.figures.last_line)
    sys.exit(0 if result.ok else 1)
