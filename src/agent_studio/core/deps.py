"""Request-scoped dependencies: the app context and the unit of work."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import TYPE_CHECKING, Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

if TYPE_CHECKING:
    from agent_studio.context import AppContext


def get_context(request: Request) -> AppContext:
    return cast("AppContext", request.app.state.context)


async def _session(request: Request) -> AsyncIterator[AsyncSession]:
    """The request's unit of work: committed after the endpoint returns, before the response."""
    async with get_context(request).db.session() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(_session, scope="function")]
ContextDep = Annotated["AppContext", Depends(get_context)]
