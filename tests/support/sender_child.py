"""A sending gateway process for the crash tests: the real pipeline and SMS channel,
talking to the Twilio stub, until there is nothing left to send (or it is killed).

`python -m tests.support.sender_child DATABASE_URL API_BASE [AS_OF]`: with AS_OF (ISO 8601)
it also ticks the campaign scheduler at that moment, beside the sender, as a gateway's
worker does: the campaign run enrolls and advances its audience (writing the contacts)
while the sender already sends the first ones.
"""

from __future__ import annotations

import asyncio
import sys
from datetime import datetime, timedelta

from pydantic import SecretStr

from adapters.twilio import TwilioAdapter
from channels.sms import SmsChannel
from gateway.campaigns.scheduler import tick
from gateway.core.clock import SystemClock
from gateway.core.db.engine import Database
from gateway.core.policy import ContactPolicy
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings

ACCOUNT, TOKEN = "ACcrash", "crash-token"


async def main(database_url: str, api_base: str, as_of: datetime | None = None) -> None:
    settings = Settings(
        database_url=database_url,
        twilio_account_sid=ACCOUNT,
        twilio_auth_token=SecretStr(TOKEN),
        twilio_from="+15005550006",
        twilio_api_base=api_base,
        policy=ContactPolicy(windows={}, frequency_caps={}),
    )
    database = Database(database_url)
    adapter = TwilioAdapter(ACCOUNT, TOKEN, api_base=api_base, timeout_seconds=5)
    worker = SendWorker(
        database,
        settings,
        SystemClock(),
        {"sms": SmsChannel(adapter, settings)},
        Preparer(settings),
        concurrency=20,
        batch=50,
        lease=timedelta(seconds=2),
        resolve_grace=timedelta(seconds=1),
    )
    scheduling = asyncio.create_task(tick(database, settings, as_of)) if as_of else None
    idle = 0
    try:
        # ~2 s with nothing due (leases of a killed predecessor are over) and the tick done.
        while idle < 20 or (scheduling is not None and not scheduling.done()):
            idle = 0 if await worker.run_once() else idle + 1
            if idle:
                await asyncio.sleep(0.1)
        if scheduling is not None:
            await scheduling  # a failed tick fails the process
    finally:
        await adapter.close()
        await database.dispose()


if __name__ == "__main__":
    campaign_as_of = datetime.fromisoformat(sys.argv[3]) if len(sys.argv) > 3 else None
    asyncio.run(main(sys.argv[1], sys.argv[2], campaign_as_of))
