"""Phone numbers: which workflow answers an inbound call to which number."""

from __future__ import annotations

import logging
import uuid
from collections.abc import Sequence

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.core.errors import Conflict, NotFound, Unprocessable, field_error
from agent_studio.core.pagination import PageParams
from agent_studio.core.phone import normalize_e164
from agent_studio.models import PhoneNumber
from agent_studio.phone_numbers.repository import PhoneNumberRepository
from agent_studio.phone_numbers.schemas import PhoneNumberCreate, PhoneNumberUpdate

log = logging.getLogger(__name__)

_DUPLICATE = "this phone number is already registered"


class PhoneNumberService:
    async def numbers_routed_to(self, session: AsyncSession, workflow_slug: str) -> Sequence[str]:
        """The numbers whose inbound calls run this workflow."""
        return await PhoneNumberRepository(session).numbers_routed_to(workflow_slug)

    async def list_page(
        self, session: AsyncSession, params: PageParams
    ) -> tuple[Sequence[PhoneNumber], int]:
        return await PhoneNumberRepository(session).page(
            offset=params.offset, limit=params.page_size
        )

    async def get(self, session: AsyncSession, number_id: uuid.UUID) -> PhoneNumber:
        phone_number = await PhoneNumberRepository(session).get(number_id)
        if phone_number is None:
            raise NotFound("phone number not found")
        return phone_number

    async def create(self, session: AsyncSession, body: PhoneNumberCreate) -> PhoneNumber:
        repository = PhoneNumberRepository(session)
        await self._check_workflow(repository, body.workflow_slug)
        if await repository.get_by_number(body.number) is not None:
            raise Conflict(_DUPLICATE)
        phone_number = PhoneNumber(
            number=body.number, workflow_slug=body.workflow_slug, description=body.description
        )
        try:
            await repository.create(phone_number)
        except IntegrityError:
            # The same number registered by a concurrent request between the check and here.
            raise Conflict(_DUPLICATE) from None
        log.info("phone number registered")
        return phone_number

    async def update(
        self, session: AsyncSession, number_id: uuid.UUID, body: PhoneNumberUpdate
    ) -> PhoneNumber:
        repository = PhoneNumberRepository(session)
        phone_number = await self.get(session, number_id)
        if body.workflow_slug is not None and body.workflow_slug != phone_number.workflow_slug:
            await self._check_workflow(repository, body.workflow_slug)
            phone_number.workflow_slug = body.workflow_slug
        if body.number is not None and body.number != phone_number.number:
            if await repository.get_by_number(body.number) is not None:
                raise Conflict(_DUPLICATE)
            phone_number.number = body.number
        if body.description is not None:
            phone_number.description = body.description
        try:
            await repository.flush()
        except IntegrityError:
            raise Conflict(_DUPLICATE) from None
        return phone_number

    async def delete(self, session: AsyncSession, number_id: uuid.UUID) -> None:
        phone_number = await self.get(session, number_id)
        await PhoneNumberRepository(session).delete(phone_number)
        log.info("phone number deleted")

    async def find_by_number(self, session: AsyncSession, number: str) -> PhoneNumber | None:
        """The routing for an inbound call to `number`, or None.

        SIP often carries the dialled number without the `+` (`14155550123`), so digits alone
        are read as E.164 too. Anything that is not a valid number finds nothing.
        """
        candidate = number.strip()
        if candidate.isdigit():
            candidate = "+" + candidate
        try:
            normalized = normalize_e164(candidate)
        except ValueError:
            return None
        return await PhoneNumberRepository(session).get_by_number(normalized)

    async def _check_workflow(self, repository: PhoneNumberRepository, slug: str) -> None:
        if not await repository.workflow_exists(slug):
            raise Unprocessable(
                field_error(("body", "workflow_slug"), f"no workflow with slug '{slug}'")
            )


phone_number_service = PhoneNumberService()
