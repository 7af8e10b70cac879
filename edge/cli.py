"""`luftnett edge`: the agent on a field device, and a check of its config and ports."""

from __future__ import annotations

import sys
import threading
import time
from collections import Counter
from pathlib import Path

import click

from luftnett.cli import settings_of, wait_forever
from luftnett.settings import Settings, load_settings
from luftnett.signals import sigterm_as_interrupt

_CONFIG = click.option(
    "--config",
    "config_file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Edge TOML config (same keys as `luftnett --config`); see docs/edge.md.",
)


def _settings(ctx: click.Context, config_file: Path | None) -> Settings:
    config_file = config_file or ctx.meta.get("luftnett.edge.config")
    return load_settings(config_file) if config_file else settings_of(ctx)


@click.group(invoke_without_command=True)
@_CONFIG
@click.option(
    "--check",
    is_flag=True,
    help="Validate the config and report each port, as `luftnett edge check`.",
)
@click.pass_context
def edge(ctx: click.Context, config_file: Path | None, check: bool) -> None:
    """The edge agent that runs on a field device.

    `luftnett edge --config edge.toml` runs the agent (as `edge run`) and
    `luftnett edge --config edge.toml --check` validates the config and ports (as `edge check`);
    the subcommands take more options.
    """
    if config_file is not None:
        ctx.meta["luftnett.edge.config"] = config_file
    if ctx.invoked_subcommand is not None:
        if check:
            raise click.UsageError("--check is itself a command: leave out the subcommand")
        return
    if config_file is None and not check:
        click.echo(ctx.get_help())
        return
    ctx.invoke(edge_check if check else edge_run, config_file=config_file)


@edge.command("run")
@_CONFIG
@click.option("--device-id", help="Overrides edge.device_id.")
@click.option("--port", "serial_port", help="Serial port, e.g. /dev/ttyUSB0 (edge.serial_port).")
@click.option("--sensor", "sensor_model", help="Sensor model, e.g. sds011 (edge.sensor_model).")
@click.option("--window", "window_s", type=float, help="Averaging window, seconds.")
@click.pass_context
def edge_run(
    ctx: click.Context,
    config_file: Path | None,
    device_id: str | None,
    serial_port: str | None,
    sensor_model: str | None,
    window_s: float | None,
) -> None:
    """Read the sensors on their serial ports and publish averaged readings over MQTT.

    Readings wait in a durable outbox on disk until the broker acknowledges them. SIGTERM
    (systemd stop) and Ctrl-C stop gracefully: reading stops, the backlog gets 2 s to drain,
    the retained status says offline. With a configured broker (mqtt_url) the config is checked
    here, then the process replaces itself (same PID) with a lean one that loads no settings
    code; with the demo's embedded broker the agent runs in this process.

    Example:  luftnett edge run --config /etc/luftnett/edge.toml
    """
    import logging

    from luftnett.connect import broker_url, parse_mqtt_url
    from luftnett.edge.config import from_settings

    s = _settings(ctx, config_file)
    overrides = {
        k: v
        for k, v in {
            "device_id": device_id,
            "serial_port": serial_port,
            "sensor_model": sensor_model,
            "window_s": window_s,
        }.items()
        if v is not None
    }
    s = s.model_copy(update={"edge": s.edge.model_copy(update=overrides)})
    if s.mqtt_url is not None:
        from luftnett.edge.lean import exec_agent

        cfg = from_settings(s, s.mqtt_url)
        parse_mqtt_url(cfg.mqtt_url)  # a bad URL is refused here, with the CLI's one line
        level = logging.getLevelName(logging.getLogger().getEffectiveLevel())
        try:
            exec_agent(cfg, level)
        except OSError as exc:
            logging.getLogger(__name__).warning(
                "cannot start the lean agent process; running in this one",
                extra={"error": str(exc)},
            )
    from luftnett.edge.agent import EdgeAgent

    with sigterm_as_interrupt(), broker_url(s) as url:
        cfg = from_settings(s, url)
        agent = EdgeAgent(cfg).start()
        ports = ", ".join(f"{x.name}@{x.port}" for x in cfg.sensor_list())
        try:
            wait_forever(f"edge agent {cfg.device_id} ({ports})")
        finally:
            agent.stop()


def _probe(model: str, port: str, seconds: float) -> tuple[Counter[str], str]:
    """Open ``port``, send the driver's init commands, count what comes back."""
    import serial

    from luftnett.edge import drivers
    from luftnett.edge.framing import Measurement, Rejected, Reply

    driver = drivers.get(model)
    counts: Counter[str] = Counter()
    try:
        with serial.Serial(port, driver.BAUD, timeout=0.2) as ser:
            for cmd in driver.INIT_COMMANDS:
                ser.write(cmd)
            framer = driver.Framer()
            poll = getattr(driver, "POLL_COMMAND", None)
            next_poll = 0.0
            deadline = time.monotonic() + seconds
            while time.monotonic() < deadline:
                if poll and time.monotonic() >= next_poll:
                    ser.write(poll)
                    next_poll = time.monotonic() + float(getattr(driver, "POLL_INTERVAL_S", 1.0))
                for item in framer.feed(ser.read(256)):
                    if isinstance(item, Measurement):
                        counts["frames"] += 1
                    elif isinstance(item, Reply):
                        counts["replies"] += 1
                    elif isinstance(item, Rejected):
                        counts[item.category] += 1
    except (serial.SerialException, OSError) as exc:
        return counts, f"cannot open: {exc}"
    return counts, ""


@edge.command("check")
@_CONFIG
@click.option(
    "--seconds",
    default=3.0,
    show_default=True,
    type=click.FloatRange(0.5, 120),
    help="How long to listen to each port (all ports at once).",
)
@click.pass_context
def edge_check(ctx: click.Context, config_file: Path | None, seconds: float) -> None:
    """Validate the edge config, open each sensor's port and report frames and errors.

    Prints one line per sensor, then the outbox state. Exit 1 if a port cannot be opened or
    sends no valid frame.

    Example:  luftnett edge check --config /etc/luftnett/edge.toml --seconds 5
    """
    from luftnett.edge.config import from_settings
    from luftnett.edge.outbox import Outbox

    s = _settings(ctx, config_file)
    cfg = from_settings(s, s.mqtt_url or "mqtt://127.0.0.1:1883")
    sensors = cfg.sensor_list()
    click.echo(
        f"config ok: device {cfg.device_id}, {len(sensors)} sensor(s), broker "
        f"{s.mqtt_url.split('@')[-1] if s.mqtt_url else '(embedded)'}, "
        f"auth {'yes' if cfg.password else 'no'}, outbox {cfg.outbox_path}"
    )
    results: dict[str, tuple[Counter[str], str]] = {}

    def probe(name: str, model: str, port: str) -> None:
        results[name] = _probe(model, port, seconds)

    threads = [
        threading.Thread(target=probe, args=(x.name, x.model, x.port), daemon=True) for x in sensors
    ]
    for t in threads:
        t.start()
    for t in threads:
        t.join(seconds + 10)
    ok = True
    for x in sensors:
        counts, error = results.get(x.name, (Counter(), "no answer"))
        frames = counts.pop("frames", 0)
        replies = counts.pop("replies", 0)
        errors = ", ".join(f"{k}={v}" for k, v in sorted(counts.items())) or "none"
        if error or not frames:
            ok = False
        state = error or ("ok" if frames else "no valid frame")
        click.echo(
            f"{x.name:12s} {x.port}: {state}; {frames} frames, {replies} replies, errors: {errors}"
        )
    if cfg.outbox_path.exists():
        box = Outbox(cfg.outbox_path, cfg.outbox_max_rows, cfg.outbox_max_bytes)
        try:
            age = box.oldest_age_s()
            click.echo(
                f"outbox: {len(box)} unsent, oldest {age or 0:.0f} s, next seq {box.next_seq}, "
                f"shed {box.shed_total}"
            )
        finally:
            box.close()
    else:
        click.echo("outbox: not created yet")
    if not ok:
        sys.exit(1)
