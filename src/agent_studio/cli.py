"""The `agent-studio` command: serve, worker, migrate, api-keys."""

from __future__ import annotations

import asyncio
from collections.abc import Awaitable, Callable
from typing import Annotated, TypeVar

import typer
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.config import get_settings
from agent_studio.core.log import configure_logging

T = TypeVar("T")

app = typer.Typer(help="Agent Studio: voice AI agents on WebRTC and SIP.", no_args_is_help=True)
keys_app = typer.Typer(help="Manage API keys (the key is printed once, stored hashed).")
app.add_typer(keys_app, name="api-keys")


def _with_database(work: Callable[..., Awaitable[T]]) -> T:
    from agent_studio.core.db import Database
    from agent_studio.core.migrate import upgrade_to_head

    async def run() -> T:
        db = Database(get_settings())
        try:
            await upgrade_to_head(db.engine)
            async with db.session() as session:
                return await work(session)
        finally:
            await db.dispose()

    return asyncio.run(run())


@app.command()
def serve(
    host: Annotated[str, typer.Option(help="Address to listen on")] = "127.0.0.1",
    port: Annotated[int, typer.Option(help="Port to listen on")] = 8000,
) -> None:
    """Run the API server (and, in the embedded mode, the media endpoints)."""
    import uvicorn

    from agent_studio.app import create_app

    settings = get_settings()
    log_config = configure_logging(settings)
    # Once started (migrations, imports), what exists lives as long as the process.
    application = create_app(settings, freeze_after_start=True)
    uvicorn.run(
        application,
        host=host,
        port=port,
        log_level=settings.log_level,
        log_config=log_config,
        proxy_headers=True,
    )


@app.command()
def worker() -> None:
    """Run a LiveKit agent worker: it takes the calls LiveKit dispatches and runs their agents.

    Configured by the usual settings (LIVEKIT_*, AGENT_STUDIO_DATABASE_URL, ...) and
    AGENT_STUDIO_WORKER_* (see docs/worker.md).
    """
    from agent_studio.worker.server import run_worker

    raise typer.Exit(code=run_worker())


@app.command()
def migrate() -> None:
    """Bring the database schema to the newest version."""

    async def nothing(_: AsyncSession) -> None:
        return None

    _with_database(nothing)
    typer.echo("database is up to date")


@keys_app.command("create")
def create_key(name: Annotated[str, typer.Option(help="A label for the key")] = "default") -> None:
    """Create an API key and print it once."""
    from agent_studio.api_keys.service import api_key_service

    async def work(session: AsyncSession) -> str:
        _, plaintext = await api_key_service.create(session, name)
        return plaintext

    typer.echo(_with_database(work))


@keys_app.command("list")
def list_keys() -> None:
    """List API keys (id, prefix, name, created, revoked)."""
    from agent_studio.api_keys.service import api_key_service

    async def work(session: AsyncSession) -> list[str]:
        keys = await api_key_service.list(session)
        return [
            f"{k.id}  {k.prefix}…  {k.name}  created {k.created_at:%Y-%m-%d %H:%M}"
            + (f"  revoked {k.revoked_at:%Y-%m-%d %H:%M}" if k.revoked_at else "")
            for k in keys
        ]

    for line in _with_database(work):
        typer.echo(line)


@keys_app.command("revoke")
def revoke_key(key: Annotated[str, typer.Argument(help="The key's id, prefix or name")]) -> None:
    """Revoke an API key: requests with it get 401 from now on."""
    from agent_studio.api_keys.service import ApiKeyError, api_key_service

    async def work(session: AsyncSession) -> str:
        revoked = await api_key_service.revoke(session, key)
        return str(revoked.id)

    try:
        typer.echo(f"revoked {_with_database(work)}")
    except ApiKeyError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(code=1) from None


def main() -> None:
    app()
