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


@pytest.mark.parametrize(
    "args",
    [["db", "status"], ["annotate", "list"], ["ledger"], ["quarantine", "list"], ["qc", "restate"]],
)
def test_a_database_that_cannot_be_reached_is_one_line_not_a_traceback(args: list[str]) -> None:
    """Port 1 on loopback: nothing listens there. Each command says so in one line, exit 1."""
    env = {"LUFTNETT_DATABASE_URL": "postgresql://postgres@127.0.0.1:1/luftnett"}
    res = CliRunner().invoke(main, args, env=env)
    assert res.exit_code == 1, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exception
    assert "error: cannot reach the database (connection failed" in res.output
    assert "LUFTNETT_DATABASE_URL" in res.output
    assert "Traceback" not in res.output


def test_a_statement_the_database_refused_is_its_own_words() -> None:
    import psycopg
    from psycopg import errors

    from luftnett.cli import database_error

    refused = errors.CheckViolation('new row violates check constraint "lat_check"')
    assert database_error(refused) == (
        'the database refused the command: new row violates check constraint "lat_check"'
    )
    assert "cannot reach" in (database_error(psycopg.OperationalError("connection failed")) or "")
    assert database_error(ValueError("not ours")) is None


def test_log_level_is_checked() -> None:
    res = CliRunner().invoke(main, ["--log-level", "LOUD", "db", "status"])
    assert res.exit_code == 2
    assert "'LOUD' is not one of" in res.output
    res = CliRunner().invoke(main, ["db", "status"], env={"LUFTNETT_LOG_LEVEL": "loud"})
    assert res.exit_code == 1
    assert "log_level" in res.output and "'DEBUG', 'INFO', 'WARNING' or 'ERROR'" in res.output
