"""Plantower PMS5003/PMS7003: every worked example in SENSORS.md §2 and each error category."""

from __future__ import annotations

import pytest

from luftnett.edge.drivers import pms
from luftnett.edge.framing import Item, Measurement, Rejected, Reply

H = bytes.fromhex
WORKED = H(
    "42 4D 00 1C 00 05 00 0D 00 16 00 05 00 0D 00 16"
    " 02 FD 00 FC 00 1D 00 0F 00 06 00 06 97 00 03 C5"
)
ALL_ZERO = H("42 4D 00 1C") + bytes(26) + H("00 AB")


def decode(data: bytes) -> list[Item]:
    f = pms.Framer()
    return [*f.feed(data), *f.flush()]


def test_worked_example() -> None:
    (m,) = decode(WORKED)
    assert isinstance(m, Measurement)
    assert m.values == {
        "pm1_cf1": 5,
        "pm25_cf1": 13,
        "pm10_cf1": 22,
        "pm1_ugm3": 5,
        "pm25_ugm3": 13,
        "pm10_ugm3": 22,
        "nc03_per_01l": 765,
        "nc05_per_01l": 252,
        "nc10_per_01l": 29,
        "nc25_per_01l": 15,
        "nc50_per_01l": 6,
        "nc100_per_01l": 6,
    }
    assert m.fields == {"version": 0x97, "error_code": 0}
    assert m.flags == frozenset()
    assert sum(WORKED[:30]) == 0x03C5


def test_builder_reproduces_worked_example() -> None:
    words = [5, 13, 22, 5, 13, 22, 765, 252, 29, 15, 6, 6]
    assert pms.data_frame(words) == WORKED


@pytest.mark.parametrize(
    ("built", "wire"),
    [
        pytest.param(pms.READ, "42 4D E2 00 00 01 71", id="pms-cmd-read"),
        pytest.param(pms.PASSIVE, "42 4D E1 00 00 01 70", id="pms-cmd-passive"),
        pytest.param(pms.ACTIVE, "42 4D E1 00 01 01 71", id="pms-cmd-active"),
        pytest.param(pms.SLEEP, "42 4D E4 00 00 01 73", id="pms-cmd-sleep"),
        pytest.param(pms.WAKE, "42 4D E4 00 01 01 74", id="pms-cmd-wake"),
        pytest.param(pms.ack_frame(0xE1, 0), "42 4D 00 04 E1 00 01 74", id="pms-ack-passive"),
        pytest.param(pms.ack_frame(0xE1, 1), "42 4D 00 04 E1 01 01 75", id="pms-ack-active"),
        pytest.param(pms.ack_frame(0xE4, 0), "42 4D 00 04 E4 00 01 77", id="pms-ack-sleep"),
    ],
)
def test_commands_and_acks_match_the_reference(built: bytes, wire: str) -> None:
    assert built == H(wire)


@pytest.mark.parametrize(
    ("wire", "command", "fields"),
    [
        pytest.param("42 4D 00 04 E1 00 01 74", "mode", {"mode": "passive"}, id="pms-ack-passive"),
        pytest.param("42 4D 00 04 E1 01 01 75", "mode", {"mode": "active"}, id="pms-ack-active"),
        pytest.param("42 4D 00 04 E4 00 01 77", "sleep", {"state": "sleep"}, id="pms-ack-sleep"),
    ],
)
def test_acks_decode_as_replies(wire: str, command: str, fields: dict[str, object]) -> None:
    assert decode(H(wire)) == [Reply(command, fields, H(wire))]


def test_all_zero_frame_is_kept_and_flagged_warming_up() -> None:
    assert sum(ALL_ZERO[:30]) == 0xAB
    (m,) = decode(ALL_ZERO)
    assert isinstance(m, Measurement)
    assert m.flags == {"warming_up"}
    assert set(m.values.values()) == {0.0}


def test_pm_without_counts_is_kept_and_flagged_inconsistent() -> None:
    (m,) = decode(pms.data_frame([1, 2, 3, 1, 2, 3, 0, 0, 0, 0, 0, 0]))
    assert isinstance(m, Measurement)
    assert m.flags == {"inconsistent"}


def test_above_range_is_flagged_out_of_spec() -> None:
    (m,) = decode(pms.data_frame([900, 1100, 1500, 800, 1001, 1400, 9000, 0, 0, 0, 0, 0]))
    assert isinstance(m, Measurement)
    assert m.flags == {"out_of_spec"}


def test_data_frame_slipping_in_before_the_ack() -> None:
    ack = pms.ack_frame(0xE1, 0)
    items = decode(WORKED + ack)
    assert [type(i) for i in items] == [Measurement, Reply]


def test_odd_nul_burst_between_frames_is_skipped() -> None:
    items = decode(WORKED + bytes(7) + WORKED)
    assert [type(i) for i in items] == [Measurement, Rejected, Measurement]
    assert items[1] == Rejected("no_frame", bytes(7))


@pytest.mark.parametrize(
    ("data", "category"),
    [
        pytest.param(H("01 02 03"), "no_frame", id="pms-no-frame"),
        pytest.param(H("42 00"), "bad_header", id="pms-bad-header"),
        pytest.param(H("42 4D 42 4D") + WORKED[4:], "bad_length", id="pms-stray-bm"),
        pytest.param(H("42 4D 00 14") + bytes(20), "bad_length", id="pms3003-length-20"),
        pytest.param(H("42 4D 00 24") + bytes(36), "bad_length", id="pms5003st-length-36"),
        pytest.param(WORKED[:-1] + b"\xc6", "bad_checksum", id="pms-bad-checksum"),
        pytest.param(WORKED[:20], "truncated", id="pms-truncated"),
    ],
)
def test_each_error_category(data: bytes, category: str) -> None:
    items = decode(data)
    assert items, "something must be reported"
    assert items[0].__class__ is Rejected
    assert items[0].category == category  # type: ignore[union-attr]
    assert not [i for i in items if isinstance(i, Measurement)]


def test_resyncs_one_byte_after_a_failure() -> None:
    """A stray 'BM' right before a frame costs nothing but the stray bytes."""
    items = decode(H("42 4D") + WORKED + WORKED[:-1] + b"\x00" + WORKED)
    good = [i for i in items if isinstance(i, Measurement)]
    assert len(good) == 2
    f = pms.Framer()
    f.feed(H("42 4D") + WORKED)
    assert f.counts["bad_length"] == 1
    assert f.counts["measurement"] == 1


def test_truncated_frame_at_end_of_stream_does_not_hide_an_ack_behind_it() -> None:
    """Found by hypothesis: a cut data frame followed by a complete ack, then end of log."""
    ack = pms.ack_frame(0xE1, 0)
    items = decode(ack + WORKED[:23] + ack)
    assert [type(i) for i in items] == [Reply, Rejected, Reply]
    assert items[1] == Rejected("truncated", WORKED[:23])
