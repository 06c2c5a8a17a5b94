"""Campaign versions and their journeys, loaded once per run or tick.

Enrollments keep the campaign version they started on; new ones take the current one.
"""

from __future__ import annotations

from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession

from gateway.campaigns.definition import ValidCampaign, validate_definition
from gateway.campaigns.journey import Journey, journey_for
from gateway.core.db.models import Campaign, CampaignVersion, Enrollment


class CampaignVersions:
    """Campaign versions and their journeys, loaded once per run or tick."""

    def __init__(self) -> None:
        self._valid: dict[tuple[str, int], tuple[str, ValidCampaign]] = {}
        self._journeys: dict[tuple[str, int, str], Journey] = {}

    async def journey(self, session: AsyncSession, enrollment: Enrollment) -> Journey:
        key = (enrollment.campaign_id, enrollment.version, enrollment.arm or "default")
        if key not in self._journeys:
            _, valid = await self.valid(session, enrollment.campaign_id, enrollment.version)
            self._journeys[key] = journey_for(enrollment.campaign_id, valid, key[2])
        return self._journeys[key]

    async def valid(
        self, session: AsyncSession, campaign_id: str, version: int
    ) -> tuple[str, ValidCampaign]:
        key = (campaign_id, version)
        if key not in self._valid:
            row = (
                await session.execute(
                    select(Campaign.name, CampaignVersion.definition)
                    .join(CampaignVersion, CampaignVersion.campaign_id == Campaign.id)
                    .where(Campaign.id == campaign_id, CampaignVersion.version == version)
                )
            ).one()
            self._valid[key] = (row.name, validate_definition(row.definition))
        return self._valid[key]
