"""Every command has help with an example, and the generated docs are current."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from luftnett import docgen
from luftnett.cli import main

REPO = Path(__file__).resolve().parents[2]
COMMANDS = docgen.commands()


@pytest.mark.parametrize(("path", "cmd"), COMMANDS, ids=[" ".join(p) for p, _ in COMMANDS])
def test_every_command_explains_itself(path: list[str], cmd: object) -> None:
    res = CliRunner().invoke(main, [*path[1:], "--help"])
    assert res.exit_code == 0, res.output
    assert "Usage:" in res.output
    import click

    assert isinstance(cmd, click.Command)
    assert cmd.help, f"{' '.join(path)} has no help text"
    if not isinstance(cmd, click.Group):
        assert "Example" in cmd.help, f"{' '.join(path)} --help shows no example"


def test_generated_docs_are_current() -> None:
    res = subprocess.run(
        [sys.executable, "-m", "luftnett.docgen", "--check", "--root", str(REPO)],
        capture_output=True,
        text=True,
    )
    assert res.returncode == 0, res.stderr


def test_help_does_not_import_heavy_modules() -> None:
    code = (
        "import sys; from click.testing import CliRunner; from luftnett.cli import main; "
        "CliRunner().invoke(main, ['--help']); "
        "print(sorted(m for m in ('numpy', 'psycopg', 'fastapi', 'scipy') if m in sys.modules))"
    )
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "[]"


def test_unknown_command_is_a_usage_error() -> None:
    res = CliRunner().invoke(main, ["frobnicate"])
    assert res.exit_code == 2


def test_wait_forever_ticks_until_interrupted() -> None:
    """The collector's scheduled garbage collection rides on this tick."""
    import time

    from luftnett.cli import wait_forever

    calls: list[float] = []

    def tick() -> None:
        calls.append(time.monotonic())
        if len(calls) == 3:
            raise KeyboardInterrupt  # as Ctrl-C or SIGTERM during a tick

    t0 = time.monotonic()
    wait_forever("test", every_s=0.05, tick=tick)  # returns: the caller's clean-up runs
    assert len(calls) == 3
    assert calls[0] - t0 >= 0.05 and calls[2] - calls[0] >= 0.1
