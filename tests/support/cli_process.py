"""The real `switchboard` CLI in a child process, against a test database."""

from __future__ import annotations

import asyncio
import os
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
# Not `-m gateway.cli`: that would load the module twice (as __main__ and by name).
CLI_MAIN = "import sys; from gateway.cli import main; sys.exit(main(sys.argv[1:]))"


async def run_cli(database_url: str, *args: str, main: str = CLI_MAIN) -> tuple[int, str, str]:
    """Run `switchboard ARGS` (through the `main` snippet) in a child process; the
    configuration file is switched off so only the test's database URL applies."""
    env = {**os.environ, "SWITCHBOARD_DATABASE_URL": database_url, "SWITCHBOARD_CONFIG": ""}
    process = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        main,
        *args,
        cwd=REPO,
        env=env,
        stdout=asyncio.subprocess.PIPE,
        stderr=asyncio.subprocess.PIPE,
    )
    out, err = await process.communicate()
    assert process.returncode is not None
    return process.returncode, out.decode(), err.decode()
