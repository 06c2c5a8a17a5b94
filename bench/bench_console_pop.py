"""Benchmark: screen-pop delay as the operator sees it, from the PBX simulator writing
DialBegin for extension 201 to the pop's element in Debian's Chromium.

Usage: python bench/bench_console_pop.py [--customers 10000] [--calls 200] [--speed 10]
       [--warmup 10] [--seed 7] [--keep | --database-url URL]

PostgreSQL gets CUSTOMERS customers (bench_phone_lookup's loader) and one agent at 201.
The whole gateway (create_app with the console, workers on, AMI pointed at the
simulator) runs in a child process; the simulator and Playwright run here; Chromium is a
process of its own. The operator signs in through the page and the live feed opens its
WebSocket with a ticket, as in production. Calls come one at a time from customers'
numbers (E.164), each after the previous pop was seen, so the figure is the delay of one
pop on an idle gateway, not a throughput.

Two instants per pop, both read in the page on the wall clock (`performance.timeOrigin +
performance.now()`, compared with the simulator's `time.time()` at the DialBegin write:
one clock on one machine): when a MutationObserver sees the `.pop` element inserted, and
the next animation frame after that (when it can first be painted). A wrapper around the
page's WebSocket (an init script, benchmark only) also notes when the screen_pop message
arrived, which splits the delay into gateway + network and the page's own work.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import sys
import time
from multiprocessing.synchronize import Event as EventType
from pathlib import Path

from playwright.async_api import async_playwright, expect
from tqdm import tqdm

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from bench._telephony import (
    AMI_SECRET,
    AMI_USER,
    Fields,
    LoadedDatabase,
    add_database_options,
    cuts,
    field,
    loaded_database,
    simulator,
    wait_ami_connected,
)
from bench.bench_webhook_ingest import free_port
from gateway.calls.ids import call_id_for
from gateway.pbx_simulator import CallSpec

CHROMIUM = "/usr/bin/chromium"
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--no-first-run"]
EXTENSION = "201"
OPERATOR_TOKEN = "bench-operator-token-0123456789"
# Before the page's own scripts: when each screen_pop message reaches the page's socket.
WATCH_SOCKETS = """
window.__arrived = {};
const PageSocket = window.WebSocket;
window.WebSocket = class extends PageSocket {
  constructor(...args) {
    super(...args);
    this.addEventListener('message', (event) => {
      const at = performance.timeOrigin + performance.now();
      const data = JSON.parse(event.data);
      if (data.type === 'screen_pop' && !window.__arrived[data.call_id]) {
        window.__arrived[data.call_id] = at;
      }
    });
  }
};
"""
# Records, in the page, when each pop is inserted and when the frame after it starts.
WATCH_POPS = """
window.__pops = {};
window.__count = 0;
new MutationObserver((records) => {
  const inserted = performance.timeOrigin + performance.now();
  for (const record of records) {
    for (const node of record.addedNodes) {
      if (!(node instanceof HTMLElement) || !node.matches('.pop')) continue;
      const id = node.dataset.callId;
      if (window.__pops[id]) continue;
      window.__pops[id] = { inserted };
      requestAnimationFrame(() => {
        window.__pops[id].frame = performance.timeOrigin + performance.now();
      });
    }
  }
}).observe(document.getElementById('pops'), { childList: true, subtree: true });
"""


def run_console_gateway(
    database_url: str, http_port: int, ami_port: int, ready: EventType, stop: EventType
) -> None:
    """Child process: the real app with an operator token for 201 until `stop` is set.

    bench/_telephony.py's child has an admin token only; the page needs an operator bound
    to the agent at 201 (an admin has no extension, so no live feed).
    """
    asyncio.run(_serve(database_url, http_port, ami_port, ready, stop))


async def _serve(
    database_url: str, http_port: int, ami_port: int, ready: EventType, stop: EventType
) -> None:
    from aiohttp import web
    from pydantic import SecretStr

    from gateway.app import create_app
    from gateway.core.http.auth import TokenRegistry
    from gateway.settings import Settings

    settings = Settings(
        database_url=database_url,
        default_region="UA",
        ami_host="127.0.0.1",
        ami_port=ami_port,
        ami_username=AMI_USER,
        ami_secret=SecretStr(AMI_SECRET),
    )
    tokens = TokenRegistry()
    tokens.add(OPERATOR_TOKEN, "operator", f"agent-{EXTENSION}")
    app = create_app(settings, tokens=tokens, workers=True)
    runner = web.AppRunner(app, access_log=None)
    await runner.setup()
    await web.TCPSite(runner, "127.0.0.1", http_port).start()
    ready.set()
    await asyncio.to_thread(stop.wait)
    await runner.cleanup()


class DialTimes:
    """Simulator hook: the wall-clock time DialBegin towards 201 went onto the socket."""

    def __init__(self) -> None:
        """Nothing written yet."""
        self.written: dict[str, float] = {}

    def __call__(self, name: str, fields: Fields) -> None:
        if name == "DialBegin" and field(fields, "DestChannel").startswith(f"PJSIP/{EXTENSION}-"):
            self.written.setdefault(call_id_for(field(fields, "Linkedid")), time.time())


async def measure(db: LoadedDatabase, calls: int, warmup: int, speed: float, seed: int) -> None:
    """Start the gateway, sign in in Chromium, play the calls, print the figures."""
    import multiprocessing

    rng = random.Random(seed)
    dials = DialTimes()
    sim = simulator(dials, speed)
    await sim.start()
    http_port = free_port()
    context = multiprocessing.get_context("spawn")
    ready, stop = context.Event(), context.Event()
    child = context.Process(
        target=run_console_gateway, args=(db.url, http_port, sim.port, ready, stop)
    )
    child.start()
    try:
        if not await asyncio.to_thread(ready.wait, 60):
            raise RuntimeError("the gateway did not start")
        await wait_ami_connected(http_port)
        async with async_playwright() as playwright:
            browser = await playwright.chromium.launch(
                executable_path=CHROMIUM, headless=True, args=CHROMIUM_ARGS
            )
            page = await (await browser.new_context()).new_page()
            await page.add_init_script(WATCH_SOCKETS)
            await page.goto(f"http://127.0.0.1:{http_port}/")
            await page.fill("#token", OPERATOR_TOKEN)
            await page.click("#sign-in button[type=submit]")
            await expect(page.locator("body")).to_have_attribute("data-live", "ready")
            await page.evaluate(WATCH_POPS)
            for _ in tqdm(range(warmup + calls), desc="calls", unit="call"):
                caller = f"+380{rng.choice(db.known)}"
                sim.start_call(
                    CallSpec(
                        kind="missed",
                        caller=caller,
                        extensions=(EXTENSION,),
                        ring_seconds=2.0,
                    )
                )
                # Until this call's pop has had its frame; the next call starts then.
                await page.wait_for_function(
                    "() => Object.values(window.__pops).filter((p) => p.frame).length"
                    " > window.__count",
                    timeout=10_000,
                    polling=5,
                )
                await page.evaluate("window.__count = Object.keys(window.__pops).length")
            pops = await page.evaluate("window.__pops")
            arrived = await page.evaluate("window.__arrived")
            await browser.close()
    finally:
        stop.set()
        await asyncio.to_thread(child.join, 60)
        if child.is_alive():
            child.kill()
        await sim.stop()
    measured = [cid for cid in list(dials.written)[warmup:] if cid in pops]
    inserted: list[float] = []
    painted: list[float] = []
    socket: list[float] = []
    render: list[float] = []
    for cid in measured:
        inserted.append((pops[cid]["inserted"] / 1000 - dials.written[cid]) * 1000)
        painted.append((pops[cid]["frame"] / 1000 - dials.written[cid]) * 1000)
        if cid in arrived:
            socket.append((arrived[cid] / 1000 - dials.written[cid]) * 1000)
            render.append(pops[cid]["inserted"] - arrived[cid])
    print(f"screen-pop in Chromium, {len(measured)} calls after {warmup} warm-up:")
    print(f"  DialBegin written -> .pop inserted in the DOM   {cuts(inserted)}")
    print(f"  DialBegin written -> next animation frame       {cuts(painted)}")
    print(f"  of which: DialBegin -> message at page's socket {cuts(socket)}")
    print(f"            message -> .pop inserted (page JS)    {cuts(render)}")
    missing = len(dials.written) - len(pops)
    if missing:
        print(f"  {missing} DialBegin(s) without a pop in the page")


def main() -> None:
    """Parse the options, load (or reuse) the database, measure, clean up."""
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--customers", type=int, default=10_000)
    parser.add_argument("--calls", type=int, default=200)
    parser.add_argument("--warmup", type=int, default=10)
    parser.add_argument("--speed", type=float, default=10.0, help="simulated seconds per second")
    add_database_options(parser)
    args = parser.parse_args()
    if not Path(CHROMIUM).exists():
        sys.exit(f"{CHROMIUM} is missing: run scripts/ensure-chromium.sh")
    if not args.database_url:
        print(f"loading {args.customers} customers…", flush=True)
    with loaded_database(args, [EXTENSION]) as db:
        asyncio.run(measure(db, args.calls, args.warmup, args.speed, args.seed))


if __name__ == "__main__":
    main()
