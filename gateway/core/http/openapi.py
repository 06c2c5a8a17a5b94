"""/openapi.json built from the endpoint declarations and their pydantic schemas."""

from __future__ import annotations

import re
from collections.abc import Mapping

from aiohttp import web
from pydantic import BaseModel

from gateway.core.http.endpoints import ENDPOINTS, EndpointSpec, endpoint, json_response

_PATH_PARAM = re.compile(r"\{(\w+)(?::[^}]*)?\}")
_PROBLEM = {"$ref": "#/components/schemas/Problem"}


def _schema_ref(model: type[BaseModel], components: dict[str, object]) -> dict[str, object]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def _query_value_schema(field_schema: Mapping[str, object]) -> dict[str, object]:
    """A query field's JSON schema without its `null` branch: an absent parameter is the
    None, a query string cannot carry a null (pydantic types it `X | None`)."""
    schema = dict(field_schema)
    branches = schema.pop("anyOf", None)
    if isinstance(branches, list):
        kept = [b for b in branches if not (isinstance(b, dict) and b.get("type") == "null")]
        if len(kept) == 1 and isinstance(kept[0], dict):
            schema.update(kept[0])
        else:
            schema["anyOf"] = kept
    if "default" in schema and schema["default"] is None:
        del schema["default"]
    return schema


def _operation(spec: EndpointSpec, components: dict[str, object]) -> dict[str, object]:
    operation: dict[str, object] = {"summary": spec.summary, "tags": list(spec.tags)}
    parameters = [
        {"name": name, "in": "path", "required": True, "schema": {"type": "string"}}
        for name in _PATH_PARAM.findall(spec.path)
    ]
    if spec.query is not None:
        query_schema = spec.query.model_json_schema(ref_template="#/components/schemas/{model}")
        for sub_name, sub in query_schema.pop("$defs", {}).items():
            components[sub_name] = sub
        properties = query_schema.get("properties", {})
        for name, field in spec.query.model_fields.items():
            key = field.alias or name
            parameters.append(
                {
                    "name": key,
                    "in": "query",
                    "required": field.is_required(),
                    "description": field.description or "",
                    "schema": _query_value_schema(properties.get(key, {"type": "string"})),
                }
            )
    if parameters:
        operation["parameters"] = parameters
    if spec.body is not None:
        operation["requestBody"] = {
            "required": True,
            "content": {"application/json": {"schema": _schema_ref(spec.body, components)}},
        }
    ok: dict[str, object] = {"description": "success"}
    if spec.response is not None:
        ok["content"] = {"application/json": {"schema": _schema_ref(spec.response, components)}}
    problem = {"content": {"application/problem+json": {"schema": _PROBLEM}}}
    operation["responses"] = {
        str(spec.status): ok,
        "4XX": {"description": "refused", **problem},
    }
    if spec.auth == "bearer":
        operation["security"] = [{"bearer": []}]
        operation["x-roles"] = sorted(spec.roles | {"admin"})
    elif spec.auth != "none":
        operation["x-auth"] = spec.auth
    return operation


def build_openapi(specs: list[EndpointSpec], version: str) -> dict[str, object]:
    """The OpenAPI 3.1 document for `specs`."""
    components: dict[str, object] = {
        "Problem": {
            "type": "object",
            "properties": {
                "type": {"type": "string"},
                "title": {"type": "string"},
                "status": {"type": "integer"},
                "detail": {"type": "string"},
            },
            "required": ["type", "title", "status"],
        }
    }
    paths: dict[str, dict[str, object]] = {}
    for spec in specs:
        path = _PATH_PARAM.sub(r"{\1}", spec.path)
        paths.setdefault(path, {})[spec.method.lower()] = _operation(spec, components)
    return {
        "openapi": "3.1.0",
        "info": {"title": "Switchboard", "version": version},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer"}},
        },
    }


@endpoint("GET", "/openapi.json", summary="This API's OpenAPI document", auth="none")
async def openapi_handler(request: web.Request) -> web.Response:
    """Serve the generated document."""
    from gateway import __version__

    return json_response(build_openapi(request.app[ENDPOINTS], __version__))
