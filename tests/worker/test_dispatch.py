"""A real `agent-studio worker` process takes a dispatched job and runs it as far as it can
without a media server: registered by agent name, job accepted, call loaded, room refused."""

from __future__ import annotations

import asyncio
import signal
from pathlib import Path

import httpx

from agent_studio.config import Settings
from tests.fakes.livekit_twirp import LiveKitTwirpFake
from tests.fakes.openai_server import FakeOpenAI
from tests.worker.agent_server_fake import AgentServerFake
from tests.worker.conftest import KEY, SECRET, TRUNK, dispatched_job, new_call, wait_status
from tests.worker.test_process import start_worker, stop, worker_env


async def test_dispatched_job_runs_in_a_job_process(
    tmp_path: Path,
    lk_settings: Settings,
    lk_client: httpx.AsyncClient,
    livekit: LiveKitTwirpFake,
    fake_llm: FakeOpenAI,
) -> None:
    call_id = await new_call(lk_client, fake_llm)
    job, room_name = dispatched_job(livekit)
    metadata = livekit.requests("CreateDispatch")[-1].metadata
    async with AgentServerFake(KEY, SECRET, livekit.url) as server:
        env = worker_env(
            tmp_path,
            server.url,
            AGENT_STUDIO_DATABASE_URL=lk_settings.effective_database_url,
            AGENT_STUDIO_SIP_TRUNK_ID=TRUNK,
            LIVEKIT_AGENTS_PRELOAD_LOCAL_INFERENCE="0",
        )
        del env["AGENT_STUDIO_SECRET_KEY"]  # the API's generated key, in the shared data dir
        process = await start_worker(tmp_path, env)
        assert process.stderr is not None
        log = asyncio.create_task(process.stderr.read())  # keep the pipe from filling
        try:
            await asyncio.wait_for(server.registered.wait(), 30)
            [registration] = server.registrations
            assert registration.agent_name == "agent-studio"

            answer = await server.dispatch(room_name, metadata, "agent-studio")
            assert answer.available
            assert answer.participant_identity == f"agent-{job.call_id}"

            # The job process loads the call and tries the room, which has no media server.
            view = await wait_status(lk_client, call_id, "failed", timeout=30)
            assert view["end_reason"] == "internal_error"
            assert "could not join the LiveKit room" in view["error"]
            async with asyncio.timeout(10):
                while room_name not in [r.room for r in livekit.requests("DeleteRoom")]:
                    await asyncio.sleep(0.05)
            assert livekit.requests("CreateSIPParticipant") == []

            process.send_signal(signal.SIGTERM)
            await asyncio.wait_for(process.wait(), 20)
            text = (await log).decode()
            assert process.returncode == 0, text
            assert "Traceback" not in text, text
            assert "+1415" not in text  # no phone number in the logs
        finally:
            await stop(process)
            log.cancel()
