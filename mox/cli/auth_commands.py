"""``mox spf|dkim|dmarc ...``: check and debug message authentication from the command line.

SPF (RFC 7208), DKIM (RFC 6376, RFC 8463) and DMARC (RFC 7489) with the same
libraries and resolver (``MOX_DNS`` honoured) the SMTP server uses. Names,
arguments and output lines follow upstream mox, operators script against them.
"""

from __future__ import annotations

import asyncio
import sys
from pathlib import Path

from mox import dkim, dmarc, publicsuffix, spf
from mox import message as msg
from mox.cli.main import CommandError, Invocation, command
from mox.config.load import ConfigErrors, load_config
from mox.dkim.canon import split_message
from mox.dkim.record import PrivateKey, claims_dkim
from mox.dns import DNSError, Domain, default_resolver, dnssec_status, parse_domain
from mox.dns.domain import DomainError
from mox.message.part import to_crlf
from mox.smtp.address import AddressError, parse_address
from mox.spf.check import parse_ip

# The local host name SPF macros see (%{r}), as upstream's commands.
_LOCAL_HOSTNAME = "localhost"
# dkim txt: the record text is printed as quoted strings of this many characters
# (one TXT record of several strings, RFC 6376 section 3.6.2.2), as upstream.
_TXT_CHUNK = 100


def _domain(s: str, what: str, *, lax: bool = False) -> Domain:
    try:
        return parse_domain(s.removesuffix("."), lax=lax)
    except DomainError as e:
        raise CommandError(f"parsing {what} {s!r}: {e}") from None


def _ip(s: str, what: str) -> str:
    try:
        return str(parse_ip(s))
    except ValueError as e:
        raise CommandError(f"parsing {what} {s!r}: {e}") from None


def _go_quote(s: str) -> str:
    """s as a double-quoted string with Go's escapes (upstream prints with %q)."""
    out = ['"']
    for c in s:
        if c in '"\\':
            out.append("\\" + c)
        elif c == "\n":
            out.append("\\n")
        elif c == "\t":
            out.append("\\t")
        elif c == "\r":
            out.append("\\r")
        elif not c.isprintable():
            out.append(f"\\x{ord(c):02x}" if ord(c) < 0x80 else f"\\u{ord(c):04x}")
        else:
            out.append(c)
    out.append('"')
    return "".join(out)


def _go_list(items: list[str]) -> str:
    """A list of strings as Go prints a slice with %v."""
    return "[" + " ".join(items) + "]"


def _read(path: str) -> bytes:
    try:
        return Path(path).read_bytes()
    except OSError as e:
        raise CommandError(f"open message: {e}") from None


def _single_from(data: bytes) -> msg.Address:
    env = msg.parse(data).envelope
    addrs = env.from_ if env is not None else []
    if len(addrs) != 1:
        raise CommandError(f"found {len(addrs)} from headers, need exactly 1")
    return addrs[0]


# SPF


@command(
    "spf check",
    params="$domain $ip",
    nargs=(2, 2),
    help="""Evaluate the SPF policy that domain publishes in DNS for a sending IP.

The result says whether the IP may send mail for the domain (pass), may not
(fail, softfail) or something in between (neutral, none), or that the check
could not be completed (temperror, permerror). The SPF mechanism that matched
is printed when there was one, and for a fail the explanation the policy
provides, if any.""",
)
def cmd_spf_check(inv: Invocation) -> None:
    domain = _domain(inv.args[0], "domain")
    ip = _ip(inv.args[1], "ip")
    # As upstream: the check is for MAIL FROM user@domain, with HELO domain.
    rcv = asyncio.run(
        spf.verify(
            default_resolver(), ip, f"user@{domain.ascii}", domain.ascii, receiving_host=_LOCAL_HOSTNAME
        )
    )
    if rcv.problem:
        print(f"error: {rcv.problem}")
    if rcv.explanation:
        print(f"explanation: {rcv.explanation}")
    print(f"status: {rcv.result} ({dnssec_status(rcv.authentic)})")
    if rcv.mechanism:
        print(f"mechanism: {rcv.mechanism}")


@command(
    "spf lookup",
    params="$domain",
    nargs=(1, 1),
    help="Fetch the SPF record of domain from DNS, check it parses, and print it.",
)
def cmd_spf_lookup(inv: Invocation) -> None:
    domain = _domain(inv.args[0], "domain")
    lk = asyncio.run(spf.lookup_record(default_resolver(), domain.ascii))
    if lk.result:
        raise CommandError(f"spf lookup for {domain.name}: {lk.problem}")
    print(lk.text)
    print(f"({dnssec_status(lk.authentic)})")


@command(
    "spf parse",
    params="$txtrecord",
    nargs=(1, 1),
    help="Check that the argument is a valid SPF record. Prints nothing when it is.",
)
def cmd_spf_parse(inv: Invocation) -> None:
    try:
        spf.parse_record(inv.args[0])
    except spf.RecordSyntaxError as e:
        raise CommandError(f"parsing record: {e}") from None


# DKIM


def _key_pem(key: PrivateKey, note: str) -> bytes:
    """PKCS#8 PEM with a "Note" header saying what the key is for, as upstream writes DKIM keys."""
    begin, _, rest = dkim.private_key_pem(key).partition(b"\n")
    return begin + b"\nNote: " + note.encode() + b"\n\n" + rest


@command(
    "dkim gened25519",
    params=">$selector._domainkey.$domain.ed25519.privatekey.pkcs8.pem",
    help="""Write a new ed25519 private key for DKIM signing to stdout, in PKCS#8 PEM.

Ed25519 public keys are short, so their DNS records easily fit in a DNS
response, unlike large RSA keys of similar strength. Not every receiving mail
server verifies ed25519 signatures yet: sign with an RSA key as well.""",
)
def cmd_dkim_gened25519(inv: Invocation) -> None:
    sys.stdout.buffer.write(_key_pem(dkim.generate_ed25519_key(), "ed25519 dkim private key"))
    sys.stdout.flush()


@command(
    "dkim genrsa",
    params=">$selector._domainkey.$domain.rsa2048.privatekey.pkcs8.pem",
    help="""Write a new 2048 bit RSA private key for DKIM signing to stdout, in PKCS#8 PEM.

The PEM block has a note saying the key is meant for DKIM.""",
)
def cmd_dkim_genrsa(inv: Invocation) -> None:
    sys.stdout.buffer.write(_key_pem(dkim.generate_rsa_key(), "rsa-2048 dkim private key"))
    sys.stdout.flush()


@command(
    "dkim lookup",
    params="$selector $domain",
    nargs=(2, 2),
    help="Fetch the DKIM key record of selector at domain from DNS, check it, and print it.",
)
def cmd_dkim_lookup(inv: Invocation) -> None:
    selector = _domain(inv.args[0], "selector", lax=True)
    domain = _domain(inv.args[1], "domain")
    resolver = default_resolver()
    lk = asyncio.run(dkim.lookup_record(resolver, selector, domain))
    txt = ""
    if lk.record is not None or lk.status == dkim.Status.PERMERROR:
        # The record as published, for the "TXT record" line.
        try:
            res = asyncio.run(resolver.lookup_txt(f"{selector.ascii}._domainkey.{domain.ascii}"))
            txt = next((t for t in res.records if claims_dkim(t)), "")
        except DNSError:
            pass
    if lk.error:
        print(f"error: {lk.error}")
    if lk.status != dkim.Status.PASS:
        print(f"status: {lk.status}")
    if txt:
        print(f"TXT record: {txt}")
    print("dnssec-signed: yes" if lk.authentic else "dnssec-signed: no")
    r = lk.record
    if r is not None:
        print("Record:")
        for name, value in (
            ("version", r.version),
            ("hashes", _go_list(r.hashes)),
            ("key", r.key_type),
            ("notes", r.notes),
            ("services", _go_list(r.services)),
            ("flags", _go_list(r.flags)),
        ):
            print(f"\t{name}: {value}")


@command(
    "dkim txt",
    params="<$selector._domainkey.$domain.key.pkcs8.pem",
    help="""Read a DKIM private key (PEM) from stdin and print the DNS TXT record publishing its public key.

Add the record at $selector._domainkey.$domain. The record is printed as
several quoted strings, which DNS concatenates; paste them as one TXT record.""",
)
def cmd_dkim_txt(inv: Invocation) -> None:
    try:
        key = dkim.load_private_key_pem(sys.stdin.buffer.read())
    except ValueError as e:
        raise CommandError(f"reading dkim private key from stdin: {e}") from None
    # As upstream: sha256 only, and t=s (no subdomains in i=).
    record = dkim.record_for_key(key, ["sha256"])
    record.flags = ["s"]
    text = record.text()
    chunks = [text[i : i + _TXT_CHUNK] for i in range(0, len(text), _TXT_CHUNK)]
    print("<selector>._domainkey.<your.domain.> TXT " + "".join(f'"{c}" ' for c in chunks))


@command(
    "dkim verify",
    params="$messagefile",
    nargs=(1, 1),
    help="""Check every DKIM-Signature of a message and print the result for each.

A signature on an older message can fail where it once passed: its key may have
been removed from or changed in DNS since, or the signature may have expired.""",
)
def cmd_dkim_verify(inv: Invocation) -> None:
    data = _read(inv.args[0])
    results = asyncio.run(dkim.verify(data, default_resolver(), ignore_test_mode=True))
    # Results are one per DKIM-Signature field, in message order; show each field as written.
    try:
        fields = [(n, v) for n, v in split_message(data).headers if n.lower() == b"dkim-signature"]
    except dkim.MessageError:
        fields = []
    for i, res in enumerate(results):
        header = ""
        if res.sig is None:
            print("warning: could not parse signature", file=sys.stderr)
        elif len(fields) == len(results):
            name, value = fields[i]
            header = (name + b":" + value).decode("utf-8", "replace").replace("\r\n", "\n").rstrip("\n")
        txt = ""
        if res.record is None:
            print("warning: missing DNS record", file=sys.stderr)
        else:
            txt = res.record.text()
        err = res.error or "<nil>"
        print(f"status {_go_quote(str(res.status))}, err {err}\nrecord {_go_quote(txt)}\nheader {header}")


@command(
    "dkim sign",
    params="$messagefile",
    nargs=(1, 1),
    help="""Sign a message with DKIM for the domain of its From address, and print it with the signatures.

The From domain must be configured (domains.conf); its DKIM Sign selectors are
used. The DKIM-Signature header fields are prepended to the message. Line
endings are written as CRLF.""",
)
def cmd_dkim_sign(inv: Invocation) -> None:
    data = to_crlf(_read(inv.args[0]))
    addr = _single_from(data)
    domain = _domain(addr.host, "domain of address in from-header")
    try:
        cfg = load_config(inv.opts.config)
    except ConfigErrors as e:
        raise CommandError("loading config:\n" + "\n".join(str(x) for x in e.errors)) from None
    dom = cfg.dynamic.Domains.get(domain.name)
    if dom is None:
        raise CommandError(f"domain {domain.name} not configured")
    if not dom.DKIM.Sign:
        raise CommandError(f"no DKIM configured for domain {domain.name}")
    try:
        selectors = [dkim.selector_from_config(dom.DKIM.Selectors[s]) for s in dom.DKIM.Sign]
        headers = dkim.sign(data, domain, selectors, localpart=addr.user)
    except dkim.SignError as e:
        raise CommandError(f"signing message with dkim: {e}") from None
    sys.stdout.buffer.write(headers.encode() + data)
    sys.stdout.flush()


# DMARC


@command(
    "dmarc lookup",
    params="$domain",
    nargs=(1, 1),
    help="""Find the DMARC policy for domain and print it.

The TXT record at _dmarc.<domain> is used, or the one of the organizational
domain when there is none. The record is checked for validity.""",
)
def cmd_dmarc_lookup(inv: Invocation) -> None:
    domain = _domain(inv.args[0], "domain")
    lk = asyncio.run(dmarc.lookup(domain, default_resolver()))
    if lk.record is None:
        raise CommandError(f"dmarc lookup domain {domain.name}: {lk.error}")
    print(f"dmarc record at domain {lk.domain.name}: {lk.text}")
    print(f"({dnssec_status(lk.authentic)})")


@command(
    "dmarc verify",
    params="$remoteip $mailfromaddress $helodomain < messagefile",
    nargs=(3, 3),
    help="""Evaluate a message read from stdin against the DMARC policy of its From domain.

remoteip, mailfromaddress and helodomain describe the SMTP transaction that
delivered the message, they are needed for SPF; Received and
Authentication-Results headers in the message usually show them.
mailfromaddress is empty for a delivery status notification. With both
mailfromaddress and helodomain empty, SPF is not checked.""",
)
def cmd_dmarc_verify(inv: Invocation) -> None:
    ip = _ip(inv.args[0], "remoteip")
    mail_from = None
    if inv.args[1]:
        try:
            mail_from = parse_address(inv.args[1])
        except AddressError as e:
            raise CommandError(f"parsing mailfrom address: {e}") from None
    helo = _domain(inv.args[2], "helo domain") if inv.args[2] else None
    data = sys.stdin.buffer.read()
    resolver = default_resolver()

    spf_status = "none"
    spf_identity: Domain | None = None
    if mail_from is not None or helo is not None:
        rcv = asyncio.run(
            spf.verify(
                resolver,
                ip,
                f"{mail_from.localpart}@{mail_from.domain.ascii}" if mail_from else "",
                helo.ascii if helo else "",
                receiving_host=_LOCAL_HOSTNAME,
            )
        )
        # RFC 7489 section 3.1.2: the MAIL FROM domain, or the HELO domain for a null reverse-path.
        spf_identity = mail_from.domain if mail_from is not None else helo
        spf_status = rcv.result
        if rcv.problem:
            print(f"spf verify: {rcv.problem}", file=sys.stderr)
        assert spf_identity is not None
        print(f"spf result: {spf_identity.name}: {spf_status} ({dnssec_status(rcv.authentic)})")

    addrs = msg.parse(data).envelope
    from_addrs = addrs.from_ if addrs is not None else []
    if len(from_addrs) != 1:
        raise CommandError(
            f"extract dmarc from message: found {len(from_addrs)} from headers, need exactly 1"
        )
    try:
        from_domain = parse_domain(from_addrs[0].host)
    except DomainError as e:
        raise CommandError(f"extract dmarc from message: {e}") from None

    # Every signature counts here: a local policy is for deciding what to accept.
    dkim_results = asyncio.run(dkim.verify(data, resolver, policy=lambda sig: ""))
    for r in dkim_results:
        print(f"dkim result: {_go_quote(str(r.status))} (err {r.error or '<nil>'})")

    _, result = asyncio.run(
        dmarc.verify(
            resolver, from_domain, dkim_results, spf_status, spf_identity, apply_random_percentage=False
        )
    )
    if result.error:
        raise CommandError(f"dmarc verify: {result.error}")
    print(f"dmarc from: {from_addrs[0].user}@{from_domain.name}")
    print(f"dmarc status: {_go_quote(str(result.status))}")
    print(f"dmarc reject: {'true' if result.reject else 'false'}")
    print(f"dmarc record: {result.record.text() if result.record else ''}")


def _report_destination_domain(uri: str) -> tuple[Domain | None, str]:
    """The domain of a mailto: reporting URI, or None and why it is skipped."""
    scheme, sep, rest = uri.partition(":")
    if not sep:
        return None, f"parsing uri {uri}: missing scheme (skipping)"
    if scheme.lower() != "mailto":
        return None, f"unrecognized scheme in reporting address {scheme} (skipping)"
    addr = rest.partition("?")[0]
    try:
        return parse_address(addr).domain, ""
    except AddressError as e:
        return None, f"parsing destination email address {addr}: {e} (skipping)"


@command(
    "dmarc checkreportaddrs",
    params="$domain",
    nargs=(1, 1),
    help="""Check that each reporting address in the DMARC record of domain accepts reports for it.

A DMARC record lists where reports about DMARC evaluations go. A destination
outside the organizational domain of the record must agree to receive them, by
publishing a DMARC record at <dmarcdomain>._report._dmarc.<destinationdomain>
(RFC 7489 section 7.1). Each address is printed with pass or fail.""",
)
def cmd_dmarc_checkreportaddrs(inv: Invocation) -> None:
    dom = _domain(inv.args[0], "domain")
    resolver = default_resolver()
    lk = asyncio.run(dmarc.lookup(dom, resolver))
    if lk.record is None:
        raise CommandError(f"dmarc lookup domain {dom.name}: {lk.error}")
    print(f"dmarc record at domain {lk.domain.name}: {_go_quote(lk.text)}")
    print(f"({dnssec_status(lk.authentic)})")

    def check(kind: str, addr: str) -> None:
        dest, skip = _report_destination_domain(addr)
        if dest is None:
            print(f"{kind} {addr}: {skip} ({dnssec_status(False)})")
            return
        if publicsuffix.lookup(dom) == publicsuffix.lookup(dest):
            print(f"{kind} {addr}: pass (same organizational domain) ({dnssec_status(False)})")
            return
        ext = asyncio.run(dmarc.lookup_external_reports_accepted(lk.domain, dest, resolver))
        txtaddr = f"{lk.domain.ascii}._report._dmarc.{dest.ascii}"
        if ext.texts:
            txtstr = f" (txt record {txtaddr}: {_go_list([_go_quote(t) for t in ext.texts])})"
        else:
            txtstr = f" (no txt records {txtaddr})"
        if ext.status != dmarc.Status.NONE:
            outcome = f"fail: {ext.error}{txtstr}"
        elif ext.accepts:
            outcome = f"pass{txtstr}"
        elif ext.error:
            outcome = f"fail: {ext.error}{txtstr}"
        else:
            outcome = f"fail{txtstr}"
        print(f"{kind} {addr}: {outcome} ({dnssec_status(ext.authentic)})")

    for uri in lk.record.aggregate_report_addresses:
        check("aggregate reporting", uri.address)
    for uri in lk.record.failure_report_addresses:
        check("failure reporting", uri.address)
