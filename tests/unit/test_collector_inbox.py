"""The collector's inbox between paho's loop and the validator: order, bound, waiting."""

from __future__ import annotations

import threading
import time
from typing import Any

from luftnett.collector.mqtt_client import Inbox


def test_take_returns_items_in_order_up_to_n() -> None:
    box = Inbox(maxsize=10)
    for i in range(7):
        box.put(i)  # type: ignore[arg-type]
    assert box.take(5, timeout=0) == [0, 1, 2, 3, 4]
    assert box.take(5, timeout=0) == [5, 6]
    t0 = time.monotonic()
    assert box.take(5, timeout=0.1) == []
    assert time.monotonic() - t0 >= 0.09


def test_a_waiting_taker_wakes_on_the_first_put() -> None:
    box = Inbox(maxsize=10)
    got: list[Any] = []
    t = threading.Thread(target=lambda: got.extend(box.take(5, timeout=5)))
    t.start()
    time.sleep(0.05)
    t0 = time.monotonic()
    box.put("m")  # type: ignore[arg-type]
    t.join(5)
    assert got == ["m"]
    assert time.monotonic() - t0 < 1


def test_put_blocks_while_full_until_a_take_makes_room() -> None:
    box = Inbox(maxsize=3)
    for i in range(3):
        box.put(i)  # type: ignore[arg-type]
    done = threading.Event()

    def put_fourth() -> None:
        box.put(3)  # type: ignore[arg-type]
        done.set()

    threading.Thread(target=put_fourth, daemon=True).start()
    assert not done.wait(0.2)  # full: the producer (paho's loop) is held back
    assert len(box) == 3
    assert box.take(2, timeout=0) == [0, 1]
    assert done.wait(2)
    assert box.take(10, timeout=0) == [2, 3]
