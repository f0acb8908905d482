"""The call service as a request dependency (built once at start, kept on `app.state`)."""

from __future__ import annotations

from typing import Annotated, cast

from fastapi import Depends, Request

from agent_studio.calls.service import CallService


def get_call_service(request: Request) -> CallService:
    return cast(CallService, request.app.state.calls)


CallServiceDep = Annotated[CallService, Depends(get_call_service)]
