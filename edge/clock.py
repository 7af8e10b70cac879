"""Is the device clock trustworthy? Readings carry the device's UTC time, so the agent must know.

A Raspberry Pi has no battery-backed clock: it boots at 1970 or at the time ``fake-hwclock``
saved at the last shutdown, and is right only once NTP has synchronised it. Two checks:

- ``year``: the wall clock says a year before :data:`MIN_YEAR` (it cannot be right);
- ``kernel``: ``adjtimex(2)`` answers ``TIME_ERROR`` — the kernel's "clock not synchronised"
  state, cleared by systemd-timesyncd, chrony or ntpd once they discipline the clock. Containers
  and VMs whose clock nobody disciplines report it too: use ``year`` there.

While a check fails, the agent marks readings ``clock_suspect``. The checks take injectable
functions, so tests decide what the clock and the kernel say.
"""

from __future__ import annotations

import ctypes
import ctypes.util
import time
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Literal

__all__ = ["MIN_YEAR", "ClockCheck", "ClockStatus", "check_clock", "kernel_synced"]

MIN_YEAR = 2024
TIME_ERROR = 5  # adjtimex return value: clock not synchronised

ClockCheck = Literal["kernel", "year", "off"]


@dataclass(frozen=True, slots=True)
class ClockStatus:
    suspect: bool
    reason: str  # "" when the clock is fine


def kernel_synced() -> bool | None:
    """The kernel's view (``adjtimex`` read-only); None where it cannot be asked."""
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c") or "libc.so.6", use_errno=True)
        buf = ctypes.create_string_buffer(512)  # struct timex, zeroed: modes = 0 reads only
        state = int(libc.adjtimex(buf))
    except (OSError, AttributeError):
        return None
    if state < 0:
        return None
    return state != TIME_ERROR


def check_clock(
    mode: ClockCheck = "kernel",
    now: Callable[[], float] = time.time,
    kernel: Callable[[], bool | None] = kernel_synced,
) -> ClockStatus:
    """Check the clock once; ``now`` gives UNIX seconds, ``kernel`` the sync state."""
    if mode == "off":
        return ClockStatus(False, "")
    year = datetime.fromtimestamp(now(), UTC).year
    if year < MIN_YEAR:
        return ClockStatus(True, f"clock says year {year} (< {MIN_YEAR})")
    if mode == "kernel" and kernel() is False:
        return ClockStatus(True, "kernel reports the clock unsynchronised (adjtimex TIME_ERROR)")
    return ClockStatus(False, "")
