"""`luftnett edge`: the agent on a field device."""

from __future__ import annotations

import click

from luftnett.cli import settings_of, wait_forever


@click.group()
def edge() -> None:
    """The edge agent that runs on a field device."""


@edge.command("run")
@click.option("--device-id", help="Overrides edge.device_id.")
@click.option("--port", "serial_port", help="Serial port, e.g. /dev/ttyUSB0 (edge.serial_port).")
@click.option("--sensor", "sensor_model", help="Sensor model, e.g. sds011 (edge.sensor_model).")
@click.option("--window", "window_s", type=float, help="Averaging window, seconds.")
@click.pass_context
def edge_run(
    ctx: click.Context,
    device_id: str | None,
    serial_port: str | None,
    sensor_model: str | None,
    window_s: float | None,
) -> None:
    """Read a sensor on a serial port and publish averaged readings over MQTT.

    Readings wait in a durable outbox on disk until the broker acknowledges them.

    Example:  luftnett --config edge.toml edge run --port /dev/ttyUSB0
    """
    from luftnett.connect import broker_url
    from luftnett.edge.agent import EdgeAgent, EdgeConfig

    s = settings_of(ctx)
    e = s.edge.model_copy(
        update={
            k: v
            for k, v in {
                "device_id": device_id,
                "serial_port": serial_port,
                "sensor_model": sensor_model,
                "window_s": window_s,
            }.items()
            if v is not None
        }
    )
    with broker_url(s) as url:
        agent = EdgeAgent(
            EdgeConfig(
                device_id=e.device_id,
                sensor_model=e.sensor_model,
                serial_port=e.serial_port,
                window_s=e.window_s,
                outbox_path=e.outbox_path or s.home / "edge" / f"{e.device_id}.outbox",
                mqtt_url=url,
                topic_root=s.mqtt.topic_root,
                publish_batch=e.publish_batch,
            )
        ).start()
        try:
            wait_forever(f"edge agent {e.device_id} on {e.serial_port}")
        finally:
            agent.stop()
