"""SHT31 forwarder lines (our format, docs/sensors.md): SENSORS.md §5 example, error categories."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import sht31
from luftnett.edge.framing import Item, Measurement, Rejected, Reply

LINE = b"SHT31,6666,93,8000,A2\r\n"


def decode(data: bytes) -> list[Item]:
    f = sht31.Framer()
    return [*f.feed(data), *f.flush()]


def test_crc8_reference_values() -> None:
    assert sht31.crc8(b"\xbe\xef") == 0x92
    assert sht31.crc8(b"\x66\x66") == 0x93
    assert sht31.crc8(b"\x80\x00") == 0xA2


def test_reference_reading() -> None:
    """I²C bytes ``66 66 93 80 00 A2`` → 25.00 °C, 50.00 %RH, forwarded as one line."""
    assert sht31.raw_line(0x6666, 0x8000) == LINE
    assert sht31.measurement_line(25.0, 50.0) == LINE
    (m,) = decode(LINE)
    assert isinstance(m, Measurement)
    assert m.values == {"temperature_c": 25.0, "rh_pct": 50.0}
    assert m.fields == {"t_raw": 0x6666, "rh_raw": 0x8000}


def test_lowercase_hex_is_accepted() -> None:
    (m,) = decode(b"SHT31,6666,93,8000,a2\r\n")
    assert isinstance(m, Measurement)


def test_below_rated_range_is_out_of_spec() -> None:
    (m,) = decode(sht31.raw_line(0, 0))
    assert isinstance(m, Measurement)
    assert m.values["temperature_c"] == -45.0
    assert m.flags == {"out_of_spec"}


@pytest.mark.parametrize(
    ("line", "command", "fields"),
    [
        pytest.param(sht31.error_line("NACK"), "error", {"code": "NACK"}, id="sht31-nack"),
        pytest.param(sht31.ok_line("P0"), "ok", {"command": "P0"}, id="sht31-ok"),
    ],
)
def test_status_lines_are_replies(line: bytes, command: str, fields: dict[str, object]) -> None:
    assert decode(line) == [Reply(command, fields, line)]


def test_commands() -> None:
    assert sht31.command("Q") == b"Q\r"
    assert sht31.INIT_COMMANDS == (b"P1\r",)
    with pytest.raises(ValueError, match="unknown SHT31"):
        sht31.command("X")


@pytest.mark.parametrize(
    ("data", "category"),
    [
        pytest.param(b"hello", "no_frame", id="sht31-no-frame"),
        pytest.param(b"SHX31,6666,93,8000,A2\r\n", "bad_header", id="sht31-bad-header"),
        pytest.param(b"SHT31,6666,93,8000,A2\n", "bad_tail", id="sht31-lf-without-cr"),
        pytest.param(b"SHT31,6666,93,8000,A3\r\n", "bad_checksum", id="sht31-bad-crc"),
        pytest.param(b"SHT31,6666,93,8000\r\n", "bad_field_count", id="sht31-3-fields"),
        pytest.param(b"SHT31,66G6,93,8000,A2\r\n", "bad_field_value", id="sht31-not-hex"),
        pytest.param(b"SHT31,666,93,8000,A2\r\n", "bad_field_value", id="sht31-short-word"),
        pytest.param(b"SHT31," + b"0" * 40, "bad_length", id="sht31-no-line-end"),
        pytest.param(LINE[:12], "truncated", id="sht31-truncated"),
    ],
)
def test_each_error_category(data: bytes, category: str) -> None:
    items = decode(data)
    assert isinstance(items[0], Rejected)
    assert items[0].category == category
    assert not [i for i in items if isinstance(i, Measurement)]


def test_resync_after_a_broken_line() -> None:
    items = decode(b"SHT31," + LINE + LINE)
    assert [i for i in items if isinstance(i, Measurement)] == [decode(LINE)[0]] * 2
