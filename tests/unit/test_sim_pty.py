"""Emulators on real pseudo-terminals, read through pyserial as the edge agent reads them."""

from __future__ import annotations

import time
from collections.abc import Callable

import serial

from luftnett.edge.drivers import no2_uart, pms, sps30
from luftnett.edge.framing import Item, Measurement, Reply
from luftnett.firmware_sim.faults import Faulty
from luftnett.firmware_sim.no2_uart import DgsEmulator
from luftnett.firmware_sim.pms import PmsEmulator
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sps30 import Sps30Emulator


def read_until(
    port: serial.Serial,
    framer: pms.Framer | sps30.Framer | no2_uart.Framer,
    done: Callable[[list[Item]], bool],
    what: str,
    timeout: float = 5.0,
) -> list[Item]:
    """Read and frame until ``done(items)``; fail naming ``what`` after ``timeout`` seconds."""
    items: list[Item] = []
    deadline = time.monotonic() + timeout
    while not done(items):
        assert time.monotonic() < deadline, f"timed out waiting for {what}: got {items}"
        items += framer.feed(port.read(256))
    return items


def measurements(items: list[Item]) -> list[Measurement]:
    return [i for i in items if isinstance(i, Measurement)]


def test_pms_on_a_pty_streams_then_answers_in_passive_mode() -> None:
    emu = PmsEmulator(lambda _t: (12.0, 20.0), start_delay_s=0.1, warmup_frames=1)
    with PtyHost(emu) as host, serial.Serial(host.path, pms.BAUD, timeout=0.1) as port:
        framer = pms.Framer()
        items = read_until(port, framer, lambda i: len(measurements(i)) >= 1, "the first frame")
        assert measurements(items)[0].flags == {"warming_up"}
        port.write(pms.PASSIVE)
        items = read_until(
            port, framer, lambda i: any(isinstance(x, Reply) for x in i), "the passive ack"
        )
        assert items[-1] == Reply("mode", {"mode": "passive"}, pms.ack_frame(0xE1, 0))
        for _ in range(3):
            port.write(pms.READ)
            (m,) = read_until(port, framer, lambda i: bool(measurements(i)), "a passive read")
            assert isinstance(m, Measurement)
            assert (m.values["pm25_ugm3"], m.values["pm10_ugm3"]) == (12, 20)
        assert not [c for c in framer.counts if c not in ("measurement", "reply")]


def test_sps30_on_a_pty_polled_with_stuffing_and_sleep() -> None:
    emu = Sps30Emulator(lambda _t: (9.47, 13.28), warmup_values=0)
    with PtyHost(emu) as host, serial.Serial(host.path, sps30.BAUD, timeout=0.05) as port:
        framer = sps30.Framer()

        def ask(cmd: bytes, what: str) -> Item:
            port.write(cmd)
            (item,) = read_until(port, framer, lambda i: bool(i), what)
            return item

        for cmd in sps30.INIT_COMMANDS:
            ask(cmd, "an init reply")
        assert emu.state == "measuring"
        got: list[Measurement] = []
        deadline = time.monotonic() + 5
        while len(got) < 2:
            assert time.monotonic() < deadline, "timed out waiting for two measurements"
            item = ask(sps30.READ, "a read reply")  # early polls get the empty frame
            if isinstance(item, Measurement):
                got.append(item)
        assert got[0].values["pm25_ugm3"] == 9.47
        for cmd in sps30.SLEEP_COMMANDS:
            ask(cmd, "a sleep reply")
        port.write(sps30.READ_VERSION)
        assert port.read(64) == b""  # the UART is off
        wake = ask(sps30.WAKE_PULSE + sps30.WAKE, "the wake-up reply")
        assert isinstance(wake, Reply) and wake.fields == {"state": 0}


def test_faulty_dgs_on_a_pty_keeps_good_lines_around_garbage() -> None:
    emu = Faulty(DgsEmulator(lambda _t: (-8.0, 21.0, 45.0)), "dgs-no2", seed=5)
    with PtyHost(emu) as host, serial.Serial(host.path, no2_uart.BAUD, timeout=0.05) as port:
        framer = no2_uart.Framer()
        for k in range(6):
            if k % 2:
                emu.garbage(n=25)
            port.write(no2_uart.POLL_COMMAND)
            read_until(port, framer, lambda i, k=k: len(measurements(i)) >= 1, f"line {k}")
        assert framer.counts["measurement"] == 6
        assert sum(v for c, v in framer.counts.items() if c not in ("measurement", "reply")) >= 1
