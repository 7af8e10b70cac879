"""Sensor drivers, one module per family with the same names in each (as PyPMS does).

Every driver module exposes ``MODEL``, ``BAUD``, ``Framer`` (see :mod:`luftnett.edge.framing`)
and ``INIT_COMMANDS`` (bytes to send after opening the port). A sensor the agent may put to
sleep between windows also exports ``SLEEP_COMMANDS`` and ``WAKE_COMMANDS`` (sequences sent in
order, ``COMMAND_GAP_S`` apart); one without them has no duty cycle (DGS-NO2, SHT31: see
docs/sensors.md). :func:`get` maps a model string to its module.
"""

from __future__ import annotations

import importlib
from types import ModuleType

from luftnett.errors import ConfigError

__all__ = ["DRIVERS", "get"]

DRIVERS: dict[str, str] = {
    "sds011": "luftnett.edge.drivers.sds011",
    "pms5003": "luftnett.edge.drivers.pms",
    "pms7003": "luftnett.edge.drivers.pms",
    "sps30": "luftnett.edge.drivers.sps30",
    "dgs-no2": "luftnett.edge.drivers.no2_uart",
    "sht31": "luftnett.edge.drivers.sht31",
}


def get(model: str) -> ModuleType:
    try:
        return importlib.import_module(DRIVERS[model])
    except KeyError:
        raise ConfigError(
            f"unknown sensor model {model!r}; known: {', '.join(sorted(DRIVERS))}"
        ) from None
