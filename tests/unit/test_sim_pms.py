"""PMS emulator → PMS framer round trips: cadence, acks, the missing wake ack, the slip quirk."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import pms
from luftnett.edge.framing import Item, Measurement, Rejected, Reply
from luftnett.firmware_sim.pms import STABLE_S, WAKE_DELAY_S, PmsEmulator, pm_words


def steady(_t: float) -> tuple[float, float]:
    return 12.0, 20.0


def run(emu: PmsEmulator, until: float, step: float = 0.05, start: float = 0.0) -> bytes:
    out, t = b"", start
    while t <= until:
        out += emu.poll(t)
        t = round(t + step, 6)
    return out


def decode(data: bytes) -> list[Item]:
    f = pms.Framer()
    return [*f.feed(data), *f.flush()]


def test_active_cadence_and_warm_up_frame() -> None:
    emu = PmsEmulator(steady)
    items = decode(run(emu, 60.0))
    assert all(isinstance(i, Measurement) for i in items)
    expected = int((60.0 - WAKE_DELAY_S) / STABLE_S) + 1
    assert len(items) == expected
    assert items[0].flags == {"warming_up"}  # type: ignore[union-attr]
    m = items[1]
    assert isinstance(m, Measurement)
    assert (m.values["pm25_ugm3"], m.values["pm10_ugm3"]) == (12, 20)
    assert m.flags == frozenset()


def test_fast_mode_when_concentration_moves() -> None:
    level = {"v": 10.0}

    def moving(_t: float) -> tuple[float, float]:
        level["v"] += 20.0
        return level["v"], level["v"] * 1.5

    emu = PmsEmulator(moving, warmup_frames=0)
    frames = [i for i in decode(run(emu, 20.0)) if isinstance(i, Measurement)]
    assert len(frames) > (20.0 - WAKE_DELAY_S) / STABLE_S * 2


def test_mode_command_ack_with_a_data_frame_slipping_in_first() -> None:
    emu = PmsEmulator(steady, warmup_frames=0)
    run(emu, 5.0)
    items = decode(emu.receive(pms.PASSIVE, 5.0))
    assert [type(i) for i in items] == [Measurement, Reply]
    assert items[1] == Reply("mode", {"mode": "passive"}, pms.ack_frame(0xE1, 0))
    assert run(emu, 20.0, start=5.05) == b""  # passive: silent until asked
    (m,) = decode(emu.receive(pms.READ, 20.0))
    assert isinstance(m, Measurement)


def test_sleep_is_acked_wake_is_not() -> None:
    emu = PmsEmulator(steady, warmup_frames=1)
    run(emu, 5.0)
    assert decode(emu.receive(pms.SLEEP, 5.0)) == [
        Reply("sleep", {"state": "sleep"}, pms.ack_frame(0xE4, 0))
    ]
    assert run(emu, 30.0, start=5.05) == b""
    assert emu.receive(pms.READ, 30.0) == b""  # asleep: deaf except to wake
    assert emu.receive(pms.WAKE, 30.0) == b""  # no ack
    items = decode(run(emu, 40.0, start=30.05))
    assert items and items[0].flags == {"warming_up"}  # type: ignore[union-attr]
    assert all(isinstance(i, Measurement) for i in items)


def test_bad_command_is_ignored_and_split_commands_are_heard() -> None:
    emu = PmsEmulator(steady, slip_before_ack=False)
    assert emu.receive(pms.PASSIVE[:-1] + b"\x00", 1.0) == b""
    assert emu.receive(pms.ACTIVE[:3], 1.0) == b""
    assert emu.receive(pms.ACTIVE[3:], 1.0) == pms.ack_frame(0xE1, 1)


@pytest.mark.parametrize(("pm25", "pm10"), [(0.0, 0.0), (5.0, 8.0), (35.0, 50.0), (800.0, 950.0)])
def test_emulated_words_are_consistent(pm25: float, pm10: float) -> None:
    (m,) = decode(pms.data_frame(pm_words(pm25, pm10)))
    assert isinstance(m, Measurement)
    assert m.values["pm25_ugm3"] == round(pm25)
    assert "inconsistent" not in m.flags
    assert m.values["pm25_cf1"] >= m.values["pm25_ugm3"]
    assert not [i for i in decode(pms.data_frame(pm_words(pm25, pm10))) if isinstance(i, Rejected)]
