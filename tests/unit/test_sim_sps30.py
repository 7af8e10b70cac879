"""SPS30 emulator → SHDLC framer round trips: states, early polls, 0x43, sleep with the UART off."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import sps30
from luftnett.edge.framing import Item, Measurement, Reply
from luftnett.firmware_sim.sps30 import Sps30Emulator, sps30_values


def decode(data: bytes) -> list[Item]:
    f = sps30.Framer()
    return [*f.feed(data), *f.flush()]


def ask(emu: Sps30Emulator, cmd: bytes, now: float) -> Item:
    (item,) = decode(emu.receive(cmd, now))
    return item


def state_of(item: Item) -> int:
    assert isinstance(item, Reply | Measurement)
    return int(item.fields["state"])  # type: ignore[call-overload]


@pytest.fixture
def emu() -> Sps30Emulator:
    return Sps30Emulator(lambda _t: (9.47, 13.28), warmup_values=1)


def test_measurement_cycle_with_early_polls(emu: Sps30Emulator) -> None:
    assert state_of(ask(emu, sps30.READ, 0.0)) == 0x43  # idle: not measuring yet
    assert state_of(ask(emu, sps30.START_FLOAT, 0.0)) == 0
    early = ask(emu, sps30.READ, 0.5)
    assert isinstance(early, Reply) and early.fields == {"state": 0, "empty": True}
    first = ask(emu, sps30.READ, 1.02)
    assert isinstance(first, Measurement) and first.flags == {"warming_up"}
    assert isinstance(ask(emu, sps30.READ, 1.5), Reply)  # no new value yet
    m = ask(emu, sps30.READ, 2.01)
    assert isinstance(m, Measurement)
    for name, value in sps30_values(9.47, 13.28).items():
        assert m.values[name] == pytest.approx(value, abs=2e-3), name
    assert m.flags == frozenset()


def test_uint16_output(emu: Sps30Emulator) -> None:
    emu.warmup_values = 0
    ask(emu, sps30.START_UINT16, 0.0)
    m = ask(emu, sps30.READ, 1.0)
    assert isinstance(m, Measurement)
    assert m.fields["format"] == "uint16"
    assert m.values["pm25_ugm3"] == 9


def test_wrong_state_and_bad_parameters(emu: Sps30Emulator) -> None:
    assert state_of(ask(emu, sps30.STOP, 0.0)) == 0x43
    assert state_of(ask(emu, sps30.FAN_CLEAN, 0.0)) == 0x43
    assert state_of(ask(emu, sps30.WAKE, 0.0)) == 0x43  # awake already
    assert state_of(ask(emu, sps30.command(sps30.CMD_START, b"\x01\x04"), 0.0)) == 0x04
    assert state_of(ask(emu, sps30.command(sps30.CMD_START, b"\x01"), 0.0)) == 0x01
    assert state_of(ask(emu, sps30.command(0x42), 0.0)) == 0x02
    ask(emu, sps30.START_FLOAT, 0.0)
    assert state_of(ask(emu, sps30.START_FLOAT, 0.1)) == 0x43  # "already running"
    assert state_of(ask(emu, sps30.SLEEP, 0.2)) == 0x43  # sleep only from idle


def test_sleep_turns_the_uart_off_until_a_pulse_and_wake(emu: Sps30Emulator) -> None:
    assert state_of(ask(emu, sps30.SLEEP, 0.0)) == 0
    assert emu.receive(sps30.READ_VERSION, 5.0) == b""  # UART off: the frame only wakes it
    assert emu.receive(sps30.WAKE, 10.0) == b""  # too late: off again, this one is lost too
    wake = ask(emu, sps30.WAKE, 10.05)  # the second wake-up within 100 ms
    assert isinstance(wake, Reply) and (wake.command, state_of(wake)) == ("wake_up", 0)
    assert ask(emu, sps30.SLEEP, 11.0).command == "sleep"  # type: ignore[union-attr]
    pulse_then_wake = ask(emu, sps30.WAKE_PULSE + sps30.WAKE, 20.0)
    assert state_of(pulse_then_wake) == 0
    assert emu.state == "idle"


def test_driver_duty_sequences_work_on_the_emulator(emu: Sps30Emulator) -> None:
    for cmd in sps30.INIT_COMMANDS:
        emu.receive(cmd, 0.0)
    assert emu.state == "measuring"
    for cmd in sps30.SLEEP_COMMANDS:
        emu.receive(cmd, 1.0)
    assert emu.state == "sleeping"
    replies = decode(b"".join(emu.receive(cmd, 2.0) for cmd in sps30.WAKE_COMMANDS))
    assert [(r.command, state_of(r)) for r in replies] == [  # type: ignore[union-attr]
        ("wake_up", 0),
        ("start_measurement", 0),
    ]


def test_fan_cleaning_pauses_new_values(emu: Sps30Emulator) -> None:
    ask(emu, sps30.START_FLOAT, 0.0)
    assert state_of(ask(emu, sps30.FAN_CLEAN, 0.5)) == 0
    assert isinstance(ask(emu, sps30.READ, 5.0), Reply)  # cleaning: empty
    assert isinstance(ask(emu, sps30.READ, 11.0), Measurement)


def test_any_state_commands(emu: Sps30Emulator) -> None:
    assert ask(emu, sps30.command(sps30.CMD_INFO, b"\x00"), 0).fields["text"] == "00080000"  # type: ignore[union-attr]
    assert ask(emu, sps30.command(sps30.CMD_INFO, b"\x03"), 0).fields["text"] == emu.serial  # type: ignore[union-attr]
    assert ask(emu, sps30.READ_VERSION, 0).fields["firmware"] == "2.2"  # type: ignore[union-attr]
    interval = ask(emu, sps30.command(sps30.CMD_AUTO_CLEAN, b"\x00"), 0)
    assert interval.fields["interval_s"] == 604_800  # type: ignore[union-attr]
    emu.receive(sps30.command(sps30.CMD_AUTO_CLEAN, b"\x00" + (3600).to_bytes(4, "big")), 0)
    assert emu.auto_clean_s == 3600
    emu.status_register = sps30.STATUS_FAN
    status = ask(emu, sps30.command(sps30.CMD_STATUS, b"\x01"), 0)
    assert status.fields["fan_error"] is True  # type: ignore[union-attr]
    assert emu.status_register == 0
    assert state_of(ask(emu, sps30.RESET, 0)) == 0


def test_stuffed_bytes_appear_on_the_wire_and_decode() -> None:
    """Values whose floats contain 7D/7E/11/13 bytes travel stuffed and come back exact."""
    emu = Sps30Emulator(lambda _t: (0.0, 0.0), warmup_values=0)
    ask(emu, sps30.START_FLOAT, 0.0)
    seen_escape = False
    for k in range(1, 200):
        pm25 = k * 0.37
        emu.source = lambda _t, v=pm25: (v, v * 1.4)  # type: ignore[misc]
        wire = emu.receive(sps30.READ, float(k))
        seen_escape |= sps30.ESC in wire[1:-1]
        (m,) = decode(wire)
        assert isinstance(m, Measurement)
        assert m.values["pm25_ugm3"] == pytest.approx(pm25, abs=1e-3)
    assert seen_escape
