"""Fault injection (firmware_sim.faults) on every emulator, read back through its framer."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import pytest

from luftnett.edge import drivers
from luftnett.edge.drivers import sds011, sps30
from luftnett.edge.framing import Item, Measurement, Rejected
from luftnett.firmware_sim.faults import WAKE_PATTERNS, Faulty
from luftnett.firmware_sim.no2_uart import DgsEmulator
from luftnett.firmware_sim.pms import PmsEmulator
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.firmware_sim.sht31 import Sht31Emulator
from luftnett.firmware_sim.sps30 import Sps30Emulator


@dataclass
class Case:
    make: Callable[[], Any]
    key: str  # a value that follows the source
    corrupt_category: str
    poll: bytes | None = None  # what the host sends each tick (polled sensors)
    setup: bytes = b""


def rising2(t: float) -> tuple[float, float]:
    return 10.0 + t, 20.0 + t


def rising3(t: float) -> tuple[float, float, float]:
    return 10.0 + t, 20.0, 50.0


def warm(t: float) -> tuple[float, float]:
    return 10.0 + t / 10, 50.0


CASES = {
    "sds011": Case(lambda: Sds011Emulator(rising2), "pm25_ugm3", "bad_checksum"),
    "pms5003": Case(
        lambda: PmsEmulator(rising2, warmup_frames=0, start_delay_s=0.5),
        "pm25_ugm3",
        "bad_checksum",
    ),
    "sps30": Case(
        lambda: Sps30Emulator(rising2, warmup_values=0),
        "pm25_ugm3",
        "bad_checksum",
        poll=sps30.READ,
        setup=sps30.START_FLOAT,
    ),
    "dgs-no2": Case(lambda: DgsEmulator(rising3), "no2_ppb", "bad_field_value", poll=b"\r"),
    "sht31": Case(lambda: Sht31Emulator(warm), "temperature_c", "bad_checksum"),
}


class Bench:
    """An emulator (maybe faulty) with its framer and a clock that ticks 0.5 s."""

    def __init__(self, model: str, faulty: bool = True) -> None:
        self.case = CASES[model]
        self.inner = self.case.make()
        self.emu = Faulty(self.inner, model, seed=3) if faulty else self.inner
        self.framer = drivers.get(model).Framer()
        self.t = 0.0
        self.wire = b""
        self.emu.receive(self.case.setup, 0.0)

    def run(self, seconds: float) -> list[Item]:
        items: list[Item] = []
        end = self.t + seconds
        while self.t < end:
            self.t = round(self.t + 0.5, 6)
            out = self.emu.poll(self.t)
            if self.case.poll:
                out += self.emu.receive(self.case.poll, self.t)
            self.wire += out
            items += self.framer.feed(out)
        return items


def good(items: list[Item]) -> list[Measurement]:
    return [i for i in items if isinstance(i, Measurement)]


def accepted(items: list[Item]) -> list[Item]:
    return [i for i in items if not isinstance(i, Rejected)]


def rejected(items: list[Item]) -> list[str]:
    return [i.category for i in items if isinstance(i, Rejected)]


MODELS = sorted(CASES)


@pytest.mark.parametrize("model", MODELS)
def test_without_faults_the_wrapper_is_transparent(model: str) -> None:
    plain, wrapped = Bench(model, faulty=False), Bench(model)
    assert plain.run(10) == wrapped.run(10)
    assert plain.wire == wrapped.wire
    assert len(good(wrapped.run(10))) >= 4


@pytest.mark.parametrize("model", MODELS)
def test_garbage_is_rejected_and_frames_survive(model: str) -> None:
    b = Bench(model)
    before = len(good(b.run(10)))
    b.emu.garbage(n=40)
    b.emu.garbage(b"\x00" * 7)
    items = b.run(10)
    assert rejected(items)
    assert len(good(items)) >= before - 1  # at most the frame the garbage ran into


@pytest.mark.parametrize("model", MODELS)
def test_dropped_bytes_cost_one_frame(model: str) -> None:
    b = Bench(model)
    b.run(5)
    b.emu.drop(3)
    items = b.run(10)
    clean = Bench(model)
    clean.run(5)
    assert len(accepted(items)) == len(accepted(clean.run(10))) - 1
    assert rejected(items)


@pytest.mark.parametrize("model", MODELS)
def test_corrupted_frames_are_rejected_with_their_category(model: str) -> None:
    b = Bench(model)
    b.run(5)
    b.emu.corrupt(2)
    items = b.run(10)
    assert rejected(items).count(b.case.corrupt_category) == 2
    assert len(good(items)) >= 3


@pytest.mark.parametrize("model", MODELS)
def test_stuck_values_repeat_until_released(model: str) -> None:
    b = Bench(model)
    b.run(5)
    b.emu.stuck = True
    stuck = {m.values[b.case.key] for m in good(b.run(10))}
    assert len(stuck) == 1
    b.emu.stuck = False
    assert len({m.values[b.case.key] for m in good(b.run(10))}) > 1


@pytest.mark.parametrize("model", MODELS)
def test_dead_until_woken(model: str) -> None:
    b = Bench(model)
    b.run(5)
    b.emu.dead = True
    assert b.run(10) == []
    wake = WAKE_PATTERNS[model]
    wake_cmd = {
        "sds011": sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x01"),
        "pms5003": b"BM\xe4\x00\x01\x01\x74",
        "sps30": sps30.WAKE,
        "dgs-no2": b"r",
        "sht31": b"P1\r",
    }[model]
    assert wake_cmd.startswith(wake)
    b.emu.receive(b"nonsense" + wake_cmd[:2], b.t)
    b.emu.receive(wake_cmd[2:], b.t)
    assert not b.emu.dead
    assert good(b.run(10))  # the DGS reboots for a second first


@pytest.mark.parametrize("model", MODELS)
def test_unplugged_is_silent_both_ways_and_resumes_without_a_burst(model: str) -> None:
    b = Bench(model)
    b.run(5)
    b.emu.unplugged = True
    assert b.run(30) == []
    assert b.emu.receive(b"\r" + sps30.READ, b.t) == b""
    b.emu.unplugged = False
    assert 3 <= len(good(b.run(10))) <= 21
