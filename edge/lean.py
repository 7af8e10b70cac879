"""The agent's own process: only what the loop needs, so a field box keeps its memory.

``luftnett edge run`` loads and validates the config with the full :class:`Settings`
(pydantic-settings, TOML, environment), then replaces itself (``os.execv``, same PID, so
systemd and signals see one process) with ``python -m luftnett.edge.lean --config-fd N``. The
config travels as JSON through an inherited pipe, never on disk or in ``argv`` where the
password would show. This process imports the agent (paho, pyserial, sqlite3, ssl, and the
pydantic payload contract) but not the settings, click or the servers: 38.3 instead of 42.5 MB
resident with four sensors, measured side by side (docs/benchmarks.md, "Edge agent").

SIGTERM and Ctrl-C stop it gracefully, as in the CLI: reading stops, the backlog gets 2 s to
drain, the retained status says offline; exit 0.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import json
import logging
import os
import sys
import time
from pathlib import Path
from typing import Any

from luftnett.edge.config import EdgeConfig, SensorConfig
from luftnett.errors import LuftnettError
from luftnett.signals import sigterm_as_interrupt

__all__ = ["config_from_json", "config_to_json", "exec_agent", "main"]

log = logging.getLogger(__name__)


def config_to_json(cfg: EdgeConfig, log_level: str) -> bytes:
    """The agent's config (password included) and the log level, as JSON."""
    doc = dataclasses.asdict(cfg)
    for key in ("outbox_path", "tls_ca_file"):
        if doc[key] is not None:
            doc[key] = str(doc[key])
    return json.dumps({"config": doc, "log_level": log_level}).encode()


def config_from_json(data: bytes) -> tuple[EdgeConfig, str]:
    """Inverse of :func:`config_to_json`."""
    doc: dict[str, Any] = json.loads(data)
    c = dict(doc["config"])
    c["sensors"] = tuple(SensorConfig(**s) for s in c["sensors"])
    c["outbox_path"] = Path(c["outbox_path"])
    if c["tls_ca_file"] is not None:
        c["tls_ca_file"] = Path(c["tls_ca_file"])
    return EdgeConfig(**c), str(doc["log_level"])


def exec_agent(cfg: EdgeConfig, log_level: str) -> None:
    """Replace this process with the lean agent process; never returns (OSError if exec fails)."""
    data = config_to_json(cfg, log_level)
    r, w = os.pipe()
    try:
        if len(data) > 60_000:  # a pipe holds 64 kB; the config is a few hundred bytes
            raise ValueError(f"edge config too large to hand over ({len(data)} bytes)")
        os.write(w, data)
    finally:
        os.close(w)
    os.set_inheritable(r, True)
    for stream in (sys.stdout, sys.stderr):
        with contextlib.suppress(OSError, ValueError):
            stream.flush()
    argv = [sys.executable, "-m", "luftnett.edge.lean", "--config-fd", str(r)]
    try:
        os.execv(sys.executable, argv)
    finally:  # only reached when exec failed
        os.close(r)


def _read_fd(fd: int) -> bytes:
    chunks = []
    with os.fdopen(fd, "rb") as f:
        while chunk := f.read(65536):
            chunks.append(chunk)
    return b"".join(chunks)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        prog="python -m luftnett.edge.lean",
        description="The edge agent's own process; started by `luftnett edge run`, not by hand.",
    )
    parser.add_argument("--config-fd", type=int, required=True, help="fd of the JSON config")
    args = parser.parse_args(argv)
    from luftnett import log as logsetup

    cfg, level = config_from_json(_read_fd(args.config_fd))
    logsetup.setup(level)
    from luftnett.edge.agent import EdgeAgent

    with sigterm_as_interrupt():  # systemd's stop runs the same clean-up as Ctrl-C
        try:
            agent = EdgeAgent(cfg).start()
        except LuftnettError as exc:
            sys.stderr.write(f"error: {exc}\n")
            return 1
        ports = ", ".join(f"{x.name}@{x.port}" for x in cfg.sensor_list())
        sys.stderr.write(f"edge agent {cfg.device_id} ({ports}) running; Ctrl-C stops\n")
        sys.stderr.flush()
        try:
            with contextlib.suppress(KeyboardInterrupt):
                while True:
                    time.sleep(3600)
        finally:
            agent.stop()
    return 0


if __name__ == "__main__":
    sys.exit(main())
