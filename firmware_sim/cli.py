"""`luftnett sim`: an emulated sensor on a pseudo-terminal."""

from __future__ import annotations

import click

from luftnett.cli import wait_forever


@click.command()
@click.argument("model", type=click.Choice(["sds011"]))
@click.option("--pm25", type=float, default=12.0, show_default=True, help="Mean PM2.5, µg/m³.")
def sim(model: str, pm25: float) -> None:
    """Emulate a sensor on a pseudo-terminal and print its path.

    Point an edge agent (or any serial tool) at the printed /dev/pts/N.

    Example:  luftnett sim sds011 --pm25 20
    """
    import random

    from luftnett.firmware_sim.pty import PtyHost
    from luftnett.firmware_sim.sds011 import Sds011Emulator

    rng = random.Random()

    def source(_t: float) -> tuple[float, float]:
        v = max(0.0, rng.gauss(pm25, pm25 * 0.1))
        return v, v * 1.6

    with PtyHost(Sds011Emulator(source)) as host:
        click.echo(host.path)
        wait_forever(f"{model} emulator on {host.path}")
