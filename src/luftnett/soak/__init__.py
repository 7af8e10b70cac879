"""The fault-injection soak: the whole system under a week of simulated faults, with figures.

``luftnett soak --profile short|long`` (:mod:`luftnett.soak.cli`) runs it; docs/reliability.md
describes the scenario and keeps the figures. Modules:

- :mod:`~luftnett.soak.profile`: fleet, roles and the fault schedule;
- :mod:`~luftnett.soak.devices`: simulated-clock devices built from the edge's own parts;
- :mod:`~luftnett.soak.services`: servers, the collector and an edge agent as processes;
- :mod:`~luftnett.soak.traffic`: duplicates, reordering and malformed payloads;
- :mod:`~luftnett.soak.schedule`: the scheduled faults as actions;
- :mod:`~luftnett.soak.runner`: the clock, the drain;
- :mod:`~luftnett.soak.accounting` and :mod:`~luftnett.soak.report`: the figures.
"""

from __future__ import annotations

# nothing imported here: `luftnett --help` imports luftnett.soak.cli, which must stay light
__all__: list[str] = []
