"""`luftnett collector`: the service that stores readings."""

from __future__ import annotations

import click

from luftnett.cli import settings_of, wait_forever


@click.group()
def collector() -> None:
    """The collector that stores readings from MQTT."""


@collector.command("run")
@click.pass_context
def collector_run(ctx: click.Context) -> None:
    """Subscribe to readings, validate, dedupe, quarantine and store them.

    Example:  LUFTNETT_COLLECTOR__SHARED_GROUP=c luftnett collector run
    """
    from luftnett.collector.service import Collector, CollectorConfig
    from luftnett.connect import broker_url, database_url

    s = settings_of(ctx)
    with database_url(s) as db_url, broker_url(s) as mq_url:
        c = s.collector
        col = Collector(
            CollectorConfig(
                database_url=db_url,
                mqtt_url=mq_url,
                topic_root=s.mqtt.topic_root,
                client_id=c.client_id,
                batch_size=c.batch_size,
                flush_interval_s=c.flush_interval_s,
                shared_group=c.shared_group,
            )
        ).start()
        try:
            wait_forever("collector")
        finally:
            col.stop()
