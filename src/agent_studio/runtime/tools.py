"""Function tools an agent offers its model: configured `collect` and `webhook` tools, `end_call`,
and one `transfer_to_<agent>` per allowed handoff. All are raw JSON Schema tools.

A tool never breaks the call: a failure becomes an error result the model reads (`ToolError`).
Tool calls are written to the transcript by the recorder, not here.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Protocol

import aiohttp
from livekit.agents import Agent, RunContext, ToolError, function_tool
from livekit.agents.llm import ToolResult

from agent_studio.core.snapshot import CollectTool, ConfiguredTool, Handoff, WebhookTool

log = logging.getLogger(__name__)

MAX_WEBHOOK_RESPONSE_BYTES = 16 * 1024
SIGNATURE_HEADER = "X-Agent-Studio-Signature"
CALL_ID_HEADER = "X-Agent-Studio-Call-Id"
_EMPTY_SCHEMA: dict[str, Any] = {"type": "object", "properties": {}}

END_CALL_DESCRIPTION = (
    "End the call and hang up. Call it when the conversation is over, for example when the "
    "user says goodbye or has nothing more to discuss; not when the user asks to wait or when "
    "their intent is unclear. Do not say anything in the same turn: once it is called you say "
    "one short goodbye and the line is cut."
)
END_CALL_RESULT = "The call is ending. Say one short, friendly goodbye now and nothing else."


class Collector(Protocol):
    async def collect(
        self, call_id: uuid.UUID, tool_name: str, arguments: dict[str, Any]
    ) -> bool: ...


@dataclass(frozen=True, slots=True)
class ToolHost:
    """What the tools of one call need from the running call."""

    call_id: uuid.UUID
    collector: Collector
    http: aiohttp.ClientSession
    webhook_secret: bytes
    hang_up: Callable[[], None]
    """Ends the call (agent_hangup) once the current reply, the goodbye, has been said."""


def sign(secret: bytes, body: bytes) -> str:
    """The signature header value: `sha256=<hex HMAC-SHA256 of the body>`."""
    return "sha256=" + hmac.new(secret, body, hashlib.sha256).hexdigest()


def configured_tools(specs: tuple[ConfiguredTool, ...], host: ToolHost) -> list[Any]:
    return [
        collect_tool(spec, host) if isinstance(spec, CollectTool) else webhook_tool(spec, host)
        for spec in specs
    ]


def _schema(name: str, description: str, parameters: Mapping[str, Any]) -> dict[str, Any]:
    return {"name": name, "description": description, "parameters": dict(parameters)}


def collect_tool(spec: CollectTool, host: ToolHost) -> Any:
    async def collect(raw_arguments: dict[str, Any], context: RunContext[Any]) -> str:
        try:
            await host.collector.collect(host.call_id, spec.name, dict(raw_arguments))
        except Exception:
            log.exception("collect tool could not store its data")
            raise ToolError("The data could not be saved.") from None
        return "Saved."

    return function_tool(collect, raw_schema=_schema(spec.name, spec.description, spec.parameters))


def webhook_tool(spec: WebhookTool, host: ToolHost) -> Any:
    async def call_webhook(raw_arguments: dict[str, Any], context: RunContext[Any]) -> str:
        return await post_webhook(spec, host, dict(raw_arguments))

    return function_tool(
        call_webhook, raw_schema=_schema(spec.name, spec.description, spec.parameters)
    )


async def post_webhook(spec: WebhookTool, host: ToolHost, arguments: dict[str, Any]) -> str:
    """POST {call_id, tool, arguments}, signed; the response body (truncated) for the model."""
    body = json.dumps(
        {"call_id": str(host.call_id), "tool": spec.name, "arguments": arguments},
        separators=(",", ":"),
        ensure_ascii=False,
    ).encode()
    ours = {
        "Content-Type": "application/json",
        SIGNATURE_HEADER: sign(host.webhook_secret, body),
        CALL_ID_HEADER: str(host.call_id),
    }
    reserved = {name.lower() for name in ours}
    headers = {k: v for k, v in spec.headers.items() if k.lower() not in reserved} | ours
    timeout = aiohttp.ClientTimeout(total=spec.timeout_seconds)
    try:
        async with host.http.post(
            spec.url, data=body, headers=headers, timeout=timeout, allow_redirects=False
        ) as response:
            payload = await response.content.read(MAX_WEBHOOK_RESPONSE_BYTES)
            status = response.status
    except TimeoutError:
        log.warning("webhook tool timed out")
        raise ToolError(f"The {spec.name} service did not answer in time.") from None
    except (aiohttp.ClientError, OSError, ValueError):
        log.warning("webhook tool could not reach its service")
        raise ToolError(f"The {spec.name} service could not be reached.") from None
    if not 200 <= status < 300:
        log.warning("webhook tool got an error status", extra={"status": status})
        raise ToolError(f"The {spec.name} service failed (HTTP {status}).")
    return payload.decode("utf-8", errors="replace") or "Done."


def end_call_tool(host: ToolHost) -> Any:
    async def end_call(raw_arguments: dict[str, Any], context: RunContext[Any]) -> str:
        # The goodbye is the tool reply, generated in this same speech; hang up after it.
        context.speech_handle.add_done_callback(lambda _: host.hang_up())
        return END_CALL_RESULT

    return function_tool(
        end_call, raw_schema=_schema("end_call", END_CALL_DESCRIPTION, _EMPTY_SCHEMA)
    )


NextAgent = Callable[[str, RunContext[Any]], Agent]
"""Builds the agent a handoff switches to, given its name and the running tool's context."""


def handoff_tool(handoff: Handoff, next_agent: NextAgent) -> Any:
    description = handoff.description or f"Transfer the call to {handoff.target}."

    async def transfer(raw_arguments: dict[str, Any], context: RunContext[Any]) -> Any:
        agent = next_agent(handoff.target, context)
        # No reply from the old agent: the new one speaks first, with its own instructions.
        return agent, ToolResult(f"Transferred to {handoff.target}.", reply_required=False)

    return function_tool(
        transfer, raw_schema=_schema(handoff.tool_name, description, _EMPTY_SCHEMA)
    )
