"""API tokens: roles, operator binding, parsing of SWITCHBOARD_API_TOKENS."""

from __future__ import annotations

import pytest

from gateway.core.http.auth import TokenConfigError, TokenRegistry


def test_tokens_parse_with_roles_and_agents() -> None:
    registry, generated = TokenRegistry.from_spec(
        "aaaaaaaaaaaaaaaa:admin, bbbbbbbbbbbbbbbb:operator:agent-7,cccccccccccccccc:crm"
    )
    assert generated is None
    operator = registry.authenticate("bbbbbbbbbbbbbbbb")
    assert operator is not None and operator.role == "operator" and operator.agent_id == "agent-7"
    assert registry.authenticate("bbbbbbbbbbbbbbbX") is None
    crm = registry.authenticate("cccccccccccccccc")
    assert crm is not None and crm.may(frozenset({"crm"})) and not crm.may(frozenset({"operator"}))


def test_no_tokens_generates_one_admin_token() -> None:
    registry, generated = TokenRegistry.from_spec(None)
    assert generated is not None and len(generated) >= 24
    admin = registry.authenticate(generated)
    assert admin is not None and admin.may(frozenset({"operator"}))


@pytest.mark.parametrize(
    "spec",
    ["short:admin", "aaaaaaaaaaaaaaaa:root", "aaaaaaaaaaaaaaaa:operator", "aaaaaaaaaaaaaaaa"],
)
def test_bad_token_specs_are_refused(spec: str) -> None:
    with pytest.raises(TokenConfigError):
        TokenRegistry.from_spec(spec)
