"""``luftnett decode``: decode captured sensor bytes into JSON lines, one per frame found."""

from __future__ import annotations

import json
import re
import sys
from collections.abc import Iterator
from typing import Any

import click

from luftnett.edge.drivers import DRIVERS, get
from luftnett.edge.framing import Item, Measurement, Rejected

__all__ = ["decode", "item_json", "parse_hex"]

_NOT_HEX = re.compile(r"[^0-9a-fA-F]")
_CHUNK = 4096


def hex_of(raw: bytes) -> str:
    return raw.hex(" ").upper()


def item_json(item: Item) -> dict[str, Any]:
    """The JSON object printed for one item (values, then sensor fields, flags and raw)."""
    if isinstance(item, Rejected):
        out: dict[str, Any] = {"error": item.category, "raw": hex_of(item.raw)}
        if item.detail:
            out["detail"] = item.detail
        return out
    if isinstance(item, Measurement):
        out = {**item.values, **item.fields}
        if item.serial is not None and item.serial not in out.values():
            out["serial"] = item.serial
        out["flags"] = sorted(item.flags)
    else:
        out = {"reply": item.command, **item.fields}
    out["raw"] = hex_of(item.raw)
    return out


def parse_hex(args: tuple[str, ...]) -> bytes:
    """Join hex arguments (spaces allowed anywhere) into bytes; raise BadParameter if invalid."""
    text = "".join("".join(a.split()) for a in args)
    bad = _NOT_HEX.search(text)
    if bad:
        raise click.BadParameter(
            f"not a hex digit: {bad.group()!r} at position {bad.start()}", param_hint="HEX"
        )
    if len(text) % 2:
        raise click.BadParameter(f"odd number of hex digits ({len(text)})", param_hint="HEX")
    if not text:
        raise click.BadParameter(
            'no bytes given: pass hex digits (e.g. "AA C0 D4 04 ...") or - for raw bytes on stdin',
            param_hint="HEX",
        )
    return bytes.fromhex(text)


def _chunks(hex_args: tuple[str, ...]) -> Iterator[bytes]:
    if hex_args == ("-",):
        stdin = sys.stdin.buffer
        while chunk := stdin.read1(_CHUNK) if hasattr(stdin, "read1") else stdin.read(_CHUNK):
            yield chunk
        return
    if "-" in hex_args:
        raise click.BadParameter("'-' (stdin) must be the only argument", param_hint="HEX")
    yield parse_hex(hex_args)


@click.command()
@click.option(
    "--sensor",
    required=True,
    type=click.Choice(sorted(DRIVERS)),
    help="Sensor model whose wire protocol the bytes follow.",
)
@click.argument("hex_args", metavar="HEX [HEX ...]", nargs=-1, required=True)
def decode(sensor: str, hex_args: tuple[str, ...]) -> None:
    """Decode captured sensor bytes and print one JSON object per frame found.

    HEX arguments are joined into one byte stream (spaces inside are ignored); `-` reads raw
    bytes from stdin instead, e.g. a log captured from the serial port. Measurements print
    their values (pm25_ugm3, no2_ppb, temperature_c, ...), flags and raw bytes; answers to
    commands print {"reply": ...}; rejected bytes print {"error": "<category>", "raw": ...}.

    Example:  luftnett decode --sensor sds011 "AA C0 D4 04 3A 0A A1 60 1D AB"
    """
    framer = get(sensor).Framer()
    for chunk in _chunks(hex_args):
        for item in framer.feed(chunk):
            click.echo(json.dumps(item_json(item), ensure_ascii=False))
    for item in framer.flush():
        click.echo(json.dumps(item_json(item), ensure_ascii=False))
