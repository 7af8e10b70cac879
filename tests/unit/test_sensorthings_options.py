"""SensorThings query options and $filter translation, without a server.

What reaches PostgreSQL: identifiers from the entity tables, every literal a typed parameter.
"""

from __future__ import annotations

import contextlib
import datetime as dt

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from luftnett.api.sensorthings.entities import ENTITIES
from luftnett.api.sensorthings.filters import to_sql
from luftnett.api.sensorthings.model import (
    Ctx,
    Params,
    Stream,
    parse_datastream_id,
    parse_observation_id,
)
from luftnett.api.sensorthings.options import OptionError, parse_filter, parse_options


def sql_of(text: str, entity: str = "Observations") -> tuple[str, dict[str, object]]:
    p = Params()
    q = to_sql(parse_filter(text), ENTITIES[entity], "e", Ctx(cal_on=True), p)
    # rendered without a connection: names quoted, placeholders kept
    return q.as_string(None), p.values  # type: ignore[arg-type]


def test_values_become_typed_parameters() -> None:
    text, params = sql_of("phenomenonTime ge 2026-01-01T00:00:00Z and result gt 25")
    assert (
        text
        == '(("e"."phenomenon_time" >= %(p0)s::timestamptz) AND ("e"."result" > %(p1)s::float8))'
    )
    assert params == {"p0": dt.datetime(2026, 1, 1, tzinfo=dt.UTC), "p1": 25.0}


def test_a_quote_in_a_string_stays_in_the_parameter() -> None:
    text, params = sql_of("name eq 'x'' OR 1=1 --'", "Things")
    assert "OR 1=1" not in text
    assert params == {"p0": "x' OR 1=1 --"}


def test_json_members_and_to_one_paths() -> None:
    text, params = sql_of("Thing/properties/site eq 's-1'", "Datastreams")
    assert '"e"."thing_id"' in text and "#>>" in text
    assert params["p0"] != "s-1" and "s-1" in params.values()
    assert ["site"] in params.values()
    text, params = sql_of("Datastream/id eq 'd-1:pm25_ugm3:raw'")
    assert text == '("e"."datastream_id" = %(p0)s::text)'  # the key is on this side


def test_iot_id_is_id_outside_strings_only() -> None:
    _, params = sql_of("@iot.id eq '@iot.id'", "Things")
    assert params == {"p0": "@iot.id"}


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("result eq 'x'", "number is compared"),
        ("phenomenonTime gt 2026-01-01T00:00:00", "UTC offset"),
        ("phenomenonTime gt 1", "give an ISO instant"),
        ("nope eq 1", "no property 'nope'"),
        ("result", "must be a condition"),
        ("resultQuality eq 1", "is an object"),
        ("FeatureOfInterest eq 1", "is an entity"),
        ("result lt null", "eq or ne"),
        ("substringof('a', id)", "substringof"),
        ("geo.intersects(id, id)", "not supported"),
        ("result eq 1e999", "finite"),
        ("phenomenonTime gt 2300-01-01T00:00:00Z", "between 1970 and 2200"),
    ],
)
def test_bad_filters_say_what_is_wrong(text: str, message: str) -> None:
    with pytest.raises(OptionError, match=message):
        sql_of(text)


def test_options() -> None:
    o = parse_options(
        {
            "$top": "5",
            "$skip": "10",
            "$count": "true",
            "$orderby": "result desc, @iot.id",
            "$select": "result,phenomenonTime",
            "$expand": "Datastream($select=name;$expand=Thing),FeatureOfInterest",
        }
    )
    assert (o.top, o.skip, o.count) == (5, 10, True)
    assert o.orderby == (("result", True), ("id", False))
    assert o.select == ("result", "phenomenonTime")
    assert [e.nav for e in o.expand] == ["Datastream", "FeatureOfInterest"]
    assert o.expand[0].options.select == ("name",)
    assert o.expand[0].options.expand[0].nav == "Thing"
    nested = parse_options({"$expand": "Datastreams($top=1),Datastreams/Observations($top=2)"})
    (ds,) = nested.expand
    assert ds.options.top == 1 and ds.options.expand[0].options.top == 2


@pytest.mark.parametrize(
    ("params", "message"),
    [
        ({"$top": "-1"}, "whole number"),
        ({"$top": "10001"}, "from 0 to 10000"),
        ({"$orderby": "a b c"}, "asc or desc"),
        ({"$expand": "Datastreams($top=1"}, "unbalanced"),
        ({"$expand": "Datastreams(top)"}, r"\$name=value"),
        ({"$select": "a b"}, "not a property path"),
        ({"$format": "json"}, "not supported"),
        ({"x": "1"}, "unknown query parameter"),
    ],
)
def test_bad_options(params: dict[str, str], message: str) -> None:
    with pytest.raises(OptionError, match=message):
        parse_options(params)


def test_ids_round_trip() -> None:
    assert parse_datastream_id("dev-1:pm25_ugm3:calibrated") == (
        "dev-1",
        Stream("pm25_ugm3", "calibrated"),
    )
    assert parse_datastream_id("dev-1:rh_pct:calibrated") is None  # RH is not calibrated
    assert parse_observation_id("dev-1:no2_ppb:raw:20260101T000100.250000Z:42") == (
        "dev-1",
        Stream("no2_ppb", "raw"),
        dt.datetime(2026, 1, 1, 0, 1, 0, 250000, tzinfo=dt.UTC),
        42,
    )
    assert parse_observation_id("dev-1:no2_ppb:raw:20261301T000100Z:42") is None


@settings(max_examples=300, deadline=None)
@given(st.text(max_size=60))
def test_any_text_parses_or_is_an_option_error(text: str) -> None:
    with contextlib.suppress(OptionError):  # anything else (a crash) fails the test
        sql_of(text)
