"""SQL for phone numbers, and the one workflow lookup their validation needs."""

from __future__ import annotations

import uuid
from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from agent_studio.models import PhoneNumber, Workflow


class PhoneNumberRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def page(self, *, offset: int, limit: int) -> tuple[Sequence[PhoneNumber], int]:
        total = await self.session.scalar(select(func.count()).select_from(PhoneNumber))
        statement = (
            select(PhoneNumber)
            .order_by(PhoneNumber.created_at, PhoneNumber.id)
            .offset(offset)
            .limit(limit)
        )
        return (await self.session.scalars(statement)).all(), total or 0

    async def get(self, number_id: uuid.UUID) -> PhoneNumber | None:
        return await self.session.get(PhoneNumber, number_id)

    async def get_by_number(self, number: str) -> PhoneNumber | None:
        statement = select(PhoneNumber).where(PhoneNumber.number == number)
        return (await self.session.scalars(statement)).first()

    async def numbers_routed_to(self, slug: str) -> Sequence[str]:
        statement = select(PhoneNumber.number).where(PhoneNumber.workflow_slug == slug)
        return (await self.session.scalars(statement.order_by(PhoneNumber.number))).all()

    async def workflow_exists(self, slug: str) -> bool:
        # A read of the workflows table, not of the workflows domain: routing needs only the slug.
        statement = select(Workflow.id).where(Workflow.slug == slug).limit(1)
        return (await self.session.scalar(statement)) is not None

    async def create(self, phone_number: PhoneNumber) -> PhoneNumber:
        self.session.add(phone_number)
        await self.session.flush()
        return phone_number

    async def flush(self) -> None:
        await self.session.flush()

    async def delete(self, phone_number: PhoneNumber) -> None:
        await self.session.delete(phone_number)
        await self.session.flush()
