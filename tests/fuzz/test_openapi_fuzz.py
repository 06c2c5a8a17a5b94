"""schemathesis against the app's own /openapi.json: every operation, with the token of
every role allowed to call it, valid and invalid inputs alike — never a 5xx.

The real app runs on loopback (PostgreSQL, HTTP only) in a thread of its own, because
schemathesis's requests are blocking. The operations are listed at collection from the
app's declarations (no I/O); `test_served_document_is_the_one_fuzzed` pins that the
served document is that same one. `SWITCHBOARD_FUZZ_SCALE=full` (`make fuzz`) runs many
more examples per operation.
"""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import Iterator
from functools import cache
from typing import Any

import pytest
import requests
import schemathesis
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from pydantic import SecretStr
from schemathesis import APIOperation, Case, GenerationMode
from schemathesis.core.result import Ok

from gateway import __version__
from gateway.app import create_app
from gateway.core.db.engine import Database
from gateway.core.http.endpoints import ENDPOINTS
from gateway.core.http.openapi import build_openapi
from gateway.pbx_simulator import SimulatorServer
from gateway.settings import Settings
from tests.support.auth import (
    ADMIN_TOKEN,
    CRM_TOKEN,
    OPERATOR_TOKEN,
    SUPERVISOR_TOKEN,
    WEBHOOK_SECRET,
    role_tokens,
)
from tests.support.databases import truncate_all
from tests.support.live_server import LiveServer
from tests.support.pbx import SECRET, SPEED, USERNAME, wired_to

FULL = os.environ.get("SWITCHBOARD_FUZZ_SCALE") == "full"
# Per operation and role; the reduced budget keeps this module well under a minute.
EXAMPLES = 150 if FULL else 6
FUZZ = settings(
    max_examples=EXAMPLES,
    deadline=None,  # requests cross a thread and a socket; hangs are caught by the timeout
    database=None,  # no example store: the app's data differs from run to run anyway
    suppress_health_check=list(HealthCheck),
)
TOKEN_OF = {
    "admin": ADMIN_TOKEN,
    "crm": CRM_TOKEN,
    "operator": OPERATOR_TOKEN,
    "supervisor": SUPERVISOR_TOKEN,
}
REQUEST_TIMEOUT = 30


@cache
def declared_document() -> dict[str, Any]:
    """The document the app serves, built from its declarations (the app is not started)."""
    app = create_app(
        Settings(database_url="sqlite+aiosqlite:///:memory:"), tokens=role_tokens(), workers=False
    )
    return build_openapi(app[ENDPOINTS], __version__)


def fuzz_targets() -> list[tuple[str, str, str]]:
    """(method, path, role) for each operation and each role it admits (admin for the rest)."""
    targets = []
    for path, operations in declared_document()["paths"].items():
        for method, operation in operations.items():
            for role in operation.get("x-roles", ["admin"]):
                targets.append((method.upper(), path, role))
    return targets


@pytest.fixture(scope="module")
def live_app(postgres_url: str) -> Iterator[str]:
    """The real app on an emptied PostgreSQL database; yields its base URL."""

    async def empty() -> None:
        database = Database(postgres_url)
        try:
            await truncate_all(database)
        finally:
            await database.dispose()

    asyncio.run(empty())
    settings_ = Settings(
        database_url=postgres_url,
        crm_webhook_secret=WEBHOOK_SECRET,
        default_region="UA",
        max_body_bytes=65_536,
        # Every dependency configured, so that a 503 "not configured" hides no route from
        # the fuzzer. Nothing reaches Twilio: the fuzzer makes no campaign that sends.
        twilio_account_sid="AC" + "0" * 32,
        twilio_auth_token=SecretStr("twilio-token-for-fuzzing"),
        twilio_from="+380670000000",
        twilio_api_base="http://127.0.0.1:9",
    )
    server = LiveServer()
    pbx = SimulatorServer("127.0.0.1", 0, username=USERNAME, secret=SECRET, speed=SPEED)
    try:
        server.run(pbx.start())
        base_url = server.serve(create_app(wired_to(settings_, pbx), tokens=role_tokens()))
        wait_for_ami(base_url)
        yield base_url
    finally:
        server.run(pbx.stop())
        server.stop()


def wait_for_ami(base_url: str) -> None:
    """Wait until /health says the AMI link is up (originate needs it)."""
    deadline = time.monotonic() + 30  # generous: CI shares two cores with the whole suite
    while True:
        health = requests.get(f"{base_url}/health", timeout=REQUEST_TIMEOUT).json()
        if health["components"].get("ami") == "connected":
            return
        if time.monotonic() > deadline:
            break
        time.sleep(0.05)
    raise AssertionError(f"the gateway never connected to the PBX simulator: {health}")


@pytest.fixture(scope="module")
def schema(live_app: str) -> schemathesis.BaseSchema:
    """The served document, loaded by schemathesis."""
    # Loaded from its body rather than its URL: given the URL, schemathesis leaves the
    # document's own route out of the run, and /openapi.json is an operation too.
    served = requests.get(f"{live_app}/openapi.json", timeout=REQUEST_TIMEOUT).json()
    loaded = schemathesis.openapi.from_dict(served)
    loaded.config.update(base_url=live_app)
    return loaded


def test_every_operation_is_fuzzed_with_every_role_it_admits() -> None:
    # Guards the parametrisation below against an empty or admin-only list.
    targets = fuzz_targets()
    assert len({(method, path) for method, path, _ in targets}) >= 40
    assert {role for _, _, role in targets} == set(TOKEN_OF)


def test_query_parameters_carry_their_types_and_no_null() -> None:
    # Typed parameters let valid cases get past validation, into the handlers' real work.
    parameters = {
        (path, parameter["name"]): parameter["schema"]
        for path, operations in declared_document()["paths"].items()
        for operation in operations.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "query"
    }
    assert parameters[("/api/customers", "limit")] == {
        "default": 50,
        "maximum": 500,
        "minimum": 1,
        "title": "Limit",
        "type": "integer",
    }
    assert parameters[("/api/outbox", "state")]["enum"] == ["pending", "delivered", "dead"]
    assert parameters[("/api/reports/daily", "date")]["format"] == "date"
    assert all("null" not in str(schema) for schema in parameters.values())


def test_served_document_is_the_one_fuzzed(live_app: str, schema: schemathesis.BaseSchema) -> None:
    served = requests.get(f"{live_app}/openapi.json", timeout=REQUEST_TIMEOUT).json()
    assert served == declared_document()
    schema.validate()  # raises on a document that breaks the OpenAPI 3.1 meta-schema
    operations = []
    for result in schema.get_all_operations():
        assert isinstance(result, Ok), result  # an Err (invalid operation) has no .ok()
        operations.append(result.ok())
    assert len(operations) == sum(len(ops) for ops in served["paths"].values())


@pytest.mark.parametrize(("method", "path", "role"), fuzz_targets())
def test_operation_never_answers_5xx(
    schema: schemathesis.BaseSchema, method: str, path: str, role: str
) -> None:
    operation = schema[path][method]
    cases = st.one_of(
        operation.as_strategy(GenerationMode.POSITIVE),
        operation.as_strategy(GenerationMode.NEGATIVE),
    )
    headers = {"Authorization": f"Bearer {TOKEN_OF[role]}"}

    @FUZZ
    @given(case=cases)
    def check(case: Case[APIOperation[Any, Any, Any, Any]]) -> None:
        response = case.call(headers=headers, timeout=REQUEST_TIMEOUT)
        assert response.status_code < 500, (
            f"{response.status_code} {response.text[:300]}\n{case.as_curl_command(headers=headers)}"
        )

    check()
