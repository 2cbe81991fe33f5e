"""A scriptable SMTP server on 127.0.0.1 for the client tests, and test certificates.

The server speaks enough SMTP for the client (EHLO/HELO, STARTTLS, AUTH
through mox.sasl's server mechanisms, MAIL, RCPT, DATA, BDAT, RSET, NOOP,
QUIT) and injects faults: replies per command or recipient, stalls,
disconnects mid-DATA, huge reply lines.
"""

from __future__ import annotations

import asyncio
import base64
import contextlib
import datetime
import ipaddress
import ssl
from collections.abc import Awaitable, Callable
from dataclasses import dataclass, field
from pathlib import Path

from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from mox.sasl import Challenge, Failure, NeedCredentials, Success, channel_bindings, new_server

# --- Certificates.


@dataclass
class CertFiles:
    cert: Path  # Leaf (and chain) PEM.
    key: Path
    der: bytes  # Leaf DER.


@dataclass
class CA:
    key: ec.EllipticCurvePrivateKey
    cert: x509.Certificate
    pem: str


def _name(cn: str) -> x509.Name:
    return x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, cn)])


def make_ca(cn: str = "moxtest ca") -> CA:
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    cert = (
        x509.CertificateBuilder()
        .subject_name(_name(cn))
        .issuer_name(_name(cn))
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(days=1))
        .not_valid_after(now + datetime.timedelta(days=30))
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(
            x509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True
        )
        .add_extension(x509.SubjectKeyIdentifier.from_public_key(key.public_key()), critical=False)
        .sign(key, hashes.SHA256())
    )
    return CA(key, cert, cert.public_bytes(serialization.Encoding.PEM).decode())


def make_cert(
    tmp: Path,
    names: list[str],
    *,
    ca: CA | None = None,
    expired: bool = False,
    prefix: str = "leaf",
) -> CertFiles:
    """A leaf certificate for names, signed by ca or self-signed, optionally expired."""
    key = ec.generate_private_key(ec.SECP256R1())
    now = datetime.datetime.now(datetime.UTC)
    if expired:
        nb, na = now - datetime.timedelta(days=30), now - datetime.timedelta(days=1)
    else:
        nb, na = now - datetime.timedelta(days=1), now + datetime.timedelta(days=30)
    sans: list[x509.GeneralName] = []
    for n in names:
        try:
            sans.append(x509.IPAddress(ipaddress.ip_address(n)))
        except ValueError:
            sans.append(x509.DNSName(n))
    issuer = ca.cert.subject if ca else _name(names[0])
    builder = (
        x509.CertificateBuilder()
        .subject_name(_name(names[0]))
        .issuer_name(issuer)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(nb)
        .not_valid_after(na)
        .add_extension(x509.SubjectAlternativeName(sans), critical=False)
        .add_extension(x509.BasicConstraints(ca=False, path_length=None), critical=True)
        .add_extension(x509.ExtendedKeyUsage([x509.oid.ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
    )
    if ca:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(ca.key.public_key()), critical=False
        )
    cert = builder.sign(ca.key if ca else key, hashes.SHA256())
    certp = tmp / f"{prefix}.crt"
    keyp = tmp / f"{prefix}.key"
    certp.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    keyp.write_bytes(
        key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return CertFiles(certp, keyp, cert.public_bytes(serialization.Encoding.DER))


def server_context(files: CertFiles, *, max_version: ssl.TLSVersion | None = None) -> ssl.SSLContext:
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    ctx.load_cert_chain(files.cert, files.key)
    if max_version is not None:
        ctx.maximum_version = max_version
    return ctx


# --- Server.


@dataclass
class Received:
    mail_from: str
    mail_params: list[str]
    rcpts: list[str]
    rcpt_lines: list[str]
    data: bytes
    bdat: bool
    size: int = 0


DEFAULT_EXTENSIONS = ["PIPELINING", "8BITMIME", "ENHANCEDSTATUSCODES", "SMTPUTF8", "SIZE 20000000", "DSN"]

CommandHook = Callable[[str, asyncio.StreamWriter], Awaitable[bool]]


@dataclass
class FakeServer:
    """Settings of the fake server; start with ``async with serve(FakeServer(...)) as (srv, port)``.

    Attributes:
        extensions: EHLO keywords (STARTTLS/AUTH added when configured).
        greeting: raw greeting bytes.
        replies: verb ("EHLO", "MAIL", "DATA", "DATAEND", "BDAT", "RSET", ...)
            to raw reply bytes, replacing the normal reply.
        rcpt_replies: recipient address to raw reply.
        stall: verb after which the server stops answering (reads on, never replies).
        disconnect_in_data: close the connection after this many octets of message data.
        tls: server context for STARTTLS (announced when set).
        implicit_tls: whether the listener is TLS from the start (uses tls).
        auth: mechanisms to announce; credentials from lookup.
        hook: called for each command line first; return True when it handled it.
    """

    extensions: list[str] = field(default_factory=lambda: list(DEFAULT_EXTENSIONS))
    greeting: bytes = b"220 fake.example ESMTP\r\n"
    replies: dict[str, bytes] = field(default_factory=dict)
    rcpt_replies: dict[str, bytes] = field(default_factory=dict)
    stall: str = ""
    disconnect_in_data: int = -1
    tls: ssl.SSLContext | None = None
    starttls_announce: bool = True
    implicit_tls: bool = False
    auth: list[str] = field(default_factory=list)
    auth_lookup: Callable[[str], Awaitable[object]] | None = None
    hook: CommandHook | None = None
    keep_data: bool = True  # False: message data is counted, not kept (memory tests).
    received: list[Received] = field(default_factory=list)
    commands: list[str] = field(default_factory=list)
    connections: int = 0
    authenticated: list[str] = field(default_factory=list)
    errors: list[BaseException] = field(default_factory=list)

    async def handle(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        self.connections += 1
        try:
            await self._session(reader, writer)
        except (ConnectionError, asyncio.IncompleteReadError, ssl.SSLError, OSError):
            pass
        except asyncio.CancelledError:
            # Shutdown of the test server. Not re-raised: asyncio logs an error for
            # a cancelled client_connected_cb task.
            pass
        except Exception as e:  # Surface server bugs in the test.
            self.errors.append(e)
        finally:
            writer.transport.abort()

    async def _reply(self, writer: asyncio.StreamWriter, verb: str, default: bytes) -> None:
        if self.stall and verb == self.stall:
            await asyncio.sleep(3600)
        writer.write(self.replies.get(verb, default))
        await writer.drain()

    async def _session(self, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        tls_active = self.implicit_tls
        await self._reply(writer, "GREETING", self.greeting)
        mail_from = ""
        mail_params: list[str] = []
        rcpts: list[str] = []
        rcpt_lines: list[str] = []
        bdat_buf = bytearray()
        bdat_size = 0
        while True:
            raw = await reader.readline()
            if not raw:
                return
            line = raw.decode("utf-8", "replace").rstrip("\r\n")
            self.commands.append(line)
            if self.hook is not None and await self.hook(line, writer):
                continue
            verb = line.split(" ", 1)[0].upper()
            if verb == "EHLO":
                exts = list(self.extensions)
                if self.tls is not None and not tls_active and self.starttls_announce:
                    exts.append("STARTTLS")
                if self.auth:
                    exts.append("AUTH " + " ".join(self.auth))
                lines = ["fake.example hello", *exts]
                out = "".join(f"250-{ln}\r\n" for ln in lines[:-1]) + f"250 {lines[-1]}\r\n"
                await self._reply(writer, "EHLO", out.encode())
            elif verb == "HELO":
                await self._reply(writer, "HELO", b"250 fake.example\r\n")
            elif verb == "STARTTLS":
                await self._reply(writer, "STARTTLS", b"220 2.0.0 go ahead\r\n")
                if "STARTTLS" in self.replies and not self.replies["STARTTLS"].startswith(b"220"):
                    continue
                assert self.tls is not None
                await writer.start_tls(self.tls)
                tls_active = True
            elif verb == "AUTH":
                await self._auth(line, reader, writer)
            elif verb == "MAIL":
                rest = line[len("MAIL FROM:") :]
                addr, _, params = rest.partition(">")
                mail_from = addr.lstrip("<")
                mail_params = params.split()
                rcpts, rcpt_lines = [], []
                await self._reply(writer, "MAIL", b"250 2.1.0 ok\r\n")
            elif verb == "RCPT":
                rest = line[len("RCPT TO:") :]
                addr = rest.partition(">")[0].lstrip("<")
                rcpt_lines.append(line)
                reply = self.rcpt_replies.get(addr, self.replies.get("RCPT", b"250 2.1.5 ok\r\n"))
                if reply.startswith(b"2"):
                    rcpts.append(addr)
                if self.stall == "RCPT":
                    await asyncio.sleep(3600)
                writer.write(reply)
                await writer.drain()
            elif verb == "DATA":
                if not rcpts and "DATA" not in self.replies:
                    await self._reply(writer, "DATA", b"554 5.5.1 no valid recipients\r\n")
                    continue
                await self._reply(writer, "DATA", b"354 go ahead\r\n")
                if not self.replies.get("DATA", b"354").startswith(b"354"):
                    continue
                data = bytearray()
                size = 0
                while True:
                    ln = await reader.readline()
                    if not ln:
                        return
                    if ln == b".\r\n":
                        break
                    size += len(ln) - (1 if ln.startswith(b"..") else 0)
                    if self.keep_data:
                        data += ln
                    if 0 <= self.disconnect_in_data <= size:
                        return
                msg = bytes(data).replace(b"\r\n..", b"\r\n.")
                if msg.startswith(b".."):
                    msg = msg[1:]
                self.received.append(
                    Received(mail_from, mail_params, list(rcpts), list(rcpt_lines), msg, False, size)
                )
                await self._reply(writer, "DATAEND", b"250 2.0.0 message queued\r\n")
            elif verb == "BDAT":
                parts = line.split()
                n = int(parts[1])
                last = len(parts) > 2 and parts[2].upper() == "LAST"
                chunk = await reader.readexactly(n)
                bdat_size += n
                if 0 <= self.disconnect_in_data <= bdat_size:
                    return
                if self.keep_data:
                    bdat_buf += chunk
                if not rcpts:
                    bdat_buf.clear()
                    bdat_size = 0
                    await self._reply(writer, "BDAT", b"554 5.5.1 no valid recipients\r\n")
                    continue
                if last:
                    self.received.append(
                        Received(
                            mail_from,
                            mail_params,
                            list(rcpts),
                            list(rcpt_lines),
                            bytes(bdat_buf),
                            True,
                            bdat_size,
                        )
                    )
                    bdat_buf.clear()
                    bdat_size = 0
                    await self._reply(writer, "BDAT", b"250 2.0.0 message queued\r\n")
                else:
                    await self._reply(writer, "BDATCHUNK", b"250 2.0.0 chunk ok\r\n")
            elif verb == "RSET":
                rcpts, rcpt_lines = [], []
                bdat_buf.clear()
                bdat_size = 0
                await self._reply(writer, "RSET", b"250 2.0.0 ok\r\n")
            elif verb == "NOOP":
                await self._reply(writer, "NOOP", b"250 2.0.0 ok\r\n")
            elif verb == "QUIT":
                await self._reply(writer, "QUIT", b"221 2.0.0 bye\r\n")
                return
            else:
                writer.write(b"500 5.5.2 unknown command\r\n")
                await writer.drain()

    async def _auth(self, line: str, reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        parts = line.split()
        ssl_object = writer.get_extra_info("ssl_object")
        # A server that announces no -PLUS mechanism does not bind (else a client's "y" flag fails it).
        plus = any(m.upper().endswith("-PLUS") for m in self.auth)
        mech = new_server(parts[1], channel_bindings=channel_bindings(ssl_object) if plus else None)
        step = mech.respond(parts[2] if len(parts) > 2 else None, initial=True)
        while True:
            if isinstance(step, NeedCredentials):
                assert self.auth_lookup is not None
                creds = await self.auth_lookup(step.username)
                step = mech.provide(creds)  # type: ignore[arg-type]
                continue
            if isinstance(step, Challenge):
                writer.write(b"334 " + base64.b64encode(step.data) + b"\r\n")
                await writer.drain()
                resp = (await reader.readline()).rstrip(b"\r\n")
                if resp == b"*":
                    writer.write(b"501 5.0.0 aborted\r\n")
                    await writer.drain()
                    return
                step = mech.respond(resp)
                continue
            if isinstance(step, Success):
                self.authenticated.append(step.username)
                writer.write(b"235 2.7.0 authenticated\r\n")
            else:
                assert isinstance(step, Failure)
                if step.server_data is not None:
                    writer.write(b"334 " + base64.b64encode(step.server_data) + b"\r\n")
                    await writer.drain()
                    await reader.readline()
                writer.write(b"535 5.7.8 authentication failed\r\n")
            await writer.drain()
            return


@contextlib.asynccontextmanager
async def serve(fake: FakeServer):  # type: ignore[no-untyped-def]
    """Run fake on 127.0.0.1, yielding (fake, port)."""
    ssl_ctx = fake.tls if fake.implicit_tls else None
    tasks: set[asyncio.Task[None]] = set()

    async def handler(r: asyncio.StreamReader, w: asyncio.StreamWriter) -> None:
        task = asyncio.current_task()
        assert task is not None
        tasks.add(task)
        try:
            await fake.handle(r, w)
        finally:
            tasks.discard(task)

    server = await asyncio.start_server(handler, "127.0.0.1", 0, ssl=ssl_ctx)
    port = server.sockets[0].getsockname()[1]
    try:
        yield fake, port
    finally:
        server.close()
        for t in list(tasks):
            t.cancel()
        for t in list(tasks):
            with contextlib.suppress(BaseException):
                await t
        await server.wait_closed()
    if fake.errors:
        raise fake.errors[0]
