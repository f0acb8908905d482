"""A local stand-in for LiveKit's agent endpoint (`/agent`, protobuf over WebSocket).

It registers a worker, offers it jobs and assigns them without a URL, as open-source LiveKit
does; `/twirp/*` is passed on to a `LiveKitTwirpFake`. There is no media server behind it, so a
job's room connection fails, which is as far as a job can go here.
"""

from __future__ import annotations

import asyncio
import contextlib
from typing import Any

import aiohttp
from aiohttp import web
from livekit import api
from livekit.protocol import agent, models


class AgentServerFake:
    def __init__(self, api_key: str, api_secret: str, twirp_url: str) -> None:
        self.verifier = api.TokenVerifier(api_key, api_secret)
        self.api_key, self.api_secret = api_key, api_secret
        self.twirp_url = twirp_url
        self.registrations: list[agent.RegisterWorkerRequest] = []
        self.availability: list[agent.AvailabilityResponse] = []
        self.job_updates: list[agent.UpdateJobStatus] = []
        self.registered = asyncio.Event()
        self._ws: web.WebSocketResponse | None = None
        self._answers: dict[str, asyncio.Future[agent.AvailabilityResponse]] = {}
        self._runner: web.AppRunner | None = None
        self._http: aiohttp.ClientSession | None = None
        self.port = 0

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    async def __aenter__(self) -> AgentServerFake:
        app = web.Application()
        app.router.add_get("/agent", self._agent)
        app.router.add_post("/twirp/{path:.*}", self._twirp)
        self._runner = web.AppRunner(app, access_log=None)
        await self._runner.setup()
        site = web.TCPSite(self._runner, "127.0.0.1", 0)
        await site.start()
        self.port = self._runner.addresses[0][1]
        self._http = aiohttp.ClientSession()
        return self

    async def __aexit__(self, *exc_info: object) -> None:
        if self._ws is not None:
            await self._ws.close()
        if self._runner is not None:
            await self._runner.cleanup()
        if self._http is not None:
            await self._http.close()

    async def dispatch(
        self, room: str, metadata: str, agent_name: str
    ) -> agent.AvailabilityResponse:
        """Offer a job to the registered worker; assign it if the worker takes it."""
        assert self._ws is not None, "no worker registered"
        job = agent.Job(
            id=f"AJ_{len(self._answers) + 1}",
            dispatch_id="AD_fake",
            type=agent.JobType.JT_ROOM,
            room=models.Room(sid="RM_fake", name=room),
            metadata=metadata,
            agent_name=agent_name,
        )
        answer = self._answers[job.id] = asyncio.get_running_loop().create_future()
        request = agent.ServerMessage(availability=agent.AvailabilityRequest(job=job))
        await self._ws.send_bytes(request.SerializeToString())
        response: agent.AvailabilityResponse = await asyncio.wait_for(answer, 10)
        if response.available:
            token = (
                api.AccessToken(self.api_key, self.api_secret)
                .with_identity(response.participant_identity)
                .with_kind("agent")
                .with_grants(api.VideoGrants(room_join=True, room=room, agent=True))
                .to_jwt()
            )
            assignment = agent.JobAssignment(job=job, token=token)  # no url: the worker's own
            await self._ws.send_bytes(
                agent.ServerMessage(assignment=assignment).SerializeToString()
            )
        return response

    async def _agent(self, request: web.Request) -> web.StreamResponse:
        claims = self.verifier.verify(request.headers["Authorization"].removeprefix("Bearer "))
        assert claims.video is not None and claims.video.agent
        ws = web.WebSocketResponse()
        await ws.prepare(request)
        self._ws = ws
        async for message in ws:
            if message.type != aiohttp.WSMsgType.BINARY:
                continue
            self._handle(agent.WorkerMessage.FromString(message.data))
        return ws

    def _handle(self, message: agent.WorkerMessage) -> None:
        which = message.WhichOneof("message")
        if which == "register":
            self.registrations.append(message.register)
            reply = agent.ServerMessage(register=agent.RegisterWorkerResponse(worker_id="AW_fake"))
            assert self._ws is not None
            task = asyncio.ensure_future(self._ws.send_bytes(reply.SerializeToString()))
            task.add_done_callback(lambda _: self.registered.set())
        elif which == "availability":
            self.availability.append(message.availability)
            future = self._answers.get(message.availability.job_id)
            if future is not None and not future.done():
                future.set_result(message.availability)
        elif which == "update_job":
            self.job_updates.append(message.update_job)

    async def _twirp(self, request: web.Request) -> web.StreamResponse:
        assert self._http is not None
        headers = {k: v for k, v in request.headers.items() if k in _FORWARDED}
        async with self._http.post(
            f"{self.twirp_url}{request.path}", data=await request.read(), headers=headers
        ) as upstream:
            body: Any = await upstream.read()
            with contextlib.suppress(KeyError):
                return web.Response(
                    status=upstream.status,
                    body=body,
                    content_type=upstream.headers["Content-Type"].split(";")[0],
                )
            return web.Response(status=upstream.status, body=body)


_FORWARDED = ("Authorization", "Content-Type", "User-Agent", "X-Livekit-Request-Id")
