"""Annotations on a real database: they invalidate readings without touching them, revoking
restores them, rollups follow at once and equal a recomputation, and every change is audited."""

from __future__ import annotations

import json
from datetime import UTC, datetime, timedelta
from typing import Any

import psycopg
import pytest
from click.testing import CliRunner

from luftnett.cli import main
from luftnett.collector import annotations
from luftnett.collector.rollups import refresh
from luftnett.collector.validate import Accepted, validate_message
from luftnett.collector.writer import Writer
from luftnett.contracts import mqtt as contract
from luftnett.contracts.units import ReadingFlag
from luftnett.errors import ConfigError, StorageError

pytestmark = pytest.mark.e2e

T0 = datetime(2025, 12, 31, 22, 0, tzinfo=UTC)  # 23:00 in Oslo, New Year's Eve
MINUTE = timedelta(minutes=1)


def message(device_id: str, seqs: range) -> Accepted:
    payload = contract.encode(
        contract.ReadingsPayload(
            device_id=device_id,
            agent_version="test",
            sensor=contract.SensorInfo(model="sds011"),
            readings=[
                contract.Reading(
                    seq=s,
                    ts=T0 + (s + 1) * MINUTE,
                    window_s=60,
                    n_samples=60,
                    values={"pm25_ugm3": 10.0 + s % 7, "pm10_ugm3": 20.0 + s % 5},
                )
                for s in seqs
            ],
        )
    )
    item = validate_message("t", contract.readings_topic("t", device_id), payload)
    assert isinstance(item, Accepted)
    return item


def hour(conn: psycopg.Connection[Any], device_id: str) -> tuple[Any, ...]:
    row = conn.execute(
        "SELECT n_stored, n_valid, pm25_ugm3_n FROM rollup_hourly "
        "WHERE device_id = %s AND hour_start = %s",
        (device_id, T0),
    ).fetchone()
    assert row is not None
    return tuple(row)


def raw(conn: psycopg.Connection[Any], device_id: str) -> list[Any]:
    return conn.execute(
        "SELECT seq, pm25_ugm3, flags FROM readings WHERE device_id = %s ORDER BY seq",
        (device_id,),
    ).fetchall()


def test_invalidate_and_restore_with_audit(pg_url: str, device_id: str) -> None:
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        w.write([message(device_id, range(0, 40))])  # 22:01 - 22:40 UTC
        before = raw(conn, device_id)
        assert hour(conn, device_id) == (40, 40, 40)

        # fireworks 22:20-22:50 UTC: readings ending 22:20 ... 22:49 (seqs 19-48) are out
        fw = annotations.add(
            conn,
            device_id,
            T0 + 20 * MINUTE,
            T0 + 50 * MINUTE,
            "fireworks",
            "New Year rockets next to the box",
            by="kari",
            invalidates=True,
        )
        assert hour(conn, device_id) == (40, 19, 19)  # 21 of the 40 stored are covered
        note = annotations.add(
            conn, device_id, T0, T0 + 60 * MINUTE, "fog", "fog over the fjord", by="ola"
        )
        assert not note.invalidates
        assert hour(conn, device_id) == (40, 19, 19)

        # readings arriving after the annotation are covered too (late data)
        w.write([message(device_id, range(40, 59))])  # up to 22:59
        assert hour(conn, device_id) == (59, 29, 29)
        assert refresh(conn, device_id).hours >= 1
        conn.commit()
        assert hour(conn, device_id) == (59, 29, 29)

        eff = conn.execute(
            "SELECT count(*) FROM readings_effective WHERE device_id = %s "
            "AND effective_flags & %s <> 0",
            (device_id, int(ReadingFlag.ANNOTATED_INVALID)),
        ).fetchone()
        assert eff == (30,)
        # raw values and stored flags are untouched
        assert raw(conn, device_id)[:40] == before
        assert all(r[2] & ReadingFlag.ANNOTATED_INVALID == 0 for r in raw(conn, device_id))

        annotations.revoke(conn, fw.annotation_id, by="per", reason="rockets were next door")
        assert hour(conn, device_id) == (59, 59, 59)
        with pytest.raises(StorageError, match="already revoked"):
            annotations.revoke(conn, fw.annotation_id, by="per", reason="again")

        trail = annotations.audit(conn, fw.annotation_id)
        assert [(t["action"], t["changed_by"]) for t in trail] == [
            ("insert", "kari"),
            ("update", "per"),
        ]
        assert trail[1]["old_row"]["revoked_at"] is None
        assert trail[1]["new_row"]["revoke_reason"] == "rockets were next door"
        listed = annotations.list_annotations(conn, device_id)
        assert [(a.kind, a.active) for a in listed] == [("fog", True), ("fireworks", False)]
        assert [a.kind for a in annotations.list_annotations(conn, device_id, True)] == ["fog"]

        # a change made with plain SQL is audited as well, with the database user
        conn.execute("DELETE FROM annotations WHERE annotation_id = %s", (note.annotation_id,))
        conn.commit()
        last = annotations.audit(conn, note.annotation_id)[-1]
        assert last["action"] == "delete"
        assert last["changed_by"]


def test_bad_annotations_are_refused(pg_url: str, device_id: str) -> None:
    with psycopg.connect(pg_url) as conn:
        with pytest.raises(StorageError, match="no device"):
            annotations.add(conn, device_id, T0, T0 + MINUTE, "other", "x", by="kari")
        with pytest.raises(ConfigError, match="not after start"):
            annotations.add(conn, device_id, T0, T0, "other", "x", by="kari")
        with pytest.raises(ConfigError, match="kind"):
            annotations.add(conn, device_id, T0, T0 + MINUTE, "party", "x", by="kari")
        with pytest.raises(ConfigError, match="time zone"):
            annotations.add(
                conn, device_id, T0.replace(tzinfo=None), T0 + MINUTE, "fog", "x", by="k"
            )


def test_annotate_cli(pg_url: str, device_id: str) -> None:
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([message(device_id, range(0, 59))])  # 22:01-22:59 UTC
    # the session in Oslo time (PGTZ), as on a server set up in Norway: output still says UTC
    env = {"LUFTNETT_DATABASE_URL": pg_url, "PGTZ": "Europe/Oslo"}
    run = CliRunner().invoke
    res = run(
        main,
        [
            "annotate", "add", "--device", device_id,
            "--start", "2025-12-31T23:30:00+01:00", "--end", "2026-01-01T00:00:00+01:00",
            "--kind", "maintenance", "--reason", "filter swap", "--by", "kari", "--invalidate",
        ],
        env=env,
    )  # fmt: skip
    assert res.exit_code == 0, res.output
    assert "invalidates its readings: 30 leave the statistics" in res.output  # 22:30-22:59
    ann_id = int(res.output.split()[1])
    with psycopg.connect(pg_url) as conn:
        assert hour(conn, device_id) == (59, 29, 29)  # 22:30-22:59 UTC are out
    res = run(main, ["annotate", "list", "--device", device_id, "--json", "--audit"], env=env)
    assert res.exit_code == 0, res.output
    doc = json.loads(res.output)
    assert (doc["annotation_id"], doc["created_by"], doc["invalidates"]) == (ann_id, "kari", True)
    assert [a["action"] for a in doc["audit"]] == ["insert"]
    assert doc["starts_at"] == "2025-12-31T22:30:00+00:00"
    assert doc["starts_at_local"] == "2025-12-31T23:30:00+01:00"
    assert (doc["revoked_at"], doc["revoked_at_local"]) == (None, None)
    res = run(main, ["annotate", "list", "--device", device_id], env=env)
    # in UTC and Oslo time; the local date is written where it differs from the UTC one
    start, end = (
        "2025-12-31 22:30:00Z (23:30:00 Oslo)",
        "2025-12-31 23:00:00Z (2026-01-01 00:00:00 Oslo)",
    )
    assert f"{start} -> {end}" in res.output
    res = run(
        main, ["annotate", "revoke", str(ann_id), "--reason", "wrong box", "--by", "ola"], env=env
    )
    assert res.exit_code == 0, res.output
    with psycopg.connect(pg_url) as conn:
        assert hour(conn, device_id) == (59, 59, 59)
    res = run(main, ["annotate", "list", "--device", device_id, "--audit"], env=env)
    assert "revoked" in res.output and "update by ola" in res.output
    naive = ["--start", "2025-12-31T23:00", "--end", "2026-01-01T00:00Z"]
    res = run(
        main,
        ["annotate", "add", "--device", device_id, *naive, "--kind", "fog", "--reason", "x"],
        env=env,
    )
    assert res.exit_code == 2
    assert "no time zone" in res.output


def test_staff_annotate_and_revoke_through_the_api(
    api_url: str, pg_url: str, device_id: str
) -> None:
    """The dashboard's path: POST an invalidating annotation, the hourly rollup and the API's
    hourly series leave the period out at once; the list hides who made it unless asked with a
    key; revoking restores the hour; bad requests get 4xx saying why."""
    import httpx

    from luftnett.settings import DEMO_API_KEY

    key = {"X-API-Key": DEMO_API_KEY}
    with psycopg.connect(pg_url) as conn:
        Writer(conn).write([message(device_id, range(0, 59))])  # 22:01-22:59 UTC
        assert hour(conn, device_id) == (59, 59, 59)
    body = {
        "device_id": device_id,
        "starts_at": "2025-12-31T23:30:00+01:00",  # 22:30 UTC
        "ends_at": "2026-01-01T00:00:00+01:00",
        "kind": "roadworks",
        "reason": "asphalt laid beside the box",
        "by": "kari",
        "invalidates": True,
    }
    series = {"quantity": "pm25_ugm3", "start": "2025-12-31", "end": "2025-12-31",
              "day_convention": "utc+01"}  # fmt: skip
    with httpx.Client(base_url=api_url, timeout=60) as c:
        assert c.post("/api/v1/annotations", json=body).status_code == 401
        r = c.post("/api/v1/annotations", json=body, headers=key)
        assert r.status_code == 201, r.text
        a = r.json()
        ann_id = a["annotation_id"]
        assert (a["device_id"], a["kind"], a["invalidates"], a["active"]) == (
            device_id, "roadworks", True, True
        )  # fmt: skip
        assert a["starts_at"] == "2025-12-31T22:30:00+00:00"
        assert a["starts_at_local"] == "2025-12-31T23:30:00+01:00"
        assert a["created_by"] == "kari"
        assert a["readings"] == 30  # ts 22:30-22:59 UTC: what leaves the statistics
        with psycopg.connect(pg_url) as conn:
            assert hour(conn, device_id) == (59, 29, 29)  # 22:30-22:59 UTC are out, at once
        agg = c.get(f"/api/v1/devices/{device_id}/aggregates/hourly", params=series).json()
        assert agg["computed_from"] == "rollup_hourly"
        row = next(x for x in agg["rows"] if x["period"] == "2025-12-31T22:00:00+00:00")
        assert row["readings_valid"] == 29

        listed = c.get("/api/v1/annotations", params={"device": device_id}).json()
        assert listed["count"] == 1
        public = listed["annotations"][0]
        assert public["reason"] == "asphalt laid beside the box"
        assert "created_by" not in public and "revoked_by" not in public  # personal data
        staff = c.get("/api/v1/annotations", params={"device": device_id}, headers=key).json()
        assert staff["annotations"][0]["created_by"] == "kari"
        wrong = c.get("/api/v1/annotations", headers={"X-API-Key": "not-a-key"})
        assert wrong.status_code == 403
        overlap = {"device": device_id, "start": "2025-12-31T22:59:00Z"}
        assert c.get("/api/v1/annotations", params=overlap).json()["count"] == 1
        after = {"device": device_id, "start": "2025-12-31T23:00:00Z"}
        assert c.get("/api/v1/annotations", params=after).json()["count"] == 0

        revoke = {"reason": "the works were across the street", "by": "ola"}
        assert c.post(f"/api/v1/annotations/{ann_id}/revoke", json=revoke).status_code == 401
        r = c.post(f"/api/v1/annotations/{ann_id}/revoke", json=revoke, headers=key)
        assert r.status_code == 200, r.text
        assert (r.json()["active"], r.json()["revoked_by"]) == (False, "ola")
        with psycopg.connect(pg_url) as conn:
            assert hour(conn, device_id) == (59, 59, 59)
        again = c.post(f"/api/v1/annotations/{ann_id}/revoke", json=revoke, headers=key)
        assert again.status_code == 409 and "already revoked" in again.text
        one = c.get(f"/api/v1/annotations/{ann_id}", headers=key).json()
        assert [(t["action"], t["changed_by"]) for t in one["audit"]] == [
            ("insert", "kari"),
            ("update", "ola"),
        ]
        assert "audit" not in c.get(f"/api/v1/annotations/{ann_id}").json()
        active = c.get("/api/v1/annotations", params={"device": device_id, "active": True})
        assert active.json()["count"] == 0

        bad = [
            ({**body, "starts_at": "2025-12-31T23:30:00"}, 422, "timezone"),
            ({**body, "ends_at": body["starts_at"]}, 422, "must be after starts_at"),
            ({**body, "kind": "party"}, 422, "unknown kind"),
            ({**body, "reason": "   "}, 422, "reason must not be blank"),
            ({**body, "device_id": "no-such-box"}, 404, "no device"),
        ]
        for doc, status, words in bad:
            r = c.post("/api/v1/annotations", json=doc, headers=key)
            assert r.status_code == status and words in r.text, (doc, r.status_code, r.text)
        r = c.post("/api/v1/annotations/999999999/revoke", json=revoke, headers=key)
        assert r.status_code == 404
    with psycopg.connect(pg_url) as conn:  # nothing of the refused requests was stored
        n = conn.execute(
            "SELECT count(*) FROM annotations WHERE device_id = %s", (device_id,)
        ).fetchone()
        assert n == (1,)


def test_one_period_for_several_devices(
    api_url: str, pg_url: str, fresh_db_url: str, device_id: str
) -> None:
    """New Year's fireworks over the whole town: one annotation per device, all or none, from
    the API (`device_ids`) and the CLI (`--device` repeated, `--all-devices`)."""
    import httpx

    from luftnett.db.migrate import apply_migrations
    from luftnett.settings import DEMO_API_KEY

    other = f"{device_id}-b"
    with psycopg.connect(pg_url) as conn:
        w = Writer(conn)
        w.write([message(device_id, range(0, 59))])
        w.write([message(other, range(0, 59))])
    body = {
        "device_ids": [device_id, other],
        "starts_at": "2025-12-31T23:30:00+01:00",
        "ends_at": "2026-01-01T00:00:00+01:00",
        "kind": "fireworks",
        "reason": "New Year",
        "by": "kari",
        "invalidates": True,
    }
    key = {"X-API-Key": DEMO_API_KEY}
    with httpx.Client(base_url=api_url, timeout=60) as c:
        r = c.post("/api/v1/annotations", json={**body, "device_ids": [device_id, "nope-box"]},
                   headers=key)  # fmt: skip
        assert r.status_code == 404 and "'nope-box'" in r.text
        both = c.post("/api/v1/annotations", json={**body, "device_id": device_id}, headers=key)
        assert both.status_code == 422 and "not both" in both.text
        r = c.post("/api/v1/annotations", json=body, headers=key)
        assert r.status_code == 201, r.text
        got = r.json()
        assert got["count"] == 2
        assert sorted(a["device_id"] for a in got["annotations"]) == sorted([device_id, other])
    with psycopg.connect(pg_url) as conn:
        assert hour(conn, device_id) == (59, 29, 29) and hour(conn, other) == (59, 29, 29)
        n = conn.execute(
            "SELECT count(*) FROM annotations WHERE device_id = ANY(%s)", ([device_id, other],)
        ).fetchone()
        assert n == (2,)  # the refused requests stored nothing

    # the CLI: all or none, and every device of a database of its own
    env = {"LUFTNETT_DATABASE_URL": fresh_db_url}
    with psycopg.connect(fresh_db_url) as conn:
        apply_migrations(conn)
        conn.commit()
    res = CliRunner().invoke(main, ["annotate", "add", "--all-devices", "--start",
                                    "2025-12-31T23:30:00+01:00", "--end", "2026-01-01T00:00:00Z",
                                    "--kind", "fog", "--reason", "x"], env=env)  # fmt: skip
    assert res.exit_code == 1 and "no devices are registered yet" in res.output
    with psycopg.connect(fresh_db_url) as conn:
        w = Writer(conn)
        for d in ("town-a", "town-b", "town-c"):
            w.write([message(d, range(0, 59))])
    period = ["--start", "2025-12-31T23:30:00+01:00", "--end", "2026-01-01T00:00:00+01:00",
              "--kind", "fireworks", "--reason", "New Year", "--by", "ola",
              "--invalidate"]  # fmt: skip
    run = CliRunner().invoke
    res = run(main, ["annotate", "add", *period], env=env)
    assert res.exit_code == 2 and "--device ID (repeatable) or --all-devices" in res.output
    res = run(main, ["annotate", "add", "--device", "town-a", "--device", "nope-box", *period],
              env=env)  # fmt: skip
    assert res.exit_code == 1 and "no device 'nope-box'" in res.output
    res = run(main, ["annotate", "add", "--all-devices", *period], env=env)
    assert res.exit_code == 0, res.output
    assert [x.split()[4] for x in res.output.splitlines()] == ["town-a", "town-b", "town-c"]
    with psycopg.connect(fresh_db_url) as conn:
        assert [hour(conn, d) for d in ("town-a", "town-b", "town-c")] == [(59, 29, 29)] * 3
        assert conn.execute("SELECT count(*) FROM annotations").fetchone() == (3,)
