"""A local OpenAI-compatible server, scripted per test, that records requests.

It answers `POST /v1/chat/completions` (streaming as server-sent events, or one JSON body when
the request does not ask for a stream) from a queue of scripted replies, and `GET /v1/models`.
Every request is recorded, so a test can check the system prompt and the tools a model saw.
It also stands in for cloud speech: `POST /v1/audio/transcriptions` answers `fake.transcript`
after `fake.transcript_delay` (the uploaded WAVs are kept in `fake.transcriptions`), and
`POST /v1/audio/speech` answers 24 kHz s16 PCM: a 440 Hz tone, 50 ms per character of input
(`fake.speeches` keeps each request's JSON body).

    async with FakeOpenAI() as fake:
        llm = {"provider": "openai-compatible", "base_url": fake.base_url}   # fake.url + "/v1"
        fake.reply("Hello there!")                                 # a streamed text reply
        fake.reply_tool_call("save_meal", {"meal_type": "lunch"})  # one tool call
        fake.reply_tool_calls([("a", {}), ("b", {"x": 1})])         # parallel tool calls
        fake.reply_error(500, "upstream exploded", times=3)         # the next 3 requests fail
        fake.reply("Slow answer", delay=0.3)                        # waits before the first byte
        ...
        request = await fake.wait_for_request(2)                    # the third request
        assert request.system_prompt.startswith("You are")
        assert "transfer_to_meal_agent" in request.tool_names

With the queue empty a request gets `fake.default` (a short text reply; set it to a `Reply` of
your choice, e.g. `Reply.error(500)`), and `fake.unscripted` counts how often that happened.
"""

from __future__ import annotations

import asyncio
import io
import itertools
import json
import math
import time
import wave
from collections import deque
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import Any

from aiohttp import web


@dataclass(frozen=True)
class Reply:
    """One scripted answer. Build it with `Reply.text`, `Reply.tool_calls` or `Reply.error`."""

    text: str = ""
    tool_calls: tuple[tuple[str, dict[str, Any]], ...] = ()
    status: int = 200
    error_message: str = ""
    delay: float = 0.0  # seconds before the response starts (time to first byte)
    chunk_delay: float = 0.0  # seconds between streamed chunks

    @classmethod
    def of_text(cls, text: str, *, delay: float = 0.0, chunk_delay: float = 0.0) -> Reply:
        return cls(text=text, delay=delay, chunk_delay=chunk_delay)

    @classmethod
    def of_tool_calls(
        cls, calls: Iterable[tuple[str, Mapping[str, Any]]], *, text: str = "", delay: float = 0.0
    ) -> Reply:
        return cls(text=text, tool_calls=tuple((n, dict(a)) for n, a in calls), delay=delay)

    @classmethod
    def error(
        cls, status: int = 500, message: str = "scripted failure", delay: float = 0.0
    ) -> Reply:
        return cls(status=status, error_message=message, delay=delay)


@dataclass
class ChatRequest:
    """One recorded `POST /v1/chat/completions`."""

    body: dict[str, Any]
    headers: dict[str, str]
    received_at: float = field(default_factory=time.monotonic)

    @property
    def messages(self) -> list[dict[str, Any]]:
        return list(self.body.get("messages", []))

    @property
    def system_prompt(self) -> str:
        """The text of the system (or developer) messages, joined by blank lines."""
        parts = [
            _content_text(m.get("content"))
            for m in self.messages
            if m.get("role") in ("system", "developer")
        ]
        return "\n\n".join(p for p in parts if p)

    @property
    def tool_names(self) -> list[str]:
        return [t["function"]["name"] for t in self.body.get("tools", []) if "function" in t]

    def tool(self, name: str) -> dict[str, Any]:
        """The function definition sent for tool `name` (KeyError if it was not sent)."""
        for t in self.body.get("tools", []):
            if t.get("function", {}).get("name") == name:
                return dict(t["function"])
        raise KeyError(name)

    @property
    def last_user_text(self) -> str | None:
        for message in reversed(self.messages):
            if message.get("role") == "user":
                return _content_text(message.get("content"))
        return None


def _content_text(content: Any) -> str:
    if isinstance(content, str):
        return content
    if isinstance(content, list):
        return "".join(p.get("text", "") for p in content if isinstance(p, dict))
    return ""


@dataclass(frozen=True)
class Transcription:
    """One recorded `POST /v1/audio/transcriptions`: its form fields (model, language, ...),
    the length of the uploaded WAV in seconds, and the headers."""

    fields: dict[str, str]
    seconds: float
    headers: dict[str, str]


class FakeOpenAI:
    """The server. Use as an async context manager; `url` is `http://127.0.0.1:<port>`."""

    def __init__(self, default: Reply | None = None) -> None:
        self.default = default or Reply.of_text("OK.")
        self.requests: list[ChatRequest] = []
        self.unscripted = 0
        self._queue: deque[Reply] = deque()
        self._ids = itertools.count(1)
        self._arrived = asyncio.Condition()
        self._runner: web.AppRunner | None = None
        self.url = ""
        self.transcript = "Hello."
        self.transcript_delay = 0.0
        self.transcriptions: list[Transcription] = []
        self.speeches: list[dict[str, Any]] = []

    # Scripting.

    def reply(self, text: str, *, delay: float = 0.0, chunk_delay: float = 0.0) -> None:
        self._queue.append(Reply.of_text(text, delay=delay, chunk_delay=chunk_delay))

    def reply_tool_call(
        self, name: str, arguments: Mapping[str, Any] | None = None, **kw: Any
    ) -> None:
        self._queue.append(Reply.of_tool_calls([(name, arguments or {})], **kw))

    def reply_tool_calls(self, calls: Iterable[tuple[str, Mapping[str, Any]]], **kw: Any) -> None:
        self._queue.append(Reply.of_tool_calls(calls, **kw))

    def reply_error(
        self, status: int = 500, message: str = "scripted failure", *, times: int = 1
    ) -> None:
        for _ in range(times):
            self._queue.append(Reply.error(status, message))

    def push(self, *replies: Reply) -> None:
        self._queue.extend(replies)

    @property
    def pending(self) -> int:
        """Scripted replies not yet used."""
        return len(self._queue)

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    async def wait_for_request(self, index: int, timeout: float = 5.0) -> ChatRequest:
        """The request at `index` (0-based), waiting for it to arrive."""
        async with asyncio.timeout(timeout), self._arrived:
            await self._arrived.wait_for(lambda: len(self.requests) > index)
        return self.requests[index]

    # Server.

    async def __aenter__(self) -> FakeOpenAI:
        app = web.Application()
        app.router.add_post("/v1/chat/completions", self._chat)
        app.router.add_get("/v1/models", self._models)
        app.router.add_post("/v1/audio/transcriptions", self._transcribe)
        app.router.add_post("/v1/audio/speech", self._speech)
        # Handlers still sleeping on a scripted delay are cut short when the test is over.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.1)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        port = site._server.sockets[0].getsockname()[1]  # type: ignore[union-attr]
        self.url = f"http://127.0.0.1:{port}"
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._runner is not None:
            await self._runner.cleanup()

    async def _models(self, request: web.Request) -> web.Response:
        return web.json_response({"object": "list", "data": [{"id": "fake", "object": "model"}]})

    async def _transcribe(self, request: web.Request) -> web.Response:
        form = await request.post()
        upload = form.get("file")
        if not isinstance(upload, web.FileField):
            return web.json_response({"error": {"message": "file is required"}}, status=400)
        audio = upload.file.read()
        with wave.open(io.BytesIO(audio)) as w:
            seconds = w.getnframes() / w.getframerate()
        fields = {k: str(v) for k, v in form.items() if k != "file"}
        self.transcriptions.append(Transcription(fields, seconds, dict(request.headers)))
        if self.transcript_delay:
            await asyncio.sleep(self.transcript_delay)
        return web.json_response({"text": self.transcript})

    async def _speech(self, request: web.Request) -> web.Response:
        body = await request.json()
        self.speeches.append(body)
        rate, samples = 24000, int(24000 * 0.05 * max(1, len(body.get("input", ""))))
        pcm = b"".join(
            int(8000 * math.sin(2 * math.pi * 440 * i / rate)).to_bytes(2, "little", signed=True)
            for i in range(samples)
        )
        return web.Response(body=pcm, content_type="audio/pcm")

    async def _chat(self, request: web.Request) -> web.StreamResponse:
        body = await request.json()
        async with self._arrived:
            self.requests.append(ChatRequest(body=body, headers=dict(request.headers)))
            self._arrived.notify_all()
        if self._queue:
            reply = self._queue.popleft()
        else:
            reply, self.unscripted = self.default, self.unscripted + 1
        if reply.delay:
            await asyncio.sleep(reply.delay)
        if reply.status != 200:
            error = {"message": reply.error_message, "type": "server_error", "code": None}
            return web.json_response({"error": error}, status=reply.status)
        completion_id = f"chatcmpl-{next(self._ids)}"
        model = str(body.get("model", "fake"))
        if not body.get("stream"):
            return web.json_response(self._whole(completion_id, model, reply, body))
        return await self._stream(request, completion_id, model, reply, body)

    def _usage(self, body: dict[str, Any], reply: Reply) -> dict[str, int]:
        prompt = sum(len(_content_text(m.get("content")).split()) for m in body.get("messages", []))
        completion = len(reply.text.split()) + 5 * len(reply.tool_calls)
        return {
            "prompt_tokens": prompt,
            "completion_tokens": completion,
            "total_tokens": prompt + completion,
        }

    def _tool_call_dicts(self, completion_id: str, reply: Reply) -> list[dict[str, Any]]:
        return [
            {
                "index": i,
                "id": f"call_{completion_id[9:]}_{i}",
                "type": "function",
                "function": {"name": name, "arguments": json.dumps(arguments)},
            }
            for i, (name, arguments) in enumerate(reply.tool_calls)
        ]

    def _whole(self, completion_id: str, model: str, reply: Reply, body: dict[str, Any]) -> Any:
        message: dict[str, Any] = {"role": "assistant", "content": reply.text or None}
        if reply.tool_calls:
            calls = self._tool_call_dicts(completion_id, reply)
            message["tool_calls"] = [{k: v for k, v in c.items() if k != "index"} for c in calls]
        return {
            "id": completion_id,
            "object": "chat.completion",
            "created": int(time.time()),
            "model": model,
            "usage": self._usage(body, reply),
            "choices": [
                {
                    "index": 0,
                    "message": message,
                    "finish_reason": "tool_calls" if reply.tool_calls else "stop",
                }
            ],
        }

    async def _stream(
        self,
        request: web.Request,
        completion_id: str,
        model: str,
        reply: Reply,
        body: dict[str, Any],
    ) -> web.StreamResponse:
        response = web.StreamResponse(headers={"Content-Type": "text/event-stream"})
        await response.prepare(request)
        created = int(time.time())

        async def send(choices: list[dict[str, Any]], **extra: Any) -> None:
            chunk = {
                "id": completion_id,
                "object": "chat.completion.chunk",
                "created": created,
                "model": model,
                "choices": choices,
                **extra,
            }
            await response.write(f"data: {json.dumps(chunk)}\n\n".encode())

        await send(
            [{"index": 0, "delta": {"role": "assistant", "content": ""}, "finish_reason": None}]
        )
        for piece in _pieces(reply.text):
            if reply.chunk_delay:
                await asyncio.sleep(reply.chunk_delay)
            await send([{"index": 0, "delta": {"content": piece}, "finish_reason": None}])
        for call in self._tool_call_dicts(completion_id, reply):
            await send([{"index": 0, "delta": {"tool_calls": [call]}, "finish_reason": None}])
        finish = "tool_calls" if reply.tool_calls else "stop"
        await send([{"index": 0, "delta": {}, "finish_reason": finish}])
        if body.get("stream_options", {}).get("include_usage"):
            await send([], usage=self._usage(body, reply))
        await response.write(b"data: [DONE]\n\n")
        await response.write_eof()
        return response


def _pieces(text: str) -> list[str]:
    """Split text into word-sized stream chunks, keeping the spaces."""
    if not text:
        return []
    words = text.split(" ")
    return [w if i == len(words) - 1 else w + " " for i, w in enumerate(words)]
