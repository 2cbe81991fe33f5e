"""``mox smtp dial``: connect to an SMTP server, set up the session (STARTTLS), then hand the terminal over."""

from __future__ import annotations

import asyncio
import ipaddress
import socket
import ssl
import sys

from mox import mlog
from mox.cli.main import CommandError, Flag, Invocation, UsageError, command
from mox.dns import DNSError, default_resolver, parse_domain
from mox.dns.domain import DomainError
from mox.smtpclient import SMTPClientError, Timeouts, TLSConfig, TLSMode, connect

_DIAL_TIMEOUT = 5.0  # As upstream's dialer for this command.

_TLS_VERSIONS = {
    "tls1.0": ssl.TLSVersion.TLSv1,
    "tls1.1": ssl.TLSVersion.TLSv1_1,
    "tls1.2": ssl.TLSVersion.TLSv1_2,
    "tls1.3": ssl.TLSVersion.TLSv1_3,
}


def _split_host_port(arg: str) -> tuple[str, int]:
    host, port_s = arg, "25"
    if arg.startswith("["):
        end = arg.find("]")
        if end < 0:
            raise UsageError(f"bad address {arg!r}")
        host = arg[1:end]
        rest = arg[end + 1 :]
        if rest:
            if not rest.startswith(":"):
                raise UsageError(f"bad address {arg!r}")
            port_s = rest[1:]
    elif arg.count(":") == 1:
        host, port_s = arg.split(":")
    try:
        port = int(port_s)
    except ValueError:
        raise CommandError(f"parsing port {port_s!r}: not a number") from None
    if not 0 < port < 65536:
        raise CommandError(f"port {port} out of range")
    return host, port


def _context_factory(inv: Invocation, verify: bool) -> ssl.SSLContext:
    f = inv.flags
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    if verify:
        if f["tlscerts"]:
            ctx.load_verify_locations(cafile=str(f["tlscerts"]))
        else:
            ctx.load_default_certs(ssl.Purpose.SERVER_AUTH)
    else:
        ctx.check_hostname = False
        ctx.verify_mode = ssl.CERT_NONE
    for name, attr in (("tlsversionmin", "minimum_version"), ("tlsversionmax", "maximum_version")):
        v = str(f[name])
        if v:
            if v not in _TLS_VERSIONS:
                raise CommandError(f"invalid tls version {v!r}, expected one of {', '.join(_TLS_VERSIONS)}")
            setattr(ctx, attr, _TLS_VERSIONS[v])
    if f["tlsciphersuites"]:
        try:
            ctx.set_ciphers(str(f["tlsciphersuites"]).replace(",", ":"))
        except ssl.SSLError as e:
            raise CommandError(f"tls ciphersuites: {e}") from None
    if f["tlsnosessiontickets"]:
        ctx.options |= ssl.OP_NO_TICKET
    return ctx


async def _resolve(host: str) -> list[str]:
    try:
        return [str(ipaddress.ip_address(host))]
    except ValueError:
        pass
    try:
        name = parse_domain(host.removesuffix(".")).ascii
    except DomainError as e:
        raise CommandError(f"parsing remote host: {e}") from None
    try:
        res = await default_resolver().lookup_ip(name)
    except DNSError as e:
        raise CommandError(f"resolve host: {e}") from None
    return [str(ip) for ip in res.records]


async def _copy_out(reader: asyncio.StreamReader, buffered: bytes) -> None:
    out = sys.stdout.buffer
    if buffered:
        out.write(buffered)
        out.flush()
    while data := await reader.read(65536):
        out.write(data)
        out.flush()


async def _dial(inv: Invocation, log: mlog.Log) -> None:
    f = inv.flags
    host, port = _split_host_port(inv.args[0])
    remote_name = str(f["remotehostname"]) or host
    ips = await _resolve(host)
    log.info("resolved remote address", ips=",".join(ips))
    mode = TLSMode.OPPORTUNISTIC
    if f["forcetls"]:
        mode = TLSMode.REQUIRED_STARTTLS
    elif f["notls"]:
        mode = TLSMode.SKIP
    ehlo = str(f["ehlohostname"]) or socket.gethostname()
    tls = TLSConfig(
        mode=mode,
        server_name=remote_name,
        pkix=bool(f["tlsverify"]) and mode is not TLSMode.SKIP,
        context_factory=lambda verify: _context_factory(inv, verify),
    )
    client = None
    errors = []
    for ip in ips:
        try:
            client = await connect(
                ip, port, ehlo_hostname=ehlo, tls=tls, timeouts=Timeouts(connect=_DIAL_TIMEOUT), log=log
            )
            break
        except SMTPClientError as e:
            errors.append(f"{ip}: {e}")
            if e.command != "connect":
                break
    if client is None:
        raise CommandError("dial: " + "; ".join(errors or ["no addresses"]))
    log.info("connected to remote host", ip=client.remote_ip)
    if client.tls.used:
        log.info(
            "smtp initialized with tls",
            version=client.tls.version,
            ciphersuite=client.tls.cipher,
            sni=tls.server_name,
        )
    else:
        log.info("smtp initialized without tls")

    reader, writer, buffered = client.detach()
    out_task = asyncio.create_task(_copy_out(reader, buffered))
    try:
        while True:
            read = asyncio.ensure_future(asyncio.to_thread(sys.stdin.buffer.readline))
            done, _ = await asyncio.wait({read, out_task}, return_when=asyncio.FIRST_COMPLETED)
            if out_task in done:
                # The server closed the connection.
                read.cancel()
                break
            line = read.result()
            if not line:
                break
            # Lines from the terminal end in LF; SMTP wants CRLF.
            if line.endswith(b"\n") and not line.endswith(b"\r\n"):
                line = line[:-1] + b"\r\n"
            writer.write(line)
            await writer.drain()
        if not out_task.done():
            # Stdin closed: give the server's last replies a moment.
            try:
                async with asyncio.timeout(5):
                    await out_task
            except TimeoutError:
                pass
    except (ConnectionError, OSError) as e:
        raise CommandError(f"connection: {e}") from None
    finally:
        out_task.cancel()
        writer.transport.abort()


@command(
    "smtp dial",
    params="$host[:$port]",
    nargs=(1, 1),
    flags=[
        Flag(
            "tlsciphersuites",
            "",
            "ciphersuites to allow, comma-separated, OpenSSL names, only for TLS 1.2 and earlier, empty value uses TLS stack defaults",
        ),
        Flag("tlscerts", "", "path to root ca certificates in pem form, for verification"),
        Flag(
            "tlsversionmin",
            "",
            "minimum TLS version, empty value uses TLS stack default; values: tls1.2, etc.",
        ),
        Flag(
            "tlsversionmax",
            "",
            "maximum TLS version, empty value uses TLS stack default; values: tls1.2, etc.",
        ),
        Flag("tlsverify", False, "verify remote hostname during TLS"),
        Flag("tlsnosessiontickets", False, "disable TLS session tickets"),
        Flag("notls", False, "do not use TLS"),
        Flag("forcetls", False, "use TLS, even if remote SMTP server does not announce STARTTLS extension"),
        Flag("ehlohostname", "", "our hostname to use during the SMTP EHLO command"),
        Flag(
            "remotehostname",
            "",
            "remote hostname to use for TLS verification, if enabled; the hostname from the parameter is used by default",
        ),
    ],
    help="""Dial the address, initialize the SMTP session, including using STARTTLS to enable TLS if the server supports it.

If no port is specified, SMTP port 25 is used.

Data is copied between connection and stdin/stdout until either side closes the
connection. Lines read from stdin get CRLF line endings.

The flags influence the TLS configuration, useful for debugging interoperability
issues.

No MTA-STS or DANE verification is done.

Hint: Use "mox -loglevel trace smtp dial ..." to see the protocol messages
exchanged during connection set up.""",
)
def cmd_smtp_dial(inv: Invocation) -> None:
    if inv.flags["notls"] and inv.flags["forcetls"]:
        raise CommandError("cannot have both -notls and -forcetls")
    level = inv.opts.loglevel or "info"
    if level not in mlog.LEVELS:
        raise CommandError(f"unknown log level {level!r}")
    mlog.set_logfmt(False)
    mlog.set_config({"": mlog.parse_level(level)})
    log = mlog.new("smtpdial")
    try:
        asyncio.run(_dial(inv, log))
    except SMTPClientError as e:
        raise CommandError(str(e)) from None
