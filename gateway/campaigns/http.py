"""Campaigns API (admin): definitions as versions, rollback, preview, the rule field catalogue."""

from __future__ import annotations

from datetime import datetime

from aiohttp import web
from pydantic import BaseModel, ConfigDict, Field

from gateway.campaigns import store
from gateway.campaigns.definition import DefinitionError, ValidCampaign, validate_definition
from gateway.campaigns.preview import preview
from gateway.core.appkeys import CLOCK, DATABASE, SETTINGS
from gateway.core.clock import TimeInputError, isoformat_z, parse_time_input
from gateway.core.db.models import Campaign, CampaignVersion
from gateway.core.http.auth import principal_of
from gateway.core.http.endpoints import endpoint, json_response, read_body, read_json
from gateway.core.http.problems import InvalidInput, NotFound
from gateway.core.rules import catalogue


class CampaignSummary(BaseModel):
    """A campaign in the list."""

    name: str
    current_version: int
    enabled: bool
    description: str
    schedule: str
    last_run_at: str | None
    next_run_at: str | None
    updated_at: str | None


class CampaignList(BaseModel):
    """Every campaign, by name."""

    items: list[CampaignSummary]
    next_cursor: str | None = None


class CampaignOut(BaseModel):
    """The current definition with its version and schedule state."""

    name: str
    version: int
    enabled: bool
    definition: dict[str, object]
    created_at: str | None
    created_by: str | None
    last_run_at: str | None
    next_run_at: str | None
    new_version: bool | None = Field(
        default=None, description="on a save: false when the definition equalled the current one"
    )


class VersionOut(BaseModel):
    """One saved version."""

    version: int
    created_at: str | None
    created_by: str | None
    current: bool
    definition: dict[str, object]


class VersionList(BaseModel):
    """Versions, newest first."""

    items: list[VersionOut]
    next_cursor: str | None = None


class RollbackIn(BaseModel):
    """Which version to make current again (saved as a new version)."""

    model_config = ConfigDict(extra="forbid")

    version: int = Field(ge=1)


class PreviewIn(BaseModel):
    """When to preview at (default: now), and optionally an unsaved definition to dry-run."""

    model_config = ConfigDict(extra="forbid")

    as_of: str | None = Field(
        default=None, description="ISO 8601, or a date in SWITCHBOARD_TIMEZONE"
    )
    definition: dict[str, object] | None = Field(
        default=None,
        description="an edited definition to preview without saving it (its name must be "
        "the path's); absent: the current saved version",
    )


class FieldList(BaseModel):
    """The rule field catalogue."""

    items: list[dict[str, object]]


def _out(
    campaign: Campaign, version: CampaignVersion, new: bool | None = None
) -> dict[str, object]:
    return CampaignOut(
        name=campaign.name,
        version=version.version,
        enabled=campaign.enabled,
        definition=dict(version.definition),
        created_at=isoformat_z(version.created_at),
        created_by=version.created_by,
        last_run_at=isoformat_z(campaign.last_run_at),
        next_run_at=isoformat_z(campaign.next_run_at),
        new_version=new,
    ).model_dump()


def _definition_problem(exc: DefinitionError) -> InvalidInput:
    return InvalidInput(str(exc), errors=[{"field": exc.path, "message": exc.message}])


@endpoint(
    "GET",
    "/api/campaigns",
    summary="Campaigns with their current version and schedule state",
    roles=["admin"],
    response=CampaignList,
    tags=["campaigns"],
)
async def list_campaigns(request: web.Request) -> web.Response:
    """Every campaign (there are few: no paging needed, `next_cursor` is always null)."""
    items = []
    async with request.app[DATABASE].sessions() as session:
        for campaign in await store.list_campaigns(session):
            _, version = await store.current(session, campaign.name)
            definition = version.definition
            items.append(
                CampaignSummary(
                    name=campaign.name,
                    current_version=campaign.current_version,
                    enabled=campaign.enabled,
                    description=str(definition.get("description", "")),
                    schedule=str(definition.get("schedule", "")),
                    last_run_at=isoformat_z(campaign.last_run_at),
                    next_run_at=isoformat_z(campaign.next_run_at),
                    updated_at=isoformat_z(campaign.updated_at),
                ).model_dump()
            )
    return json_response({"items": items, "next_cursor": None})


@endpoint(
    "GET",
    "/api/campaigns/{name}",
    summary="A campaign's current definition",
    roles=["admin"],
    response=CampaignOut,
    tags=["campaigns"],
)
async def get_campaign(request: web.Request) -> web.Response:
    """The current version, or 404."""
    name = request.match_info["name"]
    async with request.app[DATABASE].sessions() as session:
        try:
            campaign, version = await store.current(session, name)
        except store.CampaignNotFound as exc:
            raise NotFound(str(exc)) from exc
    return json_response(_out(campaign, version))


@endpoint(
    "PUT",
    "/api/campaigns/{name}",
    summary="Save a definition as a new version; refused whole, naming the error's path",
    roles=["admin"],
    response=CampaignOut,
    tags=["campaigns"],
)
async def put_campaign(request: web.Request) -> web.Response:
    """422 with `errors: [{field: <exact path>, message}]` when invalid; nothing saved then."""
    name = request.match_info["name"]
    raw = await read_json(request)
    if isinstance(raw, dict) and raw.get("name") != name:
        raise InvalidInput(
            f"name: the body names {raw.get('name')!r} but the path {name!r}",
            errors=[{"field": "name", "message": "must equal the name in the path"}],
        )
    principal = principal_of(request)
    who = f"{principal.role}:{principal.agent_id or principal.token_id}"
    try:
        saved = await store.save_definition(
            request.app[DATABASE], raw, who, request.app[CLOCK].now()
        )
    except DefinitionError as exc:
        raise _definition_problem(exc) from exc
    return json_response(_out(saved.campaign, saved.version, saved.created))


@endpoint(
    "GET",
    "/api/campaigns/{name}/versions",
    summary="Every saved version, newest first, with who saved it and when",
    roles=["admin"],
    response=VersionList,
    tags=["campaigns"],
)
async def list_versions(request: web.Request) -> web.Response:
    """Versions of a campaign, or 404."""
    name = request.match_info["name"]
    async with request.app[DATABASE].sessions() as session:
        try:
            campaign, _ = await store.current(session, name)
            rows = await store.versions(session, name)
        except store.CampaignNotFound as exc:
            raise NotFound(str(exc)) from exc
    items = [
        VersionOut(
            version=row.version,
            created_at=isoformat_z(row.created_at),
            created_by=row.created_by,
            current=row.version == campaign.current_version,
            definition=dict(row.definition),
        ).model_dump()
        for row in rows
    ]
    return json_response({"items": items, "next_cursor": None})


@endpoint(
    "POST",
    "/api/campaigns/{name}/rollback",
    summary="Make an older version current again (saved as a new version)",
    roles=["admin"],
    body=RollbackIn,
    response=CampaignOut,
    tags=["campaigns"],
)
async def rollback_campaign(request: web.Request) -> web.Response:
    """404 for an unknown campaign or version."""
    name = request.match_info["name"]
    given = await read_body(request, RollbackIn)
    principal = principal_of(request)
    who = f"{principal.role}:{principal.agent_id or principal.token_id}"
    try:
        async with request.app[DATABASE].transaction() as session:
            saved = await store.rollback(
                session, name, given.version, who, request.app[CLOCK].now()
            )
    except (store.CampaignNotFound, store.VersionNotFound) as exc:
        raise NotFound(str(exc)) from exc
    return json_response(_out(saved.campaign, saved.version, saved.created))


@endpoint(
    "POST",
    "/api/campaigns/{name}/preview",
    summary="Dry run (saved version or posted draft): who, first step per arm, cost; sends nothing",
    roles=["admin"],
    body=PreviewIn,
    tags=["campaigns"],
)
async def preview_campaign(request: web.Request) -> web.Response:
    """The preview of the current version, or of a posted draft, at `as_of` (default now).

    A draft is validated like a save (422 naming `definition.<exact path>`) but nothing is
    written: the editor counts the audience of an edit before anyone saves it.
    """
    name = request.match_info["name"]
    given = await read_body(request, PreviewIn) if request.can_read_body else PreviewIn()
    settings = request.app[SETTINGS]
    as_of: datetime = request.app[CLOCK].now()
    if given.as_of is not None:
        try:
            as_of = parse_time_input(given.as_of, settings.timezone)
        except TimeInputError as exc:
            raise InvalidInput(
                f"as_of: {exc}", errors=[{"field": "as_of", "message": str(exc)}]
            ) from exc
    draft = _valid_draft(name, given.definition) if given.definition is not None else None
    async with request.app[DATABASE].sessions() as session:
        version: int | None = None
        if draft is None:
            try:
                _, saved = await store.current(session, name)
            except store.CampaignNotFound as exc:
                raise NotFound(str(exc)) from exc
            draft, version = validate_definition(saved.definition), saved.version
        result = await preview(session, draft, as_of, settings)
    body = result.as_json()
    body["version"] = version
    body["draft"] = given.definition is not None
    return json_response(body)


def _valid_draft(name: str, raw: dict[str, object]) -> ValidCampaign:
    """A posted definition checked as a save would check it; paths under `definition.`."""
    if raw.get("name") != name:
        raise InvalidInput(
            f"definition.name: the body names {raw.get('name')!r} but the path {name!r}",
            errors=[{"field": "definition.name", "message": "must equal the name in the path"}],
        )
    try:
        return validate_definition(raw)
    except DefinitionError as exc:
        path = f"definition.{exc.path}"
        raise InvalidInput(
            f"{path}: {exc.message}", errors=[{"field": path, "message": exc.message}]
        ) from exc


@endpoint(
    "GET",
    "/api/rules/fields",
    summary="The fields a rule may name, with types, operators and descriptions",
    roles=["admin"],
    response=FieldList,
    tags=["campaigns"],
)
async def rule_fields(request: web.Request) -> web.Response:
    """The catalogue the rule editor builds its form from."""
    return json_response({"items": catalogue()})
