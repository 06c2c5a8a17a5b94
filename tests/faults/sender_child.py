"""A sending gateway process for the crash tests: the real pipeline and SMS channel,
talking to the Twilio stub, until there is nothing left to send (or it is killed)."""

from __future__ import annotations

import asyncio
import sys
from datetime import timedelta

from pydantic import SecretStr

from adapters.twilio import TwilioAdapter
from channels.policy import ContactPolicy
from channels.sms import SmsChannel
from gateway.clock import SystemClock
from gateway.db.engine import Database
from gateway.messages.pipeline import SendWorker
from gateway.messages.prepare import Preparer
from gateway.settings import Settings

ACCOUNT, TOKEN = "ACcrash", "crash-token"


async def main(database_url: str, api_base: str) -> None:
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
    idle = 0
    try:
        while idle < 20:  # ~2 s with nothing due: leases of a killed predecessor are over
            idle = 0 if await worker.run_once() else idle + 1
            if idle:
                await asyncio.sleep(0.1)
    finally:
        await adapter.close()
        await database.dispose()


if __name__ == "__main__":
    asyncio.run(main(sys.argv[1], sys.argv[2]))
