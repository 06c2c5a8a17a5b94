"""Campaign versions, YAML loading, preview and arms, on SQLite and PostgreSQL."""

from __future__ import annotations

import copy
import math
import shutil
from datetime import date, timedelta
from pathlib import Path
from typing import Any

import pytest
from sqlalchemy import func, select

from channels.segments import count_segments
from gateway.campaigns import store
from gateway.campaigns.arms import HOLDOUT, assign_arm
from gateway.campaigns.definition import DefinitionError, Experiment, validate_definition
from gateway.campaigns.preview import ASSUMED_CALL_MINUTES, preview
from gateway.core.db.engine import Database
from gateway.core.db.models import Campaign, Customer, Template
from gateway.core.rules import segment
from gateway.settings import Settings
from tests.support.campaigns import BASE, NOW, SEEDS, add_customers, counts
from tests.support.cli_process import run_cli

SEED_NAMES = {"payment-reminder", "reactivation", "monitoring", "lost-customers", "recession"}
CLI_MAIN = "import sys, gateway.cli as c\nsys.exit(c.main(sys.argv[1:]))"


def definition(**changes: Any) -> dict[str, Any]:
    """A copy of BASE with top-level keys replaced."""
    data = copy.deepcopy(BASE)
    data.update(changes)
    return data


async def test_saves_versions_and_skips_identical(database: Database) -> None:
    first = await store.save_definition(database, definition(), "alice", NOW)
    assert (first.version.version, first.created, first.campaign.current_version) == (1, True, 1)

    # The same definition with its defaults written out is not a change.
    spelled = definition(description="", enabled=True, occurrence="once")
    again = await store.save_definition(database, spelled, "bob", NOW + timedelta(hours=1))
    assert (again.version.version, again.created) == (1, False)

    changed = definition(schedule="0 12 * * *", enabled=False)
    second = await store.save_definition(database, changed, "bob", NOW + timedelta(hours=2))
    assert (second.version.version, second.created) == (2, True)
    assert second.campaign.enabled is False

    async with database.sessions() as session:
        campaign, version = await store.current(session, "spring")
        history = await store.versions(session, "spring")
    assert campaign.current_version == 2 and version.definition["schedule"] == "0 12 * * *"
    assert version.definition == changed  # stored as written
    assert [(v.version, v.created_by) for v in history] == [(2, "bob"), (1, "alice")]
    assert history[1].created_at == NOW
    assert await counts(database) == (1, 2)


async def test_rollback_saves_the_old_definition_as_a_new_version(database: Database) -> None:
    await store.save_definition(database, definition(), "alice", NOW)
    await store.save_definition(database, definition(schedule="0 12 * * *"), "alice", NOW)
    async with database.transaction() as session:
        saved = await store.rollback(session, "spring", 1, "carol", NOW + timedelta(days=1))
    assert (saved.version.version, saved.created, saved.version.created_by) == (3, True, "carol")
    assert saved.version.definition == definition()
    async with database.transaction() as session:
        # Rolling back to what is already current changes nothing.
        same = await store.rollback(session, "spring", 1, "carol", NOW + timedelta(days=2))
    assert (same.version.version, same.created) == (3, False)
    async with database.transaction() as session:
        with pytest.raises(store.VersionNotFound):
            await store.rollback(session, "spring", 9, "carol", NOW)
        with pytest.raises(store.CampaignNotFound):
            await store.rollback(session, "autumn", 1, "carol", NOW)
    assert await counts(database) == (1, 3)


BROKEN: list[tuple[dict[str, Any] | list[Any], str]] = [
    ({k: v for k, v in BASE.items() if k != "schedule"}, "schedule"),
    (definition(schedule="every day"), "schedule"),
    (
        definition(audience={"all": [{"field": "nope", "op": "==", "value": 1}]}),
        "audience.all[0].field",
    ),
    (
        definition(
            steps=[
                *BASE["steps"],
                {"id": "b", "type": "branch", "cases": [{"outcome": "replied", "goto": "zz"}]},
            ]
        ),
        "steps[1].cases[0].goto",
    ),
    (
        definition(steps=[*BASE["steps"], {"id": "hello", "type": "wait", "duration": "3d"}]),
        "steps[1].id",
    ),
    (definition(steps=[{**BASE["steps"][0], "channel": "fax"}]), "steps[0].channel"),
    (definition(steps=[]), "steps"),
    (definition(audience={"field": "status", "op": "==", "value": date(2026, 1, 1)}), "campaign"),
    (["not", "a", "mapping"], "campaign"),
]


@pytest.mark.parametrize(("raw", "path"), BROKEN)
async def test_refusals_name_their_path_and_write_nothing(
    database: Database, raw: Any, path: str
) -> None:
    with pytest.raises(DefinitionError) as first:
        await store.save_definition(database, raw, "alice", NOW)
    assert first.value.path == path
    assert await counts(database) == (0, 0)
    # Refused against an existing campaign too: the current version stays.
    await store.save_definition(database, definition(), "alice", NOW)
    with pytest.raises(DefinitionError) as second:
        await store.save_definition(database, raw, "alice", NOW)
    assert second.value.path == path
    assert await counts(database) == (1, 1)


async def test_seed_directory_loads_every_file_then_nothing_changes(database: Database) -> None:
    report = await store.load_directory(database, SEEDS, NOW)
    assert report.ok, report.refused
    assert {Path(f).stem for f in report.loaded} >= SEED_NAMES
    async with database.sessions() as session:
        names = {c.name for c in await store.list_campaigns(session)}
        templates = set(await session.scalars(select(Template.name)))
    assert names == SEED_NAMES
    assert templates >= {"payment-reminder", "reactivation-bonus", "reactivation-thanks"}
    again = await store.load_directory(database, SEEDS, NOW + timedelta(days=1))
    assert again.ok and not again.loaded and len(again.unchanged) == len(report.loaded)
    assert await counts(database) == (len(SEED_NAMES), len(SEED_NAMES))


def broken_tree(tmp_path: Path) -> Path:
    """A campaigns dir with one good seed, one broken definition and a broken template."""
    campaigns, templates = tmp_path / "campaigns", tmp_path / "templates"
    campaigns.mkdir()
    templates.mkdir()
    shutil.copy(SEEDS / "recession.yaml", campaigns / "recession.yaml")
    (campaigns / "bad.yaml").write_text(
        "name: bad\nschedule: '0 10 * * *'\naudience: {field: status, op: '==', value: warm}\n"
        "steps:\n  - {id: a, type: wait, duration: forever}\n",
        encoding="utf-8",
    )
    (campaigns / "garbled.yaml").write_text("name: [unclosed\n", encoding="utf-8")
    (templates / "nobody.yaml").write_text(
        "name: nobody\nchannel: sms\nbody: {uk: 'Hi {{ nickname }}'}\n", encoding="utf-8"
    )
    return campaigns


async def test_broken_files_are_refused_with_their_paths(
    database: Database, tmp_path: Path
) -> None:
    campaigns = broken_tree(tmp_path)
    report = await store.load_directory(database, campaigns, NOW)
    assert not report.ok and len(report.refused) == 3
    bad = next(r for r in report.refused if "bad.yaml" in r)
    assert bad.startswith(f"{campaigns / 'bad.yaml'}: steps[0].duration: ")
    assert any(
        r.startswith(f"{campaigns / 'garbled.yaml'}: file: not valid YAML") for r in report.refused
    )
    assert any(f"{tmp_path / 'templates' / 'nobody.yaml'}: body.uk:" in r for r in report.refused)
    assert [Path(f).name for f in report.loaded] == ["recession.yaml"]
    async with database.sessions() as session:
        assert {c.name for c in await store.list_campaigns(session)} == {"recession"}
        assert await session.get(Template, "nobody") is None
    with pytest.raises(store.LoadError):
        await store.load_directory(database, tmp_path / "missing", NOW)


async def test_load_if_empty_only_on_first_start(database: Database) -> None:
    first = await store.load_if_empty(database, SEEDS, NOW)
    assert first is not None and first.ok
    assert await store.load_if_empty(database, SEEDS, NOW) is None
    assert await counts(database) == (len(SEED_NAMES), len(SEED_NAMES))


async def segment_ids(database: Database, valid: Any, settings: Settings) -> set[str]:
    """What `segment()` selects for the audience at NOW."""
    async with database.sessions() as session:
        query = segment(session, valid.audience, NOW, timezone=settings.timezone)
        return set(await session.scalars(query))


async def test_preview_of_payment_reminder_counts_segments_and_cost(
    database: Database, settings: Settings
) -> None:
    await add_customers(database)
    assert (await store.load_directory(database, SEEDS, NOW)).ok
    async with database.sessions() as session:
        valid = await store.current_valid(session, "payment-reminder")
        template = await session.get(Template, "payment-reminder")
        result = await preview(session, valid, NOW, settings, sample_size=5)
    expected = await segment_ids(database, valid, settings)
    assert expected and result.count == len(expected)
    assert [c["id"] for c in result.sample] == sorted(expected)[:5]
    assert template is not None
    languages = {"uk": 0, "en": 0}
    async with database.sessions() as session:
        for cid in expected:
            customer = await session.get(Customer, cid)
            assert customer is not None
            languages[customer.language or "uk"] += 1
    parts = {lang: count_segments(template.body[lang]).segments for lang in languages}
    [contact] = result.arms["default"]
    assert (contact.step, contact.channel, contact.customers) == ("remind", "sms", len(expected))
    assert contact.segments == sum(parts[lang] * n for lang, n in languages.items())
    assert result.estimated_cost == contact.segments * settings.costs.sms_per_segment
    assert result.as_json()["estimated_cost"] == str(result.estimated_cost)
    async with database.sessions() as session:  # a dry run writes nothing
        assert await session.scalar(select(func.count()).select_from(Campaign)) == 5


async def test_preview_branches_per_status_and_experiment_arms(
    database: Database, settings: Settings
) -> None:
    await add_customers(database)
    assert (await store.load_directory(database, SEEDS, NOW)).ok
    async with database.sessions() as session:
        lost = await store.current_valid(session, "lost-customers")
        result = await preview(session, lost, NOW, settings)
    by_step = {c.step: c for c in result.arms["default"]}
    assert set(by_step) == {"call-warm", "call-cold"}
    assert by_step["call-warm"].customers == by_step["call-cold"].customers == 20
    call_cost = ASSUMED_CALL_MINUTES * settings.costs.operator_per_minute
    assert by_step["call-cold"].cost == 20 * call_cost

    experiment = definition(
        name="split",
        audience={"field": "status", "op": "in", "value": ["warm", "cold"]},
        steps=[],
        experiment={
            "holdout": 0.2,
            "arms": [
                {"name": "sms", "weight": 1, "steps": BASE["steps"]},
                {"name": "call", "weight": 1, "steps": [{"id": "ring", "type": "call_task"}]},
            ],
        },
    )
    valid = validate_definition(experiment)
    async with database.sessions() as session:
        result = await preview(session, valid, NOW, settings, sample_size=100)
    members = await segment_ids(database, valid, settings)
    arms = {cid: assign_arm("split", cid, valid.definition.experiment) for cid in members}
    assert result.count == len(members) == 40
    assert result.holdout == sum(arm == HOLDOUT for arm in arms.values())
    for name in ("sms", "call"):
        assert sum(c.customers for c in result.arms[name]) == sum(a == name for a in arms.values())
    assert {c["id"]: c["arm"] for c in result.sample} == arms
    assert "templates not saved yet" in " ".join(result.notes)  # `hello` was never saved


def test_arm_assignment_is_deterministic_and_follows_weights() -> None:
    experiment = Experiment.model_validate(
        {
            "holdout": 0.1,
            "arms": [
                {"name": "a", "weight": 1, "steps": BASE["steps"]},
                {"name": "b", "weight": 3, "steps": BASE["steps"]},
            ],
        }
    )
    ids = [f"cus_{n:06d}" for n in range(10_000)]
    first = [assign_arm("spring", cid, experiment) for cid in ids]
    assert first == [assign_arm("spring", cid, experiment) for cid in ids]
    expected = {HOLDOUT: 0.1, "a": 0.9 * 0.25, "b": 0.9 * 0.75}
    for arm, share in expected.items():
        got = first.count(arm)
        sigma = math.sqrt(len(ids) * share * (1 - share))
        assert abs(got - len(ids) * share) < 5 * sigma, (arm, got)
    # Another campaign shuffles customers independently.
    other = [assign_arm("autumn", cid, experiment) for cid in ids]
    assert sum(x != y for x, y in zip(first, other, strict=True)) > 3000
    assert assign_arm("spring", "cus_1", None) == "default"


async def cli(database_url: str, *args: str) -> tuple[int, str, str]:
    """Run `switchboard ARGS` in a child process against the test database."""
    return await run_cli(database_url, *args, main=CLI_MAIN)


async def test_cli_load_list_preview(database: Database, database_url: str, tmp_path: Path) -> None:
    await add_customers(database)
    code, out, err = await cli(database_url, "campaign", "load")
    assert code == 0, err
    files = len(list(SEEDS.glob("*.yaml"))) + len(list((SEEDS.parent / "templates").glob("*.yaml")))
    assert out.splitlines()[-1] == f"{files} loaded, 0 unchanged, 0 refused"
    code, out, _ = await cli(database_url, "campaign", "list")
    assert code == 0
    listed = {line.split("\t")[0]: line for line in out.splitlines()}
    assert set(listed) == SEED_NAMES and "\tv1\tdisabled" in listed["lost-customers"]
    code, out, _ = await cli(
        database_url, "campaign", "preview", "payment-reminder", "--as-of", "2026-11-02T11:00"
    )
    assert code == 0
    assert "audience: 15 customers" in out and "estimated cost:" in out
    code, _, err = await cli(database_url, "campaign", "preview", "nothing")
    assert code == 2 and "no campaign nothing" in err
    code, _, err = await cli(database_url, "campaign", "preview", "recession", "--as-of", "soon")
    assert code == 2 and "--as-of" in err

    code, out, _ = await cli(database_url, "campaign", "load", str(broken_tree(tmp_path)))
    assert code == 2
    assert f"refused {tmp_path / 'campaigns' / 'bad.yaml'}: steps[0].duration:" in out
    code, _, err = await cli(database_url, "campaign", "load", str(tmp_path / "missing"))
    assert code == 2 and "is not a directory" in err
