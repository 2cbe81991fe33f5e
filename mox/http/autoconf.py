"""Documents that let mail clients and MTAs find our settings (pure builders).

- Thunderbird autoconfig, ``/mail/config-v1.1.xml`` on ``autoconfig.<domain>``
  (the "clientConfig" format version 1.1).
- Microsoft autodiscover, POST ``/autodiscover/autodiscover.xml`` (the 2006
  "outlook" response schema), for clients that look up ``_autodiscover._tcp``.
- The MTA-STS policy (RFC 8461 section 3.2) at
  ``https://mta-sts.<domain>/.well-known/mta-sts.txt``.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET

from mox.config import model
from mox.dns.domain import Domain, parse_domain
from mox.http.clientconfig import ClientConfig, TLSMode

AUTODISCOVER_RESPONSE_NS = "http://schemas.microsoft.com/exchange/autodiscover/responseschema/2006"
AUTODISCOVER_OUTLOOK_NS = "http://schemas.microsoft.com/exchange/autodiscover/outlook/responseschema/2006a"
# Requests are small XML documents; anything larger is refused before parsing.
MAX_AUTODISCOVER_REQUEST = 64 * 1024

_SOCKET_TYPE = {TLSMode.IMMEDIATE: "SSL", TLSMode.STARTTLS: "STARTTLS", TLSMode.NONE: "plain"}


def _xml(root: ET.Element) -> bytes:
    ET.indent(root, "\t")
    return b'<?xml version="1.0" encoding="UTF-8"?>\n' + ET.tostring(root, encoding="utf-8") + b"\n"


def _sub(parent: ET.Element, tag: str, text: str | int | None = None, **attrs: str) -> ET.Element:
    e = ET.SubElement(parent, tag, attrs)
    if text is not None:
        e.text = str(text)
    return e


def autoconfig_xml(domain: Domain, email: str, cc: ClientConfig) -> bytes:
    """The Thunderbird autoconfig document for an address (or the %EMAILADDRESS% placeholder)."""
    root = ET.Element("clientConfig", version="1.1")
    prov = _sub(root, "emailProvider", id=domain.ascii)
    _sub(prov, "domain", domain.ascii)
    _sub(prov, "displayName", email)
    _sub(prov, "displayShortName", domain.ascii)

    def server(tag: str, typ: str, host: str, port: int, socket_type: str) -> None:
        s = _sub(prov, tag, type=typ)
        _sub(s, "hostname", host)
        _sub(s, "port", port)
        _sub(s, "socketType", socket_type)
        _sub(s, "username", email)
        _sub(s, "authentication", "password-encrypted")

    server("incomingServer", "imap", cc.imap.host.ascii, cc.imap.port, _SOCKET_TYPE[cc.imap.tls_mode])
    if cc.imap.enabled_on_https:
        server("incomingServer", "imap", cc.imap.host.ascii, 443, "SSL")
    sub = cc.submission
    server("outgoingServer", "smtp", sub.host.ascii, sub.port, _SOCKET_TYPE[sub.tls_mode])
    if sub.enabled_on_https:
        server("outgoingServer", "smtp", sub.host.ascii, 443, "SSL")
    _sub(root, "clientConfigUpdate", url=f"https://autoconfig.{domain.ascii}/mail/config-v1.1.xml")
    return _xml(root)


class AutodiscoverError(ValueError):
    """The autodiscover request document is not usable."""


def autodiscover_request_email(body: bytes) -> str:
    """The EMailAddress from an autodiscover request document."""
    if len(body) > MAX_AUTODISCOVER_REQUEST:
        raise AutodiscoverError("request too large")
    if b"<!DOCTYPE" in body or b"<!ENTITY" in body:
        # No DTDs: entity expansion is a denial-of-service vector.
        raise AutodiscoverError("DTDs are not allowed")
    try:
        root = ET.fromstring(body)
    except ET.ParseError as e:
        raise AutodiscoverError(f"parsing autodiscover request: {e}") from None
    if root.tag.rsplit("}", 1)[-1] != "Autodiscover":
        raise AutodiscoverError("not an Autodiscover request")
    for el in root.iter():
        if el.tag.rsplit("}", 1)[-1] == "EMailAddress" and el.text:
            return el.text.strip()
    raise AutodiscoverError("missing EMailAddress")


def autodiscover_xml(email: str, cc: ClientConfig) -> bytes:
    """The autodiscover response with IMAP and SMTP settings."""

    def ssl_encryption(mode: TLSMode) -> tuple[str, str]:
        if mode is TLSMode.IMMEDIATE:
            return "on", "TLS"
        if mode is TLSMode.STARTTLS:
            return "on", ""
        return "off", ""

    root = ET.Element("Autodiscover", xmlns=AUTODISCOVER_RESPONSE_NS)
    resp = _sub(root, "Response", xmlns=AUTODISCOVER_OUTLOOK_NS)
    acc = _sub(resp, "Account")
    _sub(acc, "AccountType", "email")
    _sub(acc, "Action", "settings")
    for typ, pc in (("IMAP", cc.imap), ("SMTP", cc.submission)):
        p = _sub(acc, "Protocol")
        _sub(p, "Type", typ)
        _sub(p, "Server", pc.host.ascii)
        _sub(p, "Port", pc.port)
        _sub(p, "DirectoryPort", 0)
        _sub(p, "ReferralPort", 0)
        _sub(p, "LoginName", email)
        ssl_value, encryption = ssl_encryption(pc.tls_mode)
        _sub(p, "SSL", ssl_value)
        if encryption:
            _sub(p, "Encryption", encryption)
        # "SPA" is Microsoft's own authentication; off, as upstream.
        _sub(p, "SPA", "off")
        _sub(p, "AuthRequired", "on")
    return _xml(root)


def _mx_pattern(s: str) -> str:
    """An MX pattern from the config in ASCII form; a leading "*." stays."""
    wildcard = s.startswith("*.")
    d = parse_domain(s[2:] if wildcard else s)
    return ("*." if wildcard else "") + d.ascii


def mtasts_policy_text(sts: model.MTASTS, hostname: Domain) -> str:
    """The policy file, RFC 8461 section 3.2: CRLF-separated "key: value" lines."""
    mx = [_mx_pattern(m) for m in sts.MX] or [hostname.ascii]
    lines = ["version: STSv1", f"mode: {sts.Mode}"]
    lines += [f"mx: {m}" for m in mx]
    lines.append(f"max_age: {int(sts.MaxAge) // 1_000_000_000}")
    return "\r\n".join(lines) + "\r\n"
