"""The SDS011 emulator's finite recording (``max_frames``)."""

from __future__ import annotations

from luftnett.edge.drivers import sds011 as proto
from luftnett.firmware_sim.sds011 import Sds011Emulator


def _data_frames(wire: bytes) -> int:
    assert len(wire) % proto.FRAME_LEN == 0
    frames = [wire[i : i + proto.FRAME_LEN] for i in range(0, len(wire), proto.FRAME_LEN)]
    return sum(f[1] == proto.DATA for f in frames)


def test_a_stalled_host_catching_up_stops_at_max_frames() -> None:
    emu = Sds011Emulator(lambda _t: (4.2, 6.3), max_frames=5)
    emu.poll(0.0)
    assert _data_frames(emu.poll(3.0)) == 3  # on time: one frame a second
    assert _data_frames(emu.poll(60.0)) == 2  # a 57 s stall owes 57 frames; 2 are left
    assert emu.frames_sent == 5
    assert emu.poll(120.0) == b""


def test_query_mode_answers_nothing_past_max_frames() -> None:
    emu = Sds011Emulator(lambda _t: (4.2, 6.3), max_frames=1)
    emu.active = False
    query = proto.command(proto.CMD_QUERY)
    assert _data_frames(emu.receive(query, 0.0)) == 1
    assert emu.receive(query, 1.0) == b""


def test_without_max_frames_a_stall_is_caught_up_in_full() -> None:
    emu = Sds011Emulator(lambda _t: (4.2, 6.3))
    emu.poll(0.0)
    assert _data_frames(emu.poll(60.0)) == 60
