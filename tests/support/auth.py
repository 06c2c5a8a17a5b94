"""Test credentials: one token per role, the CRM webhook secret, the Authorization header."""

from __future__ import annotations

from gateway.core.http.auth import TokenRegistry

ADMIN_TOKEN = "admin-token-0123456789"

CRM_TOKEN = "crm-token-0123456789ab"

OPERATOR_TOKEN = "operator-token-0123456"

OPERATOR_AGENT = "agent-201"

SUPERVISOR_TOKEN = "supervisor-token-01234"

SUPERVISOR_AGENT = "agent-301"

WEBHOOK_SECRET = "webhook-secret-for-tests"


def role_tokens() -> TokenRegistry:
    """One token per role (also for apps built outside a fixture)."""
    registry = TokenRegistry()
    registry.add(ADMIN_TOKEN, "admin")
    registry.add(CRM_TOKEN, "crm")
    registry.add(OPERATOR_TOKEN, "operator", OPERATOR_AGENT)
    registry.add(SUPERVISOR_TOKEN, "supervisor", SUPERVISOR_AGENT)
    return registry


def bearer(token: str) -> dict[str, str]:
    """Authorization header for `token`."""
    return {"Authorization": f"Bearer {token}"}
