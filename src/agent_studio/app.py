"""The FastAPI application factory."""

from __future__ import annotations

import asyncio
import contextlib
import hmac
import logging
from collections.abc import AsyncIterator

from fastapi import APIRouter, Depends, FastAPI, Request
from fastapi.responses import JSONResponse, Response
from sqlalchemy import text

from agent_studio import __version__
from agent_studio.agents.endpoints import router as agents_router
from agent_studio.api_keys.auth import ApiKeyGate, require_api_key
from agent_studio.calls.deps import CallServiceDep
from agent_studio.calls.endpoints import router as calls_router
from agent_studio.config import Settings, get_settings
from agent_studio.context import AppContext
from agent_studio.core.body_limit import BodyLimit
from agent_studio.core.deps import SessionDep, bearer_token
from agent_studio.core.error_handlers import install_error_handlers
from agent_studio.core.errors import Unauthorized
from agent_studio.core.memory import freeze_long_lived, freeze_while_busy, settle
from agent_studio.core.metrics import CONTENT_TYPE, exposition
from agent_studio.core.migrate import upgrade_to_head
from agent_studio.demo import seed_demo
from agent_studio.media.embedded.webrtc import webrtc_router
from agent_studio.phone_numbers.endpoints import router as phone_numbers_router
from agent_studio.provider_keys.endpoints import providers_router
from agent_studio.provider_keys.endpoints import router as provider_keys_router
from agent_studio.runtime.tracing import start_tracing, stop_tracing
from agent_studio.web import web_router
from agent_studio.workflows.endpoints import router as workflows_router

log = logging.getLogger(__name__)

_auth = Depends(require_api_key)


def create_app(settings: Settings | None = None, *, freeze_after_start: bool = False) -> FastAPI:
    """The application. `freeze_after_start` (the server process, not tests that build many
    apps in one process): once started, freeze what exists out of the cycle collector
    (core/memory.py)."""
    settings = settings or get_settings()

    @contextlib.asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        tracer_provider = start_tracing(settings)
        context = AppContext.create(settings)
        await upgrade_to_head(context.db.engine)
        await seed_demo(context.db, settings.data_dir, enabled=settings.demo)
        context.install(app.state)
        await context.start()
        background = [asyncio.create_task(context.sweeper.run(), name="call-sweeper")]
        if freeze_after_start:
            freeze_long_lived(collect=True)
            # While calls are live what they hold is frozen; once none is, what they left and
            # what they imported is collected and frozen (core/memory.py).
            context.host.on_idle = lambda: context.idle() and settle()
            background.append(
                asyncio.create_task(freeze_while_busy(context.idle), name="gc-freeze-while-busy")
            )
        try:
            yield
        finally:
            for task in background:
                task.cancel()
            for task in background:
                with contextlib.suppress(asyncio.CancelledError):
                    await task
            await context.aclose()
            stop_tracing(tracer_provider)

    app = FastAPI(
        title="Agent Studio",
        version=__version__,
        summary="Voice AI agents, workflows and calls over WebRTC and SIP.",
        lifespan=lifespan,
    )
    install_error_handlers(app)
    # Added last runs first: the body cap, then the API key, both before a body is read.
    app.add_middleware(ApiKeyGate)
    app.add_middleware(BodyLimit, max_bytes=settings.max_body_bytes)

    api = APIRouter(
        prefix="/api/v1", responses={401: {"description": "Missing or invalid API key"}}
    )
    for router in (
        calls_router,
        agents_router,
        workflows_router,
        provider_keys_router,
        providers_router,
        phone_numbers_router,
    ):
        api.include_router(router, dependencies=[_auth])
    app.include_router(api)
    app.include_router(webrtc_router)
    app.include_router(web_router)

    @app.get("/healthz", include_in_schema=True, tags=["health"])
    async def healthz() -> dict[str, str]:
        return {"status": "ok"}

    @app.get("/readyz", tags=["health"], responses={503: {"description": "Database unreachable"}})
    async def readyz() -> JSONResponse:
        context: AppContext = app.state.context
        try:
            async with context.db.session() as session:
                await session.execute(text("SELECT 1"))
        except Exception:
            log.warning("readiness check failed: database unreachable")
            return JSONResponse({"status": "unavailable"}, status_code=503)
        return JSONResponse({"status": "ok"})

    # With a metrics token, only that token reads the metrics; without one, an API key does.
    metrics_auth = [] if settings.metrics_token is not None else [_auth]

    @app.get("/metrics", include_in_schema=False, dependencies=metrics_auth)
    async def metrics(request: Request, session: SessionDep, calls: CallServiceDep) -> Response:
        """Prometheus text exposition: bearer `metrics_token` when set, else an API key
        (docs/operations.md)."""
        if not _metrics_allowed(settings, request.headers.get("authorization")):
            raise Unauthorized("missing or invalid metrics token")
        live_calls = await calls.live_counts_by_type(session)
        return Response(exposition(live_calls), media_type=CONTENT_TYPE)

    return app


def _metrics_allowed(settings: Settings, authorization: str | None) -> bool:
    """With a metrics token, only `Authorization: Bearer <that token>` (without one, the route
    requires an API key instead)."""
    if settings.metrics_token is None:
        return True
    presented = bearer_token(authorization)
    expected = settings.metrics_token.get_secret_value()
    return presented is not None and hmac.compare_digest(presented.encode(), expected.encode())
