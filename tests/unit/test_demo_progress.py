"""The demo's progress lines: one every 5 s however long it runs, the last at its end."""

from __future__ import annotations

import pytest

from luftnett.demo import PROGRESS_EVERY_S, progress_wait


@pytest.mark.parametrize("elapsed", [0.0, 4.9, 5.0, 60.0, 3600.0])
def test_until_ctrl_c_a_line_every_five_seconds(elapsed: float) -> None:
    # it printed ten lines a second once the first 5 s had passed (4,600 lines in 8 minutes)
    assert progress_wait(elapsed, None) == PROGRESS_EVERY_S == 5.0


def test_with_a_duration_the_last_line_is_at_its_end() -> None:
    assert progress_wait(0.0, 12.0) == 5.0
    assert progress_wait(10.0, 12.0) == pytest.approx(2.0)
    assert progress_wait(11.95, 12.0) == 0.1  # never a busy loop
