"""`luftnett sim`: every model's emulator speaks its protocol on a real pty."""

from __future__ import annotations

import time

import pytest
import serial

from luftnett.edge import drivers
from luftnett.edge.framing import Measurement
from luftnett.firmware_sim.cli import MODELS, make_emulator
from luftnett.firmware_sim.faults import Faulty
from luftnett.firmware_sim.pty import PtyHost


@pytest.mark.parametrize("model", MODELS)
def test_each_model_on_a_pty_yields_measurements(model: str) -> None:
    driver = drivers.get(model)
    emu = Faulty(make_emulator(model, 15.0, seed=1), model)  # type: ignore[arg-type]
    framer = driver.Framer()
    found: list[Measurement] = []
    with PtyHost(emu) as host, serial.Serial(host.path, driver.BAUD, timeout=0.1) as port:
        for cmd in driver.INIT_COMMANDS:
            port.write(cmd)
        poll = getattr(driver, "POLL_COMMAND", None)
        deadline = time.monotonic() + 15
        while len(found) < 2 and time.monotonic() < deadline:
            if poll:
                port.write(poll)
            emu.garbage(n=8)  # junk between frames must not hide them
            found += [i for i in framer.feed(port.read(512)) if isinstance(i, Measurement)]
    assert len(found) >= 2, f"{model}: no measurement through the pty"
    assert all(v == v for m in found for v in m.values.values())  # no NaN
