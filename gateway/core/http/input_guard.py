"""U+0000 in a request's path, query or form body is refused with 422 before any handler
runs.

PostgreSQL text cannot store or even compare with a NUL character: left through, such a
value fails the query and answers 500 (found by schemathesis: `?campaign=%00`). SQLite
would take it, so refusing it here keeps both databases answering alike. Form bodies
(provider callbacks, one-click unsubscribe) are read here, within client_max_size, and
aiohttp keeps the parsed form for the handler. JSON bodies are checked where they are
parsed (`read_json`), with the same rule as CRM events.
"""

from __future__ import annotations

from aiohttp import web

from gateway.core.http.problems import Handler, InvalidInput

NUL = "\x00"
FORM_TYPES = frozenset({"application/x-www-form-urlencoded", "multipart/form-data"})


def nul_refused(field: str) -> InvalidInput:
    """The 422 for a NUL character in `field`."""
    message = "the NUL character is not allowed in text"
    return InvalidInput(f"{field}: {message}", errors=[{"field": field, "message": message}])


@web.middleware
async def refuse_nul_middleware(request: web.Request, handler: Handler) -> web.StreamResponse:
    """Refuse a NUL in any path parameter, or query or form field name or value."""
    for name, value in request.match_info.items():
        if NUL in value:
            raise nul_refused(name)
    for name, value in request.query.items():
        if NUL in name or NUL in value:
            raise nul_refused(name.replace(NUL, "\\0"))
    if request.method == "POST" and request.content_type in FORM_TYPES:
        for name, field in (await request.post()).items():
            if NUL in name or (isinstance(field, str) and NUL in field):
                raise nul_refused(name.replace(NUL, "\\0"))
    return await handler(request)


def find_nul(value: object, path: str = "") -> str | None:
    """The path of the first string (key or value) holding a NUL character, if any."""
    if isinstance(value, str):
        return path if "\x00" in value else None
    if isinstance(value, dict):
        for key, item in value.items():
            here = f"{path}.{key}" if path else str(key)
            if "\x00" in str(key):
                return here
            found = find_nul(item, here)
            if found is not None:
                return found
    if isinstance(value, list):
        for index, item in enumerate(value):
            found = find_nul(item, f"{path}[{index}]")
            if found is not None:
                return found
    return None
