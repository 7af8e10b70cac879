"""The driver registry and the names every driver module shares (as PyPMS does)."""

from __future__ import annotations

from collections import Counter

import pytest

from luftnett.edge import drivers
from luftnett.errors import ConfigError

EXPECTED = {
    "sds011": "sds011",
    "pms5003": "pms",
    "pms7003": "pms",
    "sps30": "sps30",
    "dgs-no2": "no2_uart",
    "sht31": "sht31",
}


def test_registry_lists_every_model() -> None:
    assert {m: p.rsplit(".", 1)[1] for m, p in drivers.DRIVERS.items()} == EXPECTED


@pytest.mark.parametrize("model", sorted(EXPECTED))
def test_every_driver_exposes_the_same_names(model: str) -> None:
    mod = drivers.get(model)
    assert model == mod.MODEL or model in mod.MODELS
    assert isinstance(mod.BAUD, int)
    assert isinstance(mod.INIT_COMMANDS, tuple)
    assert all(isinstance(c, bytes) and c for c in mod.INIT_COMMANDS)
    assert isinstance(getattr(mod, "INTERVAL_S", 1.0), float)
    framer = mod.Framer()
    assert isinstance(framer.counts, Counter)
    assert framer.feed(b"") == []
    assert framer.flush() == []
    for name in mod.__all__:
        assert hasattr(mod, name), f"{mod.__name__}.__all__ names a missing {name}"


@pytest.mark.parametrize("model", ["sps30", "dgs-no2"])
def test_polled_sensors_say_what_to_send(model: str) -> None:
    mod = drivers.get(model)
    assert isinstance(mod.POLL_COMMAND, bytes)
    assert mod.POLL_INTERVAL_S >= 1.0


def test_unknown_model_is_a_config_error_naming_the_known_ones() -> None:
    with pytest.raises(ConfigError, match="dgs-no2, pms5003"):
        drivers.get("pms9000")
