"""The call page: `GET /call/{call_id}` and its own static assets (no CDN, nothing external)."""

from __future__ import annotations

import uuid
from functools import cache
from importlib import resources

from fastapi import APIRouter
from fastapi.responses import Response

from agent_studio.core.errors import NotFound

router = APIRouter(tags=["call page"])

# The only files served: a fixed list, so no path from the request ever reaches the filesystem.
_ASSETS = {
    "call.js": "text/javascript; charset=utf-8",
    "call.css": "text/css; charset=utf-8",
}
_CSP = (
    "default-src 'none'; script-src 'self'; style-src 'self'; img-src 'self' data:; "
    "connect-src 'self'; media-src 'self' blob: mediastream:; base-uri 'none'; "
    "form-action 'none'"
)
_HEADERS = {
    "Cache-Control": "no-cache",
    "Referrer-Policy": "no-referrer",
    "X-Content-Type-Options": "nosniff",
}


@cache
def _read(name: str) -> bytes:
    return resources.files("agent_studio.web").joinpath("static", name).read_bytes()


@router.get(
    "/call/{call_id}",
    response_class=Response,
    responses={200: {"description": "The call page", "content": {"text/html": {}}}},
)
async def call_page(call_id: uuid.UUID) -> Response:
    """The browser page for an embedded VoIP call: open `/call/{call_id}#token={token}`.

    The page holds no data; the call token stays in the URL fragment, which browsers never
    send to the server."""
    return Response(
        _read("call.html"),
        media_type="text/html; charset=utf-8",
        headers={**_HEADERS, "Content-Security-Policy": _CSP},
    )


@router.get("/static/{name}", response_class=Response, include_in_schema=False)
async def static_asset(name: str) -> Response:
    media_type = _ASSETS.get(name)
    if media_type is None:
        raise NotFound("no such asset")
    return Response(_read(name), media_type=media_type, headers=_HEADERS)
