"""DGS-NO2 emulator → line framer: commands, prompts, continuous mode, negative ppb, reset."""

from __future__ import annotations

from luftnett.edge.drivers import no2_uart
from luftnett.edge.framing import Item, Measurement, Reply
from luftnett.firmware_sim.no2_uart import DgsEmulator


def decode(data: bytes) -> list[Item]:
    f = no2_uart.Framer()
    return [*f.feed(data), *f.flush()]


def near_zero(_t: float) -> tuple[float, float, float]:
    return -14.0, 21.4, 46.0


def test_one_line_per_cr_with_negative_ppb() -> None:
    emu = DgsEmulator(near_zero)
    emu.poll(100.0)  # power-on
    (m,) = decode(emu.receive(b"\r", 100.0 + 3700))
    assert isinstance(m, Measurement)
    assert m.values == {"no2_ppb": -14, "temperature_c": 21, "rh_pct": 46}
    assert m.fields["uptime_s"] == 3700
    assert m.flags == frozenset()  # past the first hour
    # the raw counts follow the SHT2x transfer functions within a count's rounding
    assert abs(m.fields["adc_temperature"] / 65536 * 175.72 - 46.85 - 21.4) < 0.01  # type: ignore[operator]


def test_continuous_mode_toggles_and_cadence() -> None:
    emu = DgsEmulator(near_zero)
    assert emu.receive(b"c", 0.0) == b""
    out = b"".join(emu.poll(t / 10) for t in range(0, 101))
    lines = decode(out)
    assert len(lines) == 10
    assert all(m.flags == {"warming_up"} for m in lines)  # type: ignore[union-attr]
    emu.receive(b"c", 10.0)
    assert b"".join(emu.poll(t / 10) for t in range(101, 200)) == b""


def test_firmware_eeprom_and_zero() -> None:
    emu = DgsEmulator(near_zero)
    assert decode(emu.receive(b"f", 0)) == [
        Reply("firmware", {"firmware": "15SEP17"}, b"15SEP17\r\n")
    ]
    items = decode(emu.receive(b"e", 0))
    keys = [i.fields["key"] for i in items if isinstance(i, Reply) and i.command == "eeprom"]
    assert keys[0] == "nA_per_PPM_x100" and "Sensitivity_Code" in keys
    assert not [i for i in items if isinstance(i, Measurement)]
    (zero,) = decode(emu.receive(b"Z", 0))
    assert zero.fields == {"text": "Setting zero...done"}  # type: ignore[union-attr]


def test_prompts_take_a_typed_value() -> None:
    emu = DgsEmulator(near_zero)
    f = no2_uart.Framer()
    (prompt,) = f.feed(emu.receive(b"A", 0))
    assert prompt == Reply("prompt", {"text": "Enter Average Total:"}, b"Enter Average Total: ")
    echo, done = f.feed(emu.receive(b"30\r", 0))
    assert echo.fields == {"text": "30"}  # type: ignore[union-attr]
    assert done.fields == {"text": "done"}  # type: ignore[union-attr]
    assert emu.average_total == 30


def test_old_firmware_asks_for_the_unlock_code_first() -> None:
    emu = DgsEmulator(near_zero, firmware="14FEB17")
    f = no2_uart.Framer()
    assert [i.fields["text"] for i in f.feed(emu.receive(b"S", 0))] == ["Enter Unlock Code:"]  # type: ignore[union-attr]
    (span,) = f.feed(emu.receive(b"12345\r", 0))
    assert span.fields == {"text": "Enter span gas value in PPM:"}  # type: ignore[union-attr]


def test_sleep_until_any_byte_and_reset_restarts_uptime() -> None:
    emu = DgsEmulator(near_zero)
    emu.poll(0.0)
    assert emu.receive(b"s", 1.0) == b""
    assert emu.receive(b"\r", 2.0) == b""  # the byte that wakes it is lost
    assert decode(emu.receive(b"\r", 3.0))
    emu.receive(b"r", 10.0)
    assert emu.receive(b"\r", 10.5) == b""  # rebooting
    (m,) = decode(emu.receive(b"\r", 12.0))
    assert m.fields["uptime_s"] == 1  # type: ignore[union-attr]


def test_a_module_long_in_the_field_is_past_its_warm_up() -> None:
    """``powered_for_s``: the uptime at the first byte (the demo's boxes have been out for
    days), so its lines are not flagged warming_up; a reset starts the uptime again."""
    emu = DgsEmulator(near_zero, powered_for_s=3 * 86400)
    (m,) = decode(emu.receive(b"\r", 50.0))
    assert isinstance(m, Measurement)
    assert m.fields["uptime_s"] == 3 * 86400
    assert m.flags == frozenset()
    emu.receive(b"r", 60.0)
    (m,) = decode(emu.receive(b"\r", 70.0))
    assert isinstance(m, Measurement)
    assert m.fields["uptime_s"] == 9  # 70 - (60 + 1 s deaf)
    assert m.flags == {"warming_up"}
