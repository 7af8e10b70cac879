"""Soak devices: real emulators, framers, averagers, outboxes and MQTT publishing.

:class:`SimAgent` is the real :class:`~luftnett.edge.agent.EdgeAgent` — its outbox, its
``_store`` (clock flag, outbox append, shed policy) and its publisher thread (QoS 1, batches,
pacing, delete after PUBACK) — without its serial reader threads, whose loop stamps frames with
the wall clock. :class:`SimDevice` takes the reader's place on the simulated clock: it sends
the driver's start-up commands and polls to the emulator, feeds the bytes the emulator answers
(through a :class:`~luftnett.firmware_sim.faults.Faulty` wrapper) into the driver's framer,
adds each measurement to the reader's averager at the simulated time and hands closed windows
to the agent, as ``SensorReader.run`` does.

:func:`pty_device` builds the other kind: an unmodified agent reading an emulator on a real
pseudo-terminal through pyserial, in real time.
"""

from __future__ import annotations

import math
import random
from collections.abc import Callable
from pathlib import Path
from typing import Any

from luftnett.edge.agent import EdgeAgent, SensorReader
from luftnett.edge.config import EdgeConfig, SensorConfig
from luftnett.edge.framing import Measurement, Rejected
from luftnett.firmware_sim.faults import Faulty
from luftnett.firmware_sim.no2_uart import DgsEmulator
from luftnett.firmware_sim.pms import PmsEmulator
from luftnett.firmware_sim.pty import PtyHost
from luftnett.firmware_sim.sds011 import Sds011Emulator
from luftnett.firmware_sim.sps30 import Sps30Emulator
from luftnett.soak.profile import DeviceSpec

__all__ = ["PacedPms", "SimAgent", "SimDevice", "make_emulator", "pty_device"]

DAY_S = 86_400.0


class SimAgent(EdgeAgent):
    """The edge agent without reader threads: MQTT loop and publisher only."""

    def start(self) -> SimAgent:
        self._client.connect_async(self._target.host, self._target.port, self.cfg.keepalive_s)
        self._client.loop_start()
        self._spawn(self._publish_loop, f"publish-{self.cfg.device_id}")
        return self

    @property
    def connected(self) -> bool:
        return self._connected.is_set()


class PacedPms(PmsEmulator):
    """A PMS emulator whose frames come every ``every_s`` instead of every 2.3 s."""

    def __init__(self, source: Callable[[float], tuple[float, float]], every_s: float) -> None:
        super().__init__(source)
        self.every_s = every_s

    def _interval(self, now: float) -> float:
        return self.every_s


def _diurnal(t: float) -> float:
    """1 ± 0.4 over the day, highest in the late afternoon."""
    return 1.0 + 0.4 * math.sin(2 * math.pi * (t / DAY_S - 0.4))


def make_emulator(model: str, level: float, seed: int, every_s: float | None = None) -> Faulty:
    """An emulator of ``model`` around ``level``, wrapped for fault injection.

    ``every_s``: seconds between the frames of sensors that talk by themselves (SDS011, PMS);
    None keeps their real cadence. Polled sensors (SPS30, DGS-NO2) answer each poll.
    """
    rng = random.Random(seed)

    def pm(t: float) -> tuple[float, float]:
        v = max(0.0, rng.gauss(level * _diurnal(t), 0.15 * level))
        return round(v, 1), round(v * rng.uniform(1.4, 1.8), 1)

    def no2(t: float) -> tuple[float, float, float]:
        temp = 8.0 + 5.0 * _diurnal(t)
        return rng.gauss(level * _diurnal(t), 3.0), temp, 60.0 + rng.gauss(0, 5)

    emu: Any
    if model == "sds011":
        emu = Sds011Emulator(pm, device_id=seed.to_bytes(4, "big")[-2:])
        if every_s is not None:
            emu.interval_s = every_s
    elif model == "pms5003":
        emu = PacedPms(pm, every_s) if every_s is not None else PmsEmulator(pm)
    elif model == "sps30":
        emu = Sps30Emulator(pm, serial=f"{seed:016X}")
    elif model == "dgs-no2":
        emu = DgsEmulator(no2, serial=f"{110816000000 + seed % 1_000_000:012d}")
    else:
        raise ValueError(f"no soak emulator for model {model!r}")
    return Faulty(emu, model, seed=seed)


class SimDevice:
    """One simulated device: emulator -> framer -> averager -> the agent's outbox."""

    def __init__(
        self, spec: DeviceSpec, agent: SimAgent, frame_every_s: float, window_s: float
    ) -> None:
        self.spec = spec
        self.agent = agent
        self.emu = make_emulator(spec.model, spec.level, spec.seed, frame_every_s)
        self.reader: SensorReader = agent.sensors[0]
        self.reader.averager.expected_n = window_s / frame_every_s
        self.framer = self.reader.driver.Framer()
        self.poll_cmd: bytes | None = getattr(self.reader.driver, "POLL_COMMAND", None)
        self.frame_every_s = frame_every_s
        self.rng = random.Random(spec.seed)
        self.averaged = 0  # readings the averager closed: the simulator's own count
        self.max_depth = 0  # deepest outbox seen
        self._next_poll = math.inf

    def begin(self, t: float) -> None:
        """Power on: the driver's start-up commands, as the agent sends them on opening."""
        for cmd in self.reader.driver.INIT_COMMANDS:
            self._feed(self.emu.receive(cmd, t), t)
        self.reader.awake = True
        self._next_poll = t + self.frame_every_s

    def advance(self, t: float) -> None:
        """Everything the sensor sends up to simulated time ``t``, then close due windows."""
        if self.spec.garbage and self.rng.random() < 0.3:
            self.emu.garbage(n=self.rng.randint(8, 40))
        if self.spec.corrupt and self.rng.random() < 0.05:
            self.emu.corrupt(1)
        data = self.emu.poll(t)
        if self.poll_cmd is not None and t >= self._next_poll:
            data += self.emu.receive(self.poll_cmd, t)
            self._next_poll += self.frame_every_s
        if data:
            self._feed(data, t)
        self._store(self.reader.averager.close_due(t + self.spec.clock_offset_s))
        self.max_depth = max(self.max_depth, len(self.agent.outbox))

    def finish(self, t: float) -> None:
        """End of the run: close the open window (its frames are in)."""
        self._store(self.reader.averager.close_due(t + self.spec.clock_offset_s + 1e9))

    def _feed(self, data: bytes, t: float) -> None:
        t_dev = t + self.spec.clock_offset_s
        for item in self.framer.feed(data):
            if isinstance(item, Measurement):
                self.reader.frames += 1
                self._store(self.reader.averager.add(item, t_dev))
            elif isinstance(item, Rejected):
                self.reader.errors[item.category] += 1

    def _store(self, readings: list[dict[str, Any]]) -> None:
        if readings:
            self.averaged += len(readings)
            self.agent._store(self.reader, readings)

    # -- faults ----------------------------------------------------------------------------
    def fill_disk(self) -> None:
        """The outbox's disk is full: the file loses its free pages (VACUUM) and SQLite may
        not grow it by a single page (``SQLITE_FULL``, as on a full card)."""
        box = self.agent.outbox
        with box._lock:
            box._db.execute("VACUUM")
            (pages,) = box._db.execute("PRAGMA page_count").fetchone()
            box._db.execute(f"PRAGMA max_page_count = {int(pages)}")

    def free_disk(self) -> None:
        box = self.agent.outbox
        with box._lock:
            box._db.execute("PRAGMA max_page_count = 1073741823")


def pty_device(
    device_id: str,
    model: str,
    url: str,
    root: str,
    outbox: Path,
    window_s: float,
    seed: int,
) -> tuple[PtyHost, EdgeAgent, Faulty]:
    """An emulator on a real pty and an unmodified agent reading it through pyserial."""
    emu = make_emulator(model, 12.0 if model != "dgs-no2" else 20.0, seed)
    host = PtyHost(emu).start()
    cfg = EdgeConfig(
        device_id=device_id,
        outbox_path=outbox,
        mqtt_url=url,
        sensors=(SensorConfig(model, host.path, window_s=window_s),),
        topic_root=root,
        replay_rate=1000.0,
        clock_check="off",
    )
    return host, EdgeAgent(cfg), emu
