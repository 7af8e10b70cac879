"""SHT31 forwarder emulator → framer: cadence, commands, heater, sensor errors."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import sht31
from luftnett.edge.framing import Item, Measurement, Reply
from luftnett.firmware_sim.sht31 import HEATER_WARMING_C, Sht31Emulator


def decode(data: bytes) -> list[Item]:
    f = sht31.Framer()
    return [*f.feed(data), *f.flush()]


def test_periodic_lines_round_trip() -> None:
    emu = Sht31Emulator(lambda t: (18.0 + t / 10, 55.5))
    items = decode(b"".join(emu.poll(t / 10) for t in range(0, 101)))
    assert len(items) == 10
    for k, m in enumerate(items, start=1):
        assert isinstance(m, Measurement)
        assert m.values["temperature_c"] == pytest.approx(18.0 + k / 10, abs=0.01)
        assert m.values["rh_pct"] == pytest.approx(55.5, abs=0.01)


def test_commands_heater_and_errors() -> None:
    emu = Sht31Emulator(lambda _t: (20.0, 40.0))
    assert decode(emu.receive(b"P0\r", 0)) == [Reply("ok", {"command": "P0"}, b"SHT31,OK,P0\r\n")]
    assert b"".join(emu.poll(t) for t in range(10)) == b""
    emu.receive(b"H1\r", 10)
    (m,) = decode(emu.receive(b"Q\r", 10))
    assert m.values["temperature_c"] == pytest.approx(20.0 + HEATER_WARMING_C, abs=0.01)  # type: ignore[union-attr]
    emu.sensor_ok = False
    assert decode(emu.receive(b"Q\r", 11)) == [
        Reply("error", {"code": "NACK"}, b"SHT31,ERR,NACK\r\n")
    ]
    assert decode(emu.receive(b"XYZ\r", 12))[0].fields == {"code": "CMD"}  # type: ignore[union-attr]
    for cmd in sht31.INIT_COMMANDS:
        emu.receive(cmd, 13)
    assert emu.periodic
