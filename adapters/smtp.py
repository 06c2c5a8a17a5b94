"""SMTP submission over aiosmtplib: one reused connection, errors that say how far we got.

This is the only module that imports aiosmtplib. It knows SMTP and nothing of ours: the
caller hands it an envelope (sender, recipients) and the finished message bytes.

Why the transaction is driven by hand instead of `SMTP.sendmail`: whether a failure is
safe to retry depends on *where* it happened. Before the message payload left us the
server cannot have accepted anything (retry is safe); once the final `.` is written a
lost connection may hide a 250 we never read (the outcome is unknown, and resending
could deliver twice). `sendmail` folds DATA and the payload into one call, so a lost
connection there cannot be placed; sending DATA, then the payload, keeps the line.
"""

from __future__ import annotations

import asyncio
import re
import ssl
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Literal

import aiosmtplib

# connect: TCP, greeting, EHLO, TLS, AUTH; envelope: MAIL, RCPT, the DATA command;
# payload: the message and its final dot were (perhaps partly) written.
Stage = Literal["connect", "envelope", "payload"]

_START_INPUT = 354
_SERVICE_CLOSING = 421
_LINE_ENDS = re.compile(rb"\r\n|\r|\n")
_LEADING_DOT = re.compile(rb"(?m)^\.")


class SmtpError(Exception):
    """The server refused, or could not be reached, at `stage`.

    `code` is the server's reply code when it answered (None for network errors and
    timeouts); `command` the SMTP command refused (MAIL, RCPT, DATA); `permanent` marks
    refusals made before talking to the server at all.
    """

    def __init__(
        self,
        text: str,
        *,
        stage: Stage,
        code: int | None = None,
        command: str | None = None,
        permanent: bool = False,
    ) -> None:
        super().__init__(f"{code} {text}" if code is not None else text)
        self.text = text
        self.stage = stage
        self.code = code
        self.command = command
        self.permanent = permanent

    @property
    def payload_sent(self) -> bool:
        """True when the failure came after the message was written: outcome unknown."""
        return self.stage == "payload" and self.code is None


@dataclass(frozen=True)
class SmtpConfig:
    """Where and how to submit mail; `tls_context` replaces the system trust store."""

    host: str
    port: int = 587
    username: str | None = None
    password: str | None = None
    starttls: bool = True
    implicit_tls: bool = False
    tls_context: ssl.SSLContext | None = None
    timeout: float = 30.0
    local_hostname: str | None = None
    # Servers drop idle sessions (often after 60-300 s); reconnecting before that is
    # cheaper than discovering the drop on the next MAIL.
    max_idle_seconds: float = 50.0
    # Many relays cap messages per session; starting afresh below the cap avoids 421s.
    max_messages_per_connection: int = 500


@dataclass(frozen=True)
class SmtpReply:
    """The server's final answer to an accepted message."""

    code: int
    text: str


def dot_stuffed(payload: bytes) -> bytes:
    """CRLF line ends, leading dots doubled and the terminating `.` line appended."""
    body = _LINE_ENDS.sub(b"\r\n", payload)
    if not body.endswith(b"\r\n"):
        body += b"\r\n"
    return _LEADING_DOT.sub(b"..", body) + b".\r\n"


class SmtpSender:
    """Submits messages over one SMTP session at a time, reused across sends.

    Sends are serialised on the session (SMTP has one transaction in flight per
    connection). With `reuse=False` every message opens and quits its own session.
    """

    def __init__(self, config: SmtpConfig, *, reuse: bool = True) -> None:
        """Nothing connects until the first send."""
        if config.starttls and config.implicit_tls:
            raise ValueError("starttls and implicit_tls are mutually exclusive")
        self.config = config
        self.reuse = reuse
        self.connections_opened = 0
        self._client: aiosmtplib.SMTP | None = None
        self._lock = asyncio.Lock()
        self._sent_on_client = 0
        self._last_used = 0.0

    async def send(self, sender: str, recipients: Sequence[str], payload: bytes) -> SmtpReply:
        """Submit `payload` (a complete RFC 5322 message) for `recipients`."""
        if not recipients:
            raise SmtpError("no recipients", stage="envelope", permanent=True)
        for address in (sender, *recipients):
            if not address.isascii() or any(c in address for c in "\r\n<>"):
                raise SmtpError(
                    f"address not usable in an envelope: {address!r}",
                    stage="envelope",
                    permanent=True,
                )
        data = dot_stuffed(payload)
        async with self._lock:
            try:
                return await self._send_locked(sender, recipients, data)
            finally:
                if not self.reuse:
                    await self._quit()

    async def _send_locked(self, sender: str, recipients: Sequence[str], data: bytes) -> SmtpReply:
        reused = await self._ensure_connected()
        try:
            return await self._transaction(sender, recipients, data)
        except SmtpError as exc:
            stale = exc.stage == "envelope" and (exc.code in (None, _SERVICE_CLOSING))
            if not (reused and stale):
                raise
        # The server closed a session we had kept (idle timeout, restart) before this
        # transaction got anywhere: nothing was submitted, so one fresh try is safe.
        await self._quit()
        await self._ensure_connected()
        return await self._transaction(sender, recipients, data)

    async def _ensure_connected(self) -> bool:
        """Open a session unless a usable one is kept; True when an old one is reused."""
        loop = asyncio.get_running_loop()
        client = self._client
        if client is not None and client.is_connected:
            too_idle = loop.time() - self._last_used > self.config.max_idle_seconds
            too_many = self._sent_on_client >= self.config.max_messages_per_connection
            if not (too_idle or too_many):
                return True
            await self._quit()
        elif client is not None:
            client.close()
            self._client = None
        self._client = await self._connect()
        self._sent_on_client = 0
        self._last_used = loop.time()
        return False

    async def _connect(self) -> aiosmtplib.SMTP:
        cfg = self.config
        client = aiosmtplib.SMTP(
            hostname=cfg.host,
            port=cfg.port,
            username=cfg.username,
            password=cfg.password,
            use_tls=cfg.implicit_tls,
            start_tls=cfg.starttls,
            tls_context=cfg.tls_context,
            timeout=cfg.timeout,
            local_hostname=cfg.local_hostname,
        )
        try:
            await client.connect()
        except aiosmtplib.SMTPResponseException as exc:
            client.close()
            raise SmtpError(exc.message, stage="connect", code=exc.code) from exc
        except (aiosmtplib.SMTPException, OSError, ssl.SSLError) as exc:
            client.close()
            raise SmtpError(f"cannot open an SMTP session: {exc}", stage="connect") from exc
        self.connections_opened += 1
        return client

    async def _transaction(self, sender: str, recipients: Sequence[str], data: bytes) -> SmtpReply:
        client = self._client
        assert client is not None
        command = "MAIL"
        try:
            await client.mail(sender)
            command = "RCPT"
            for recipient in recipients:
                await client.rcpt(recipient)
            command = "DATA"
            start = await client.execute_command(b"DATA")
        except aiosmtplib.SMTPResponseException as exc:
            await self._reset(client)
            raise SmtpError(exc.message, stage="envelope", code=exc.code, command=command) from exc
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            raise SmtpError(
                f"connection lost before the message: {exc}", stage="envelope", command=command
            ) from exc
        if start.code != _START_INPUT:
            await self._reset(client)
            raise SmtpError(start.message, stage="envelope", code=start.code, command=command)
        reply = await self._write_payload(client, data)
        self._sent_on_client += 1
        self._last_used = asyncio.get_running_loop().time()
        return reply

    async def _write_payload(self, client: aiosmtplib.SMTP, data: bytes) -> SmtpReply:
        protocol = client.protocol
        try:
            if protocol is None:
                raise aiosmtplib.SMTPServerDisconnected("connection lost after DATA")
            # aiosmtplib's public DATA call would send the DATA command again; its
            # protocol object writes and reads exactly one exchange, which is what the
            # payload half of DATA is.
            protocol.write(data)
            final = await protocol.read_response(timeout=self.config.timeout)
        except (aiosmtplib.SMTPException, OSError) as exc:
            self._drop()
            raise SmtpError(
                f"connection lost after the message was sent: {exc}", stage="payload"
            ) from exc
        if final.code >= 400:
            if final.code == _SERVICE_CLOSING:
                self._drop()
            raise SmtpError(final.message, stage="payload", code=final.code, command="DATA")
        return SmtpReply(final.code, final.message)

    async def _reset(self, client: aiosmtplib.SMTP) -> None:
        """RSET after a refusal so the kept session starts the next message clean."""
        try:
            await client.rset()
        except (aiosmtplib.SMTPException, OSError):
            self._drop()

    def _drop(self) -> None:
        if self._client is not None:
            self._client.close()
            self._client = None

    async def _quit(self) -> None:
        client, self._client = self._client, None
        if client is None:
            return
        try:
            if client.is_connected:
                await client.quit()
        except (aiosmtplib.SMTPException, OSError):
            pass  # a session that will not say goodbye is closed all the same
        finally:
            client.close()

    async def close(self) -> None:
        """QUIT the kept session, if any."""
        async with self._lock:
            await self._quit()
