"""Nova SDS011: the remaining worked examples of SENSORS.md §1 (replies, commands, categories)."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import sds011
from luftnett.edge.framing import Item, Measurement, Rejected, Reply

H = bytes.fromhex


def decode(data: bytes) -> list[Item]:
    f = sds011.Framer()
    return [*f.feed(data), *f.flush()]


@pytest.mark.parametrize(
    ("built", "wire"),
    [
        pytest.param(
            sds011.command(sds011.CMD_QUERY),
            "AA B4 04 00 00 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB",
            id="sds011-query",
        ),
        pytest.param(
            sds011.command(sds011.CMD_REPORTING_MODE, b"\x01\x01"),
            "AA B4 02 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 02 AB",
            id="sds011-set-query-mode",
        ),
        pytest.param(
            sds011.command(sds011.CMD_REPORTING_MODE, b"\x01\x00"),
            "AA B4 02 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 01 AB",
            id="sds011-set-active-mode",
        ),
        pytest.param(
            sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x00"),
            "AA B4 06 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 05 AB",
            id="sds011-sleep",
        ),
        pytest.param(
            sds011.command(sds011.CMD_SLEEP_WORK, b"\x01\x01"),
            "AA B4 06 01 01 00 00 00 00 00 00 00 00 00 00 FF FF 06 AB",
            id="sds011-work",
        ),
        pytest.param(
            sds011.command(sds011.CMD_PERIOD, b"\x01\x00"),
            "AA B4 08 01 00 00 00 00 00 00 00 00 00 00 00 FF FF 07 AB",
            id="sds011-continuous",
        ),
    ],
)
def test_ready_to_send_commands(built: bytes, wire: str) -> None:
    assert built == H(wire)


@pytest.mark.parametrize(
    ("wire", "command", "fields"),
    [
        pytest.param(
            "AA C5 02 01 01 00 A1 60 05 AB",
            "reporting_mode",
            {"device_id": "A160", "op": "set", "mode": "query"},
            id="sds011-query-mode-set",
        ),
        pytest.param(
            "AA C5 07 0F 07 0A A1 60 28 AB",
            "firmware",
            {"device_id": "A160", "firmware": "2015-07-10"},
            id="sds011-firmware",
        ),
        pytest.param(
            "AA C5 08 00 02 00 A1 60 0B AB",
            "working_period",
            {"device_id": "A160", "op": "query", "period_min": 2},
            id="sds011-period-query",
        ),
        pytest.param(
            "AA C5 05 00 00 00 A0 01 A6 AB",
            "set_id",
            {"device_id": "A001"},
            id="sds011-set-id-new-id",
        ),
        pytest.param(
            "AA C5 06 00 00 00 A1 60 07 AB",
            "sleep_work",
            {"device_id": "A160", "op": "query", "state": "sleep"},
            id="sds011-datasheet-typo-means-sleeping",
        ),
    ],
)
def test_datasheet_replies(wire: str, command: str, fields: dict[str, object]) -> None:
    assert decode(H(wire)) == [Reply(command, fields, H(wire))]


def test_all_zero_frame_is_kept_and_flagged() -> None:
    (m,) = decode(H("AA C0 00 00 00 00 00 00 00 AB"))
    assert isinstance(m, Measurement)
    assert m.flags == {"warming_up"}


def test_dirty_inlet_values_are_kept_and_flagged_out_of_spec() -> None:
    (m,) = decode(sds011.data_frame(999.9, 1999.9))
    assert isinstance(m, Measurement)
    assert m.values == {"pm25_ugm3": 999.9, "pm10_ugm3": 1999.9}
    assert m.flags == {"out_of_spec"}


@pytest.mark.parametrize(
    ("wire", "category"),
    [
        pytest.param("01 02", "no_frame", id="sds011-no-frame"),
        pytest.param("AA 01", "bad_header", id="sds011-bad-header"),
        pytest.param("AA C0 D4 04 3A 0A A1 60 1D AC", "bad_tail", id="sds011-bad-tail"),
        pytest.param("AA C0 D4 04 3A 0A A1 60 1E AB", "bad_checksum", id="sds011-bad-checksum"),
        pytest.param("AA C0 D4 04", "truncated", id="sds011-truncated"),
    ],
)
def test_each_error_category(wire: str, category: str) -> None:
    items = decode(H(wire))
    assert isinstance(items[0], Rejected)
    assert items[0].category == category
