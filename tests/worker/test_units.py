"""Pure parts of the worker: job metadata, SIP failure mapping, the request, server options."""

from __future__ import annotations

import json
import math
import uuid
from types import SimpleNamespace
from typing import Any

import aiohttp
import pytest
from livekit import api

from agent_studio.calls.states import EndReason
from agent_studio.worker.job import JobMetadataError, parse_metadata
from agent_studio.worker.server import CallCapacity, build_server, config_problems
from agent_studio.worker.settings import WorkerSettings
from agent_studio.worker.sip_dial import failure_outcome, sip_request


def test_metadata_as_the_api_writes_it() -> None:
    call_id = uuid.uuid4()
    raw = json.dumps({"call_id": str(call_id), "call_type": "sip", "phone_number": "+14155550123"})
    job = parse_metadata(raw)
    assert (job.call_id, job.call_type, job.phone_number) == (call_id, "sip", "+14155550123")
    voip = parse_metadata(json.dumps({"call_id": str(call_id), "phone_number": None}))
    assert (voip.call_type, voip.phone_number) == ("voip", None)


@pytest.mark.parametrize("raw", ["", "not json", "[]", "{}", '{"call_id": "nope"}', "null"])
def test_metadata_without_a_call_is_refused(raw: str) -> None:
    with pytest.raises(JobMetadataError):
        parse_metadata(raw)


def sip_error(code: int | None, status: str = "", twirp: str = "resource_exhausted") -> Any:
    meta = {} if code is None else {"sip_status_code": str(code), "sip_status": status}
    return api.SipCallError(twirp, f"sip status {code}", status=429, metadata=meta)


@pytest.mark.parametrize(
    ("error", "reason", "text"),
    [
        (sip_error(486, "Busy Here"), EndReason.BUSY, "SIP 486 Busy Here"),
        (sip_error(600, "Busy Everywhere"), EndReason.BUSY, "SIP 600"),
        (sip_error(480, "Temporarily Unavailable"), EndReason.NO_ANSWER, "SIP 480"),
        (sip_error(408, "Request Timeout"), EndReason.NO_ANSWER, "SIP 408"),
        (sip_error(487, "Request Terminated"), EndReason.NO_ANSWER, "SIP 487"),
        (sip_error(404, "Not Found"), EndReason.REJECTED, "SIP 404 Not Found"),
        (sip_error(403, "Forbidden"), EndReason.REJECTED, "SIP 403"),
        (sip_error(500, "Server Error"), EndReason.REJECTED, "SIP 500"),
        (sip_error(603, "Decline"), EndReason.REJECTED, "SIP 603"),
        (TimeoutError(), EndReason.NO_ANSWER, "nobody answered within 30 s"),
        (
            api.TwirpError("deadline_exceeded", "ringing", status=408),
            EndReason.NO_ANSWER,
            "nobody answered",
        ),
        (
            api.TwirpError("not_found", "trunk not found", status=404),
            EndReason.INTERNAL_ERROR,
            "LiveKit refused the SIP call: not_found trunk not found",
        ),
        (aiohttp.ClientConnectionError(), EndReason.INTERNAL_ERROR, "LiveKit is unreachable"),
        (RuntimeError("boom"), EndReason.INTERNAL_ERROR, "the SIP call failed"),
    ],
)
def test_sip_failures_map_to_end_reasons(error: Exception, reason: EndReason, text: str) -> None:
    outcome = failure_outcome(error, 30)
    assert not outcome.answered
    assert outcome.reason is reason
    assert outcome.error is not None and text in outcome.error


def test_long_sip_reason_phrases_are_cut() -> None:
    outcome = failure_outcome(sip_error(404, "x" * 500 + "\n\r evil"), 30)
    assert outcome.error is not None and len(outcome.error) < 150 and "\n" not in outcome.error


def test_sip_request_fields() -> None:
    call_id = uuid.uuid4()
    request = sip_request(
        call_id=call_id,
        trunk_id="ST_x",
        phone_number="+14155550123",
        room_name=f"call-{call_id}",
        ringing_timeout_seconds=12.5,
        max_duration_seconds=600,
    )
    assert request.ringing_timeout.seconds == 13
    assert request.wait_until_answered and request.hide_phone_number
    assert request.participant_identity == f"sip-{call_id}"
    assert "+14155550123" not in request.participant_name


def worker_settings(**values: Any) -> WorkerSettings:
    base: dict[str, Any] = {
        "livekit_url": "http://127.0.0.1:7880",
        "livekit_api_key": "devkey",
        "livekit_api_secret": "secret",
    }
    return WorkerSettings(_env_file=None, **{**base, **values})


def test_config_problems_name_the_missing_settings() -> None:
    assert config_problems(worker_settings()) == []
    problems = config_problems(
        worker_settings(livekit_url=None, livekit_api_key=None, livekit_api_secret=None)
    )
    assert problems == [
        "LIVEKIT_URL is not set",
        "LIVEKIT_API_KEY is not set",
        "LIVEKIT_API_SECRET is not set",
    ]
    assert "http(s)://" in config_problems(worker_settings(livekit_url="ftp://x"))[0]


class FakeRequest:
    def __init__(self, job_id: str, metadata: str) -> None:
        self.id = job_id
        self.job = SimpleNamespace(id=job_id, metadata=metadata)
        self.answer: tuple[str, Any] | None = None

    async def accept(self, **kwargs: Any) -> None:
        self.answer = ("accept", kwargs)

    async def reject(self, *, terminate: bool = True) -> None:
        self.answer = ("reject", terminate)


def running(*job_ids: str) -> Any:
    return SimpleNamespace(
        active_jobs=[SimpleNamespace(job=SimpleNamespace(id=j)) for j in job_ids]
    )


async def test_capacity_counts_calls_not_cpu() -> None:
    capacity = CallCapacity(2)
    server = running()
    assert capacity.load(server) == 0.0
    assert capacity.load(running("a")) == 0.5
    assert capacity.load(running("a", "b", "c")) == 1.0
    handler = capacity.request_handler(server)
    metadata = json.dumps({"call_id": str(uuid.uuid4()), "call_type": "voip"})

    first, second, third = (FakeRequest(f"AJ_{n}", metadata) for n in range(3))
    offer: Any = handler  # takes a JobRequest; these stand-ins have what it uses
    await offer(first)  # taken: a call starting counts before its process is up
    await offer(second)
    await offer(third)
    assert first.answer is not None and first.answer[0] == "accept"
    assert first.answer[1]["identity"].startswith("agent-")
    assert second.answer is not None and second.answer[0] == "accept"
    assert third.answer == ("reject", False)  # offered to another worker, not terminated

    bad = FakeRequest("AJ_bad", "not json")
    gate: Any = CallCapacity(2).request_handler(server)
    await gate(bad)
    assert bad.answer == ("reject", True)


def test_server_options_come_from_settings() -> None:
    settings = worker_settings(
        livekit_agent_name="studio-workers",
        worker_load_threshold=0.5,
        worker_max_jobs=3,
        worker_job_executor="thread",
        worker_idle_processes=0,
        worker_drain_timeout_seconds=42,
        worker_health_host="127.0.0.2",
        worker_health_port=0,
        worker_max_retry=2,
    )
    server = build_server(settings)
    assert server._agent_name == "studio-workers"
    assert server._ws_url == "ws://127.0.0.1:7880"
    assert server._load_threshold == math.inf  # `jobs`: the capacity gate decides
    assert server.load_fnc is not None and server._request_fnc is not None
    assert server._job_executor_type.value == "thread"
    assert server._num_idle_processes == 0
    assert server._drain_timeout == 42
    assert (server._host, server._port) == ("127.0.0.2", 0)
    assert server._max_retry == 2
    from agent_studio.worker.job import entrypoint

    assert server._entrypoint_fnc is entrypoint
    assert entrypoint.__module__ == "agent_studio.worker.job"  # importable: forkserver


def test_defaults_are_safe_on_a_shared_machine() -> None:
    settings = worker_settings()
    assert settings.worker_health_host == "127.0.0.1"
    assert settings.worker_load_function == "jobs"
    assert settings.worker_drain_timeout_seconds == 600
    cpu = build_server(worker_settings(worker_load_function="cpu", worker_load_threshold=0.5))
    assert cpu.load_fnc is None  # livekit's own CPU measure
    assert cpu._load_threshold == 0.5
