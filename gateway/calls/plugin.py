"""Calls: the records API, click-to-call, the PBX link and its health, `calls` commands."""

from __future__ import annotations

import gc
from collections.abc import AsyncIterator

from aiohttp import web

from gateway.calls import cli
from gateway.calls.http import PBX_LINK, list_calls, originate, set_topic
from gateway.calls.link import LinkState, PbxLink
from gateway.calls.originate import ORIGINATOR, Originator
from gateway.calls.settings import PbxTopology
from gateway.core.appkeys import BUS, CLOCK, DATABASE, HEALTH_CHECKS, METRICS, SETTINGS
from gateway.core.http.endpoints import add_endpoints
from gateway.core.plugin import Plugin


async def _pbx_ctx(app: web.Application) -> AsyncIterator[None]:
    link = PbxLink(app[SETTINGS], app[DATABASE], app[BUS], app[CLOCK], app[METRICS])
    app[PBX_LINK] = link
    app[ORIGINATOR] = Originator(app[SETTINGS], app[DATABASE], link, app[CLOCK])

    async def ami_health() -> tuple[str, bool]:
        return link.state, link.state is LinkState.CONNECTED

    async def ami_load() -> tuple[object, bool]:
        # Shedding is reported, never unhealthy: pulling the instance out of a balancer
        # would move the flood to the next one.
        return link.flow.health(), True

    app[HEALTH_CHECKS]["ami"] = ami_health
    app[HEALTH_CHECKS]["ami_load"] = ami_load
    await link.start()
    yield
    await link.stop()


async def _freeze_startup_objects(app: web.Application) -> None:
    """Keep the collector's full passes off the screen-pop path.

    A full (generation 2) collection walks every object alive since startup (modules,
    mappers, compiled statements, schemas): the screen-pop benchmark saw such passes of
    150-250 ms stop the event loop, several times a minute. gc.freeze moves what is alive
    once the app has started into a permanent generation the collector skips; garbage is
    collected first, and all of it lives as long as the app does. Runs after every
    cleanup_ctx has opened (aiohttp calls on_startup handlers after them).
    """
    gc.collect()
    gc.freeze()


async def _unfreeze(app: web.Application) -> None:
    """Give the objects back to the collector (tests build many apps in one process)."""
    gc.unfreeze()


def setup(app: web.Application, workers: bool) -> None:
    """Add the calls routes; connect to the PBX when one is configured and workers run."""
    add_endpoints(app, list_calls, set_topic, originate)
    if workers and app[SETTINGS].ami_host:
        app.cleanup_ctx.append(_pbx_ctx)
        app.on_startup.append(_freeze_startup_objects)
        app.on_cleanup.append(_unfreeze)


PLUGIN = Plugin(name="calls", setup=setup, commands=(cli.register,), settings_section=PbxTopology)
