"""Clock detection: an injected clock and kernel decide, so the test does not depend on the host."""

from __future__ import annotations

from datetime import UTC, datetime

import pytest

from luftnett.edge.clock import check_clock, kernel_synced

Y2026 = datetime(2026, 3, 1, tzinfo=UTC).timestamp()
Y1970 = 12.0
Y2023 = datetime(2023, 12, 31, 23, 59, tzinfo=UTC).timestamp()


@pytest.mark.parametrize(
    ("mode", "now", "kernel", "suspect"),
    [
        pytest.param("kernel", Y2026, lambda: True, False, id="synced"),
        pytest.param("kernel", Y2026, lambda: False, True, id="kernel-unsynced"),
        pytest.param("kernel", Y2026, lambda: None, False, id="kernel-unknown"),
        pytest.param("kernel", Y1970, lambda: True, True, id="boot-at-epoch"),
        pytest.param("year", Y2023, lambda: True, True, id="year-before-2024"),
        pytest.param("year", Y2026, lambda: False, False, id="year-mode-ignores-kernel"),
        pytest.param("off", Y1970, lambda: False, False, id="off"),
    ],
)
def test_check_clock(mode: str, now: float, kernel, suspect: bool) -> None:
    status = check_clock(mode, now=lambda: now, kernel=kernel)  # type: ignore[arg-type]
    assert status.suspect is suspect
    assert bool(status.reason) is suspect


def test_kernel_synced_answers_on_linux() -> None:
    assert kernel_synced() in (True, False, None)
