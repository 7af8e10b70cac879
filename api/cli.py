"""`luftnett api`: serve the API and the dashboard."""

from __future__ import annotations

import click

from luftnett.cli import settings_of


@click.group()
def api() -> None:
    """The HTTP API and dashboard."""


@api.command("serve")
@click.option("--host", default=None, help="Bind address (api.host, default 127.0.0.1).")
@click.option("--port", type=int, default=None, help="Port (api.port, default 8000).")
@click.pass_context
def api_serve(ctx: click.Context, host: str | None, port: int | None) -> None:
    """Serve the API and the dashboard.

    Example:  luftnett api serve --port 8000
    """
    import uvicorn

    from luftnett.api.app import create_app
    from luftnett.connect import database_url

    s = settings_of(ctx)
    with database_url(s) as url:
        uvicorn.run(create_app(s, url), host=host or s.api.host, port=port or s.api.port)
