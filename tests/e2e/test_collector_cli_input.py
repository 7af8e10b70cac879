"""Bad input to the staff commands (annotate, rollup, quarantine, ledger, qc restate) on a real
database: refused with one line that says what was wrong, never a traceback, never a silent
"0 done"; and data stored before a check existed still lists."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime

import httpx
import psycopg
import pytest
from click.testing import CliRunner, Result

from luftnett.cli import main
from luftnett.collector import annotations
from luftnett.errors import ConfigError

pytestmark = pytest.mark.e2e

T0 = datetime(2026, 3, 1, 12, 0, tzinfo=UTC)


@pytest.fixture
def device(pg_url: str, device_id: str) -> str:
    """A registered device without readings."""
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO devices (device_id, sensor_model) VALUES (%s, 'sds011')", (device_id,)
        )
    return device_id


def cli(pg_url: str, *args: str, tz: str = "Europe/Oslo") -> Result:
    # the session in Oslo time (PGTZ), as on a server set up in Norway
    return CliRunner().invoke(main, list(args), env={"LUFTNETT_DATABASE_URL": pg_url, "PGTZ": tz})


def one_line_error(res: Result, code: int, *words: str) -> None:
    assert res.exit_code == code, res.output
    assert res.exception is None or isinstance(res.exception, SystemExit), res.exc_info
    assert "Traceback" not in res.output
    for w in words:
        assert w in res.output, res.output


def add_args(device: str, start: str, end: str, *more: str) -> list[str]:
    return ["annotate", "add", "--device", device, "--start", start, "--end", end,
            "--kind", "fog", "--reason", "x", "--by", "kari", *more]  # fmt: skip


# 1 (a): a period outside 1970..2100 is refused, by the library, the CLI and the API alike


def test_an_annotation_period_out_of_range_is_refused(pg_url: str, device: str) -> None:
    far, early = datetime(9999, 12, 31, 23, tzinfo=UTC), datetime(1900, 1, 1, tzinfo=UTC)
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(ConfigError, match="end 9999-12-31T23:00:00\\+00:00 is out of range"):
            annotations.add(conn, device, T0, far, "fog", "x", by="kari")
        with pytest.raises(ConfigError, match="start 1900-01-01T00:00:00\\+00:00 is out of"):
            annotations.add_many(conn, [device], early, T0, "fog", "x", by="kari")
        with pytest.raises(ConfigError, match="between 1970-01-01 and 2100-01-01"):
            annotations.add(conn, device, T0, datetime(2100, 1, 1, tzinfo=UTC), "fog", "x", "k")
        # the bounds themselves: 1970-01-01 is in, 2100-01-01 is out (exclusive)
        ok = annotations.add(conn, device, datetime(1970, 1, 1, tzinfo=UTC), T0, "fog", "x", "k")
        assert ok.device_id == device
    res = cli(pg_url, *add_args(device, "1900-01-01T00:00Z", "9999-12-31T23:00Z"))
    one_line_error(res, 1, "start 1900-01-01T00:00:00+00:00 is out of range", "1970-01-01")
    with psycopg.connect(pg_url) as conn:
        n = conn.execute("SELECT count(*) FROM annotations WHERE device_id = %s", (device,))
        assert n.fetchone() == (1,)  # only the in-range one above


def test_the_api_refuses_an_annotation_period_out_of_range(
    api_url: str, pg_url: str, device: str
) -> None:
    from luftnett.settings import DEMO_API_KEY

    body = {"starts_at": "1900-01-01T00:00:00Z", "ends_at": "9999-12-31T23:00:00Z",
            "kind": "fog", "reason": "x", "by": "kari"}  # fmt: skip
    with httpx.Client(base_url=api_url, timeout=60) as c:
        for who in ({"device_id": device}, {"device_ids": [device]}):
            r = c.post("/api/v1/annotations", json={**body, **who},
                       headers={"X-API-Key": DEMO_API_KEY})  # fmt: skip
            assert r.status_code == 422, r.text
            assert "between 1970 and 2100" in r.text
        listed = c.get("/api/v1/annotations", params={"device": device})
        assert listed.status_code == 200 and listed.json()["count"] == 0


# 1 (b): rows stored out of range before the check (or with psql) still list


@pytest.mark.parametrize("tz", ["Europe/Oslo", "UTC"])
def test_annotate_list_shows_a_period_stored_out_of_range(
    pg_url: str, device: str, tz: str
) -> None:
    with psycopg.connect(pg_url) as conn:
        conn.execute(
            "INSERT INTO annotations (device_id, starts_at, ends_at, kind, reason, created_by) "
            "VALUES (%s, '1900-01-01T00:00Z', '9999-12-31T23:00Z', 'fog', 'x', 'kari')",
            (device,),
        )
    for extra in ([], ["--active"], ["--audit"]):
        res = cli(pg_url, "annotate", "list", "--device", device, *extra, tz=tz)
        assert res.exit_code == 0, (res.output, res.exc_info)
        # in UTC alone where Oslo time would pass year 9999
        assert "-> 9999-12-31 23:00:00Z fog note by kari: x [active]" in res.output
        assert "dev" in res.output and " 1900-01-01 00:00:00Z (" in res.output  # and Oslo's
    res = cli(pg_url, "annotate", "list", "--device", device, "--json", "--audit", tz=tz)
    assert res.exit_code == 0, (res.output, res.exc_info)
    doc = json.loads(res.output)
    assert (doc["ends_at"], doc["ends_at_local"]) == ("9999-12-31T23:00:00+00:00", None)
    assert doc["starts_at"] == "1900-01-01T00:00:00+00:00"
    assert doc["audit"][0]["action"] == "insert"


# 2: an unknown device is an error, as in `ledger` and `qc restate`


def test_rollup_refuses_an_unknown_device(pg_url: str, device: str) -> None:
    nosuch = f"nosuch-{uuid.uuid4().hex[:8]}"
    for args in (["rollup", "refresh", "--device", nosuch], ["rollup", "show", "--device", nosuch],
                 ["rollup", "show", "--device", nosuch, "--json"]):  # fmt: skip
        one_line_error(cli(pg_url, *args), 1, f"no device {nosuch!r}", "devices health --all")
    res = cli(pg_url, "rollup", "refresh", "--device", device)
    assert res.exit_code == 0 and "refreshed 1 devices" in res.output, res.output
    res = cli(pg_url, "rollup", "show", "--device", device)
    assert res.exit_code == 0 and "no rollup days" in res.output, res.output


# 3: quarantine replay of nothing that exists says so


def test_quarantine_replay_names_an_unknown_id_or_reason(pg_url: str) -> None:
    reason = f"r{uuid.uuid4().hex[:8]}"
    with psycopg.connect(pg_url) as conn:
        row = conn.execute(
            "INSERT INTO quarantine (source, topic, payload, reason, detail) "
            "VALUES ('test', 'nowhere', '{nope', %s, 'broken') RETURNING quarantine_id",
            (reason,),
        ).fetchone()
        assert row is not None
        (qid,) = row
        (top,) = conn.execute("SELECT max(quarantine_id) FROM quarantine").fetchone() or (0,)
    missing = str(top + 1000)
    res = cli(pg_url, "quarantine", "replay", "--id", missing)
    one_line_error(res, 1, f"no quarantined payload has id {missing}", "quarantine list --all")
    res = cli(pg_url, "quarantine", "replay", "--id", str(qid), "--id", missing)
    one_line_error(res, 1, f"has id {missing};")
    res = cli(pg_url, "quarantine", "replay", "--reason", "nosuchreason")
    one_line_error(res, 1, "no quarantined payload has reason 'nosuchreason'",
                   f"{reason} (1 pending)")  # fmt: skip
    for both in (["--id", str(qid), "--all"], ["--reason", reason, "--all"]):
        res = cli(pg_url, "quarantine", "replay", *both)
        one_line_error(res, 2, "exclude each other")
    # a known id or reason still replays (here: still rejected, the topic is no device's)
    res = cli(pg_url, "quarantine", "replay", "--reason", reason, "--dry-run")
    assert res.exit_code == 0, res.output
    assert "1 still rejected" in res.output and f"#{qid}: bad_topic" in res.output


# 4 and 5: annotate add's device choice and empty reason


def test_annotate_add_says_what_is_wrong(pg_url: str, device: str) -> None:
    period = ["--start", "2026-03-01T12:00Z", "--end", "2026-03-01T13:00Z", "--kind", "fog"]
    res = cli(pg_url, "annotate", "add", "--device", device, "--all-devices", *period,
              "--reason", "x")  # fmt: skip
    one_line_error(res, 2, "--device and --all-devices exclude each other")
    res = cli(pg_url, "annotate", "add", *period, "--reason", "x")
    one_line_error(res, 2, "name the devices")
    res = cli(pg_url, "annotate", "add", "--device", device, *period, "--reason", "",
              "--by", "kari")  # fmt: skip
    one_line_error(res, 1, "needs a reason")
    assert "--by" not in res.output
    res = cli(pg_url, "annotate", "add", "--device", device, *period, "--reason", "x",
              "--by", " ")  # fmt: skip
    one_line_error(res, 1, "--by")


# 5: a day that does not exist, reversed ranges, the right pointer


def test_a_day_that_does_not_exist(pg_url: str, device: str) -> None:
    res = cli(pg_url, "ledger", "--day", "2026-02-30")
    one_line_error(res, 2, "'2026-02-30' is no day of the calendar")
    assert "does not match the format" not in res.output
    res = cli(pg_url, "ledger", "--day", "30.02.2026")
    one_line_error(res, 2, "'30.02.2026' is not a day in the form YYYY-MM-DD")
    res = cli(pg_url, "rollup", "show", "--device", device, "--since", "2026-02-29")
    one_line_error(res, 2, "'2026-02-29' is no day of the calendar")
    res = cli(pg_url, "ledger", "--device", device, "--day", "2024-02-29")
    assert res.exit_code == 0, res.output  # a leap day exists


def test_reversed_ranges_are_usage_errors(pg_url: str, device: str) -> None:
    res = cli(pg_url, "rollup", "show", "--device", device,
              "--since", "2026-03-02", "--until", "2026-03-01")  # fmt: skip
    one_line_error(res, 2, "--since (2026-03-02) is after --until (2026-03-01)")
    res = cli(pg_url, "rollup", "show", "--device", device,
              "--since", "2026-03-01", "--until", "2026-03-01")  # fmt: skip
    assert res.exit_code == 0, res.output  # one day
    late, early = "2026-03-02T00:00Z", "2026-03-01T00:00Z"
    for cmd in (["rollup", "refresh"], ["qc", "restate"]):
        res = cli(pg_url, *cmd, "--device", device, "--since", late, "--until", early)
        one_line_error(res, 2, "--since (2026-03-02T00:00:00+00:00) must be before --until")
        res = cli(pg_url, *cmd, "--device", device, "--since", early, "--until", late)
        assert res.exit_code == 0, res.output


def test_qc_restate_points_at_the_command_that_lists_devices(pg_url: str, device: str) -> None:
    res = cli(pg_url, "qc", "restate", "--device", "nosuch-device")
    one_line_error(res, 1, "no device 'nosuch-device'", "`luftnett devices health --all`")
    listed = cli(pg_url, "devices", "health", "--all")
    assert listed.exit_code == 0 and device in listed.output, listed.output
