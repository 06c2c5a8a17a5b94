"""Counts refused or failed webhooks (CRM and provider callbacks) by problem type."""

from __future__ import annotations

from aiohttp import web

from gateway.core.appkeys import METRICS
from gateway.core.http.endpoints import spec_of
from gateway.core.http.problems import ApiProblem, Handler, http_problem_type

# The auth schemes of routes that outside systems call back (see EndpointSpec.auth).
WEBHOOK_AUTH = frozenset({"crm-signature", "twilio-signature"})


@web.middleware
async def webhook_failures_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """On webhook routes, count every refusal or error under the route and its reason."""
    spec = spec_of(request.match_info.handler)
    if spec is None or spec.auth not in WEBHOOK_AUTH:
        return await handler(request)
    failures = request.app[METRICS].webhook_failures
    try:
        response = await handler(request)
    except ApiProblem as problem:
        failures.labels(spec.path, problem.type_name).inc()
        raise
    except web.HTTPException as exc:
        if exc.status >= 400:
            failures.labels(spec.path, http_problem_type(exc.status)).inc()
        raise
    except Exception:
        failures.labels(spec.path, "internal").inc()
        raise
    if response.status >= 400:
        failures.labels(spec.path, http_problem_type(response.status)).inc()
    return response
