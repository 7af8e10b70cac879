"""`luftnett sim`: an emulated sensor on a pseudo-terminal."""

from __future__ import annotations

import click

from luftnett.cli import wait_forever

MODELS = ("sds011", "pms5003", "pms7003", "sps30", "dgs-no2", "sht31")


def make_emulator(model: str, level: float, seed: int | None = None) -> object:
    """An emulator of ``model`` whose main value wanders around ``level``.

    ``level`` is PM2.5 in µg/m³ for particle sensors, NO2 in ppb for dgs-no2 and the
    temperature in °C for sht31.
    """
    import random

    from luftnett.firmware_sim import no2_uart, pms, sds011, sht31, sps30

    rng = random.Random(seed)

    def noisy(v: float, rel: float = 0.1) -> float:
        return max(0.0, rng.gauss(v, abs(v) * rel))

    def pm(_t: float) -> tuple[float, float]:
        v = noisy(level)
        return v, v * 1.6

    if model == "sds011":
        return sds011.Sds011Emulator(pm)
    if model in ("pms5003", "pms7003"):
        return pms.PmsEmulator(pm, model=model)
    if model == "sps30":
        return sps30.Sps30Emulator(pm)
    if model == "dgs-no2":
        return no2_uart.DgsEmulator(lambda _t: (rng.gauss(level, 3.0), 12.0, 55.0))
    if model == "sht31":
        return sht31.Sht31Emulator(lambda _t: (rng.gauss(level, 0.2), noisy(60.0, 0.05)))
    raise click.BadParameter(f"unknown model {model!r}")


@click.command()
@click.argument("model", type=click.Choice(MODELS))
@click.option(
    "--level",
    "--pm25",
    type=float,
    default=12.0,
    show_default=True,
    help="Mean value: PM2.5 µg/m³ (particle sensors), NO2 ppb (dgs-no2), °C (sht31).",
)
@click.option(
    "--garbage-every",
    type=click.FloatRange(min=0.1),
    default=None,
    help="Inject 16 random bytes on the wire every N seconds (resync testing).",
)
def sim(model: str, level: float, garbage_every: float | None) -> None:
    """Emulate a sensor byte for byte on a pseudo-terminal and print its path.

    Point an edge agent (or any serial tool) at the printed /dev/pts/N. The emulator answers
    the sensor's real commands (sleep, wake, query, ...), as docs/sensors.md describes.

    Example:  luftnett sim pms5003 --level 20 --garbage-every 10
    """
    import threading

    from luftnett.firmware_sim.faults import Faulty
    from luftnett.firmware_sim.pty import PtyHost

    emu = Faulty(make_emulator(model, level), model)  # type: ignore[arg-type]
    stop = threading.Event()

    def inject() -> None:
        assert garbage_every is not None
        while not stop.wait(garbage_every):
            emu.garbage()

    with PtyHost(emu) as host:
        if garbage_every:
            threading.Thread(target=inject, daemon=True).start()
        click.echo(host.path)
        try:
            wait_forever(f"{model} emulator on {host.path}")
        finally:
            stop.set()
