"""Campaign versions: every save is a new version; YAML directories load as versions.

A definition is stored as it was written (JSON), so the editor shows people their own
text back. Whether a save changes anything is decided on the validated, normalised form:
a file re-loaded unchanged, or the same definition saved with its defaults spelled out,
creates no new version.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any, NamedTuple

import yaml
from sqlalchemy import func, select
from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession

from channels.templates import validate_template
from gateway.campaigns.definition import DefinitionError, ValidCampaign, validate_definition
from gateway.core.db.dialect import lock_rows
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign, CampaignVersion, Template
from gateway.core.db.types import new_id

DEFAULT_DIRECTORY = Path("config/campaigns")
TEMPLATES_DIRECTORY = "templates"  # beside the campaigns directory: config/templates


class CampaignNotFound(LookupError):
    """No campaign with that name."""


class VersionNotFound(LookupError):
    """The campaign has no such version."""


class LoadError(OSError):
    """A directory to load from does not exist or cannot be read."""


class Saved(NamedTuple):
    """The outcome of a save: the campaign, its current version, and whether it is new."""

    campaign: Campaign
    version: CampaignVersion
    created: bool


@dataclass
class LoadReport:
    """What `load_directory` did, file by file."""

    loaded: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    refused: list[str] = field(default_factory=list)

    @property
    def ok(self) -> bool:
        """True when no file was refused."""
        return not self.refused


def _as_json(raw: object) -> Any:
    """The definition as JSON data; YAML can hold dates and other things JSON cannot."""
    try:
        return json.loads(json.dumps(raw, allow_nan=False))
    except (TypeError, ValueError) as exc:
        raise DefinitionError("campaign", f"not plain JSON data: {exc}") from exc


def normalised(valid: ValidCampaign) -> dict[str, object]:
    """The definition with every default filled in: what "identical" compares."""
    return valid.definition.model_dump(mode="json")


async def _campaign_row(session: AsyncSession, name: str, *, lock: bool) -> Campaign | None:
    query = select(Campaign).where(Campaign.name == name)
    if lock:
        query = lock_rows(query, session)
    return (await session.scalars(query)).one_or_none()


async def _version_row(session: AsyncSession, campaign: Campaign, version: int) -> CampaignVersion:
    row = (
        await session.scalars(
            select(CampaignVersion).where(
                CampaignVersion.campaign_id == campaign.id, CampaignVersion.version == version
            )
        )
    ).one_or_none()
    if row is None:
        raise VersionNotFound(f"campaign {campaign.name} has no version {version}")
    return row


async def save_version(
    session: AsyncSession, raw: object, created_by: str | None, now: datetime
) -> Saved:
    """Validate and append a version (DefinitionError: nothing written); identical → no new one."""
    data = _as_json(raw)
    valid = validate_definition(data)
    name = valid.definition.name
    campaign = await _campaign_row(session, name, lock=True)
    if campaign is None:
        campaign = Campaign(
            id=new_id("cmp"), name=name, current_version=0, enabled=valid.definition.enabled
        )
        campaign.created_at = now
        campaign.updated_at = now
        session.add(campaign)
        await session.flush()
    else:
        latest = await _version_row(session, campaign, campaign.current_version)
        if normalised(validate_definition(latest.definition)) == normalised(valid):
            return Saved(campaign, latest, False)
    number = (
        await session.scalar(
            select(func.coalesce(func.max(CampaignVersion.version), 0)).where(
                CampaignVersion.campaign_id == campaign.id
            )
        )
        or 0
    ) + 1
    version = CampaignVersion(
        id=new_id("cmv"),
        campaign_id=campaign.id,
        version=number,
        definition=data,
        created_at=now,
        created_by=created_by,
    )
    session.add(version)
    campaign.current_version = number
    campaign.enabled = valid.definition.enabled
    campaign.updated_at = now
    await session.flush()
    return Saved(campaign, version, True)


async def save_definition(
    database: Database, raw: object, created_by: str | None, now: datetime
) -> Saved:
    """`save_version` in its own transaction, retried once when two first saves race."""
    for attempt in (1, 2):
        try:
            async with database.transaction() as session:
                return await save_version(session, raw, created_by, now)
        except IntegrityError:
            if attempt == 2:
                raise
    raise AssertionError("unreachable")


async def current(session: AsyncSession, name: str) -> tuple[Campaign, CampaignVersion]:
    """The campaign and its current version (CampaignNotFound otherwise)."""
    campaign = await _campaign_row(session, name, lock=False)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {name}")
    return campaign, await _version_row(session, campaign, campaign.current_version)


async def current_valid(session: AsyncSession, name: str) -> ValidCampaign:
    """The current definition, validated (stored ones always were)."""
    _, version = await current(session, name)
    return validate_definition(version.definition)


async def versions(session: AsyncSession, name: str) -> list[CampaignVersion]:
    """Every version of a campaign, newest first."""
    campaign = await _campaign_row(session, name, lock=False)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {name}")
    rows = await session.scalars(
        select(CampaignVersion)
        .where(CampaignVersion.campaign_id == campaign.id)
        .order_by(CampaignVersion.version.desc())
    )
    return list(rows)


async def rollback(
    session: AsyncSession, name: str, version: int, who: str | None, now: datetime
) -> Saved:
    """Make an old definition current again, as a new version (history is never rewritten)."""
    campaign = await _campaign_row(session, name, lock=True)
    if campaign is None:
        raise CampaignNotFound(f"no campaign {name}")
    old = await _version_row(session, campaign, version)
    return await save_version(session, old.definition, who, now)


async def list_campaigns(session: AsyncSession) -> list[Campaign]:
    """Every campaign, by name."""
    return list(await session.scalars(select(Campaign).order_by(Campaign.name)))


def _read_yaml(path: Path) -> Any:
    try:
        return yaml.safe_load(path.read_text(encoding="utf-8-sig"))
    except (OSError, UnicodeDecodeError) as exc:
        raise DefinitionError("file", f"cannot be read: {exc}") from exc
    except yaml.YAMLError as exc:
        raise DefinitionError("file", f"not valid YAML: {exc}") from exc


def _yaml_files(directory: Path) -> list[Path]:
    if not directory.is_dir():
        raise LoadError(f"{directory} is not a directory")
    return sorted([*directory.glob("*.yaml"), *directory.glob("*.yml")])


async def save_template(session: AsyncSession, raw: object, now: datetime) -> bool:
    """Create or update a template from a YAML document; False when it was unchanged."""
    if not isinstance(raw, dict):
        raise DefinitionError("template", "a template is a mapping")
    name, channel = raw.get("name"), raw.get("channel")
    if not isinstance(name, str) or not name:
        raise DefinitionError("name", "a template needs a name")
    if channel not in ("sms", "email", "voice"):
        raise DefinitionError("channel", "one of sms, email, voice")
    unknown = set(raw) - {"name", "channel", "subject", "body", "variables"}
    if unknown:
        raise DefinitionError(sorted(unknown)[0], "unknown key")
    subject, body, variables = (
        raw.get("subject") or {},
        raw.get("body") or {},
        raw.get("variables") or [],
    )
    if (
        not isinstance(subject, dict)
        or not isinstance(body, dict)
        or not isinstance(variables, list)
    ):
        raise DefinitionError("template", "subject and body are mappings, variables a list")
    issues = validate_template(channel, subject, body, variables)
    if issues:
        raise DefinitionError(issues[0].field, issues[0].message)
    row = await session.get(Template, name)
    if row is None:
        row = Template(name=name, channel=channel, version=0, created_at=now)
        session.add(row)
    elif row.channel != channel:
        raise DefinitionError("channel", f"template {name} is for {row.channel}")
    elif (row.subject, row.body, row.variables) == (subject, body, variables):
        return False
    row.subject, row.body, row.variables = dict(subject), dict(body), list(variables)
    row.version += 1
    row.updated_at = now
    return True


_Parsed = tuple[str, Path, Any]  # kind, file, YAML data or the DefinitionError reading it


def _read_all(path: Path, templates: Path | None) -> list[_Parsed]:
    """Every file to load, read and parsed (blocking: runs in a thread)."""
    campaign_files = _yaml_files(path)
    templates = templates if templates is not None else path.parent / TEMPLATES_DIRECTORY
    template_files = _yaml_files(templates) if templates.is_dir() else []
    parsed: list[_Parsed] = []
    for kind, files in (("template", template_files), ("campaign", campaign_files)):
        for file in files:
            try:
                parsed.append((kind, file, _read_yaml(file)))
            except DefinitionError as exc:
                parsed.append((kind, file, exc))
    return parsed


async def load_directory(
    database: Database, path: Path, now: datetime, *, templates: Path | None = None
) -> LoadReport:
    """Templates (`<path>/../templates` by default) then every campaign file, as versions.

    Each file is saved in its own transaction: a broken one is refused whole (its path
    and the error's path reported) and the others still load.
    """
    report = LoadReport()
    for kind, file, raw in await asyncio.to_thread(_read_all, path, templates):
        try:
            if isinstance(raw, DefinitionError):
                raise raw
            if kind == "template":
                async with database.transaction() as session:
                    changed = await save_template(session, raw, now)
            else:
                changed = (await save_definition(database, raw, f"file:{file.name}", now)).created
        except DefinitionError as exc:
            report.refused.append(f"{file}: {exc.path}: {exc.message}")
            continue
        (report.loaded if changed else report.unchanged).append(str(file))
    return report


async def load_if_empty(database: Database, path: Path, now: datetime) -> LoadReport | None:
    """On first start: load the shipped definitions when there are no campaigns at all."""
    async with database.sessions() as session:
        count = await session.scalar(select(func.count()).select_from(Campaign))
    if count or not await asyncio.to_thread(path.is_dir):
        return None
    return await load_directory(database, path, now)
