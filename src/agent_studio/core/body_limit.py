"""The cap on request bodies (`AGENT_STUDIO_MAX_BODY_BYTES`): a pure ASGI middleware, so no
body above the cap is ever held whole, whether it declares its length or streams chunked."""

from __future__ import annotations

import json

from starlette.exceptions import HTTPException
from starlette.types import ASGIApp, Message, Receive, Scope, Send


class RequestBodyTooLarge(HTTPException):
    """Raised from `receive` once a streamed body passes the cap. An HTTPException, so FastAPI's
    body parsing lets it through and the app renders it as `{"detail": ...}` with 413."""

    def __init__(self, max_bytes: int) -> None:
        super().__init__(status_code=413, detail=too_large_detail(max_bytes))


def too_large_detail(max_bytes: int) -> str:
    return f"request body too large: at most {max_bytes} bytes"


async def send_json_error(send: Send, status: int, detail: str, headers: dict[str, str]) -> None:
    """Answer with `{"detail": detail}`, the shape of every error the API renders."""
    body = json.dumps({"detail": detail}).encode()
    raw_headers = [
        (b"content-type", b"application/json"),
        (b"content-length", str(len(body)).encode()),
        *((name.lower().encode(), value.encode()) for name, value in headers.items()),
    ]
    await send({"type": "http.response.start", "status": status, "headers": raw_headers})
    await send({"type": "http.response.body", "body": body})


class BodyLimit:
    """Refuses an HTTP request whose body is above `max_bytes` with 413: at once when its
    `Content-Length` says so, else as soon as the streamed bytes pass the cap (the app gets
    `RequestBodyTooLarge` from `receive`). Should the app have started its response by then,
    the request just stops; a response is never sent twice."""

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        declared = _content_length(scope)
        if declared is not None and declared > self.max_bytes:
            await send_json_error(send, 413, too_large_detail(self.max_bytes), {})
            return

        received = 0
        responding = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_bytes:
                    raise RequestBodyTooLarge(self.max_bytes)
            return message

        async def watched_send(message: Message) -> None:
            nonlocal responding
            if message["type"] == "http.response.start":
                responding = True
            await send(message)

        try:
            await self.app(scope, limited_receive, watched_send)
        except RequestBodyTooLarge:
            # Only when the app let it escape (its handlers normally render it).
            if not responding:
                await send_json_error(send, 413, too_large_detail(self.max_bytes), {})


def _content_length(scope: Scope) -> int | None:
    for name, value in scope["headers"]:
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None  # the server refuses a malformed length before the app sees it
    return None
