"""Generate docs/cli.md and docs/configuration.md from the code, so they cannot drift.

``python -m luftnett.docgen`` rewrites them; ``--check`` exits 1 if they are stale (a unit test
runs the check).
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import click
from pydantic import BaseModel

from luftnett.cli import main as cli_main
from luftnett.settings import Settings

__all__ = ["cli_doc", "config_doc"]


def _walk(cmd: click.Command, path: list[str]) -> list[tuple[list[str], click.Command]]:
    out = [(path, cmd)]
    if isinstance(cmd, click.Group):
        ctx = click.Context(cmd, info_name=path[-1])
        for name in cmd.list_commands(ctx):
            sub = cmd.get_command(ctx, name)
            if sub is not None and not sub.hidden:
                out += _walk(sub, [*path, name])
    return out


def commands() -> list[tuple[list[str], click.Command]]:
    return _walk(cli_main, ["luftnett"])


def cli_doc() -> str:
    parts = [
        "# Command line\n",
        "Generated from the code by `python -m luftnett.docgen`; every command's `--help`.\n",
    ]
    for path, cmd in commands():
        parent = None
        for p in path[:-1]:
            parent = click.Context(cli_main, info_name=p, parent=parent)
        ctx = click.Context(cmd, info_name=path[-1], parent=parent, terminal_width=100)
        parts.append(f"\n## {' '.join(path)}\n\n```\n{cmd.get_help(ctx).rstrip()}\n```\n")
    return "".join(parts)


def _fields(model: type[BaseModel], prefix: str, env: str) -> list[str]:
    rows = []
    for name, f in model.model_fields.items():
        ann = f.annotation
        if isinstance(ann, type) and issubclass(ann, BaseModel):
            rows += _fields(ann, f"{prefix}{name}.", f"{env}{name.upper()}__")
            continue
        default: Any = f.get_default(call_default_factory=True)
        if name == "home":
            default = "/var/lib/luftnett (root) or $XDG_DATA_HOME/luftnett"
        elif name == "api_keys":
            default = '["luftnett-demo-key"] (refused in production)'
        desc = (f.description or "").replace("|", "\\|")
        type_name = ann.__name__ if isinstance(ann, type) else str(ann)
        type_name = type_name.replace("typing.", "").replace("pydantic.types.", "")
        type_name = type_name.replace("pathlib.", "").replace("|", "\\|")
        rows.append(
            f"| `{prefix}{name}` | `{env}{name.upper()}` | {type_name} | `{default}` | {desc} |"
        )
    return rows


def config_doc() -> str:
    head = [
        "# Configuration\n",
        "Generated from `luftnett.settings.Settings` by `python -m luftnett.docgen`.\n",
        "Sources, strongest first: environment variables (`LUFTNETT_…`, nested with `__`), a TOML",
        "file (`--config FILE` or `LUFTNETT_CONFIG`) whose tables mirror the dotted names, then",
        "these defaults. Lists are given as JSON in the environment:",
        '`LUFTNETT_API__API_KEYS=\'["k1","k2"]\'`.\n',
        "| setting | environment variable | type | default | meaning |",
        "|---|---|---|---|---|",
    ]
    return "\n".join(head + _fields(Settings, "", "LUFTNETT_")) + "\n"


DOCS = {"docs/cli.md": cli_doc, "docs/configuration.md": config_doc}


def main(argv: list[str]) -> int:
    root = Path(argv[argv.index("--root") + 1]) if "--root" in argv else Path.cwd()
    stale = []
    for rel, make in DOCS.items():
        path = root / rel
        text = make()
        if "--check" in argv:
            if not path.exists() or path.read_text(encoding="utf-8") != text:
                stale.append(rel)
        else:
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(text, encoding="utf-8")
    if stale:
        sys.stderr.write(f"stale: {', '.join(stale)}; run `python -m luftnett.docgen`\n")
        return 1
    return 0


if __name__ == "__main__":
    raise SystemExit(main(sys.argv[1:]))
