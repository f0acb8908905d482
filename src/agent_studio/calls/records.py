"""A new call's row: its snapshot built, its deadlines set, or failed when a provider is missing."""

from __future__ import annotations

import uuid
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import timedelta
from typing import Any, NamedTuple

from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.calls.snapshot import SnapshotError, build_snapshot, template_context
from agent_studio.calls.states import CallStatus, CallType, EndReason
from agent_studio.core.errors import Unprocessable
from agent_studio.core.snapshot import DEFAULT_CALL_SETTINGS, CallSettings, CallSnapshot
from agent_studio.core.timeutil import utcnow
from agent_studio.models import Agent, Call, Workflow
from agent_studio.provider_keys.service import MissingProviderKey

# A phone call's transport gives up ringing at the connect timeout itself (CANCEL, no_answer);
# the sweeper's deadline is only the backstop, so it comes later.
SIP_DEADLINE_GRACE_SECONDS = 15


@dataclass(frozen=True, slots=True)
class CallParty:
    """Who the call is with and what it carries."""

    direction: str
    call_type: str
    phone_number: str | None
    user_id: str | None
    user_context: dict[str, Any]
    metadata: dict[str, Any]


class NewCall(NamedTuple):
    call: Call
    failure: str | None
    settings: CallSettings
    """The workflow's settings as snapshotted (the defaults for a call that failed)."""


async def new_call(
    session: AsyncSession,
    workflow: Workflow | None,
    agents: Sequence[Agent],
    party: CallParty,
    *,
    idempotency_key: str | None = None,
    request_hash: str | None = None,
) -> NewCall:
    """The call to insert, the provider error it failed with (None: ready to start), and the
    settings it runs with.

    A template that cannot be rendered is the request's fault (422, nothing recorded); a
    provider without a key records the call as failed, so it shows in the call list.
    """
    call_id = uuid.uuid4()
    render = template_context(call_id, party.phone_number, party.user_context, party.metadata)
    failure: str | None = None
    snapshot: CallSnapshot | None = None
    try:
        snapshot = await build_snapshot(session, workflow, agents, render)
    except SnapshotError as exc:
        raise Unprocessable(str(exc)) from None
    except MissingProviderKey as exc:
        failure = str(exc)
    settings = snapshot.settings if snapshot is not None else DEFAULT_CALL_SETTINGS
    deadline = settings.connect_timeout_seconds
    if party.call_type == CallType.SIP.value:
        deadline += SIP_DEADLINE_GRACE_SECONDS
    now = utcnow()
    call = Call(
        id=call_id,
        workflow_id=workflow.id if workflow else None,
        workflow_slug=workflow.slug if workflow else None,
        user_id=party.user_id,
        status=CallStatus.PENDING.value,
        direction=party.direction,
        call_type=party.call_type,
        phone_number=party.phone_number,
        room_name=f"call-{call_id}",
        user_context=party.user_context,
        metadata_=party.metadata,
        # A call that failed at creation is stored with no snapshot ({}): it never runs.
        snapshot=snapshot.to_stored() if snapshot is not None else {},
        connect_deadline=now + timedelta(seconds=deadline),
        idempotency_key=idempotency_key,
        request_hash=request_hash,
        created_at=now,
        updated_at=now,
    )
    if failure is not None:
        call.status, call.end_reason = CallStatus.FAILED.value, EndReason.PROVIDER_ERROR.value
        call.error, call.ended_at = failure, now
    return NewCall(call, failure, settings)
