"""A real SMTP server on loopback (aiosmtpd) that records what it receives.

Runs inside the test's event loop (`loop.create_server`), so there is no thread and no
self-probe. Modes make it misbehave the ways real relays do: refuse a recipient (550 or
450), drop the connection after the final dot instead of answering, or never answer;
require STARTTLS and AUTH. Certificates are generated at test time with the `openssl` command line.
"""

from __future__ import annotations

import asyncio
import email
import email.policy
import shutil
import ssl
import subprocess
from dataclasses import dataclass, field
from email.message import EmailMessage
from functools import cached_property
from pathlib import Path
from typing import Any, Literal

from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

Mode = Literal["accept", "reject_550", "reject_450", "drop_after_data", "stall_after_data"]


class CertificateToolMissing(RuntimeError):
    """Neither a way to make a test certificate was found."""


@dataclass(frozen=True)
class SelfSignedCertificate:
    """A self-signed certificate for 127.0.0.1 and its key, as files."""

    cert: Path
    key: Path

    def server_context(self) -> ssl.SSLContext:
        """What the sink presents."""
        context = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        context.load_cert_chain(self.cert, self.key)
        return context

    def client_context(self) -> ssl.SSLContext:
        """A client context that trusts this certificate (hostname checked)."""
        return ssl.create_default_context(cafile=str(self.cert))


def make_certificate(directory: Path) -> SelfSignedCertificate:
    """Generate a self-signed certificate valid for IP 127.0.0.1 and `localhost`."""
    openssl = shutil.which("openssl")
    if openssl is None:
        raise CertificateToolMissing("the openssl command is needed to make a test certificate")
    cert, key = directory / "smtp-cert.pem", directory / "smtp-key.pem"
    subprocess.run(  # noqa: S603 - a fixed openssl command line, no outside input
        [
            openssl,
            "req",
            "-x509",
            "-newkey",
            "rsa:2048",
            "-nodes",
            "-days",
            "2",
            "-subj",
            "/CN=127.0.0.1",
            "-keyout",
            str(key),
            "-out",
            str(cert),
            "-addext",
            "subjectAltName=IP:127.0.0.1,DNS:localhost",
        ],
        check=True,
        capture_output=True,
    )
    return SelfSignedCertificate(cert, key)


@dataclass
class Received:
    """One accepted message: the envelope and the raw message (parsed on first use)."""

    mail_from: str
    rcpt_tos: list[str]
    raw: bytes
    authenticated_as: str | None
    tls: bool

    @cached_property
    def message(self) -> EmailMessage:
        """The message parsed with the modern email API (lazily: parsing is slow)."""
        parsed = email.message_from_bytes(
            self.raw, _class=EmailMessage, policy=email.policy.default
        )
        assert isinstance(parsed, EmailMessage)
        return parsed


@dataclass
class SmtpSink:
    """aiosmtpd handler plus the server it runs in; counts connections."""

    mode: Mode = "accept"
    credentials: dict[str, str] = field(default_factory=dict)
    messages: list[Received] = field(default_factory=list)
    connections: int = 0
    rcpt_attempts: int = 0
    data_attempts: int = 0
    port: int = 0
    _server: asyncio.Server | None = None
    _sessions: list[SMTP] = field(default_factory=list)

    async def handle_RCPT(
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        """Accept, or refuse the way the mode says."""
        self.rcpt_attempts += 1
        if self.mode == "reject_550":
            return "550 5.1.1 No such mailbox here"
        if self.mode == "reject_450":
            return "450 4.2.0 Mailbox busy, try later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        """Record the message; in drop mode, hang up instead of answering."""
        self.data_attempts += 1
        raw = envelope.original_content or b""
        if self.mode == "drop_after_data":
            # The server has the whole message but the client never hears 250: the
            # case where only the server knows whether it was accepted.
            assert server.transport is not None
            server.transport.close()
            await asyncio.Event().wait()  # cancelled by aiosmtpd on connection_lost
        if self.mode == "stall_after_data":
            await asyncio.Event().wait()  # never answers: the client's timeout decides
        auth = session.auth_data
        self.messages.append(
            Received(
                mail_from=envelope.mail_from or "",
                rcpt_tos=list(envelope.rcpt_tos),
                raw=raw,
                authenticated_as=auth.login.decode() if isinstance(auth, LoginPassword) else None,
                tls=session.ssl is not None
                or (
                    server.transport is not None
                    and server.transport.get_extra_info("ssl_object") is not None
                ),
            )
        )
        return "250 2.0.0 Queued"

    def authenticate(
        self, server: SMTP, session: Session, envelope: Envelope, mechanism: str, data: Any
    ) -> AuthResult:
        """Check LOGIN/PLAIN credentials against `credentials`."""
        ok = (
            isinstance(data, LoginPassword)
            and self.credentials.get(data.login.decode()) == data.password.decode()
        )
        return AuthResult(success=ok, handled=False, auth_data=data if ok else None)

    async def start(
        self,
        *,
        certificate: SelfSignedCertificate | None = None,
        implicit_tls: bool = False,
        require_auth: bool = False,
    ) -> SmtpSink:
        """Listen on 127.0.0.1, a free port; STARTTLS when given a certificate."""
        loop = asyncio.get_running_loop()
        tls = certificate.server_context() if certificate is not None else None

        def protocol() -> SMTP:
            self.connections += 1
            session = SMTP(
                self,
                hostname="sink.test",
                tls_context=None if implicit_tls else tls,
                require_starttls=tls is not None and not implicit_tls,
                authenticator=self.authenticate if require_auth else None,
                auth_required=require_auth,
                auth_require_tls=True,
                loop=loop,
            )
            self._sessions.append(session)
            return session

        self._server = await loop.create_server(
            protocol, "127.0.0.1", 0, ssl=tls if implicit_tls else None
        )
        self.port = self._server.sockets[0].getsockname()[1]
        return self

    def hang_up(self) -> None:
        """Close every open session from the server side, as an idle timeout does."""
        for session in self._sessions:
            if session.transport is not None:
                session.transport.close()

    async def stop(self) -> None:
        """Stop listening and close open sessions."""
        if self._server is not None:
            self._server.close()
            for session in self._sessions:
                if session.transport is not None:
                    session.transport.close()
            await self._server.wait_closed()
            self._server = None
            self._sessions.clear()
