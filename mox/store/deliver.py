"""Delivering a message to local recipients: destination lookup, aliases, rulesets, quota.

Used by SMTP (incoming and local submission), IMAP APPEND (through
``Account.add_message`` directly), import and local DSNs. Destination lookup
follows upstream: an exact address wins, then (with the domain's catchall
separators and case rule applied) the canonical address, then the domain's
catchall ``@domain``; aliases expand to their member addresses.
"""

from __future__ import annotations

import asyncio
import json
import re
from dataclasses import dataclass
from pathlib import Path

from mox import message as msg
from mox.config import model
from mox.config.load import Config, canonical_localpart
from mox.imapproto import msgcache
from mox.smtp.address import Address, AddressError, format_localpart, parse_address
from mox.store.account import Account, MessageInfo, open_account, open_accounts
from mox.store.model import DEFAULT_SPECIAL_MAILBOXES, Flags, Message, SMTPContext, SpecialUse, StoreError


class UnknownRecipient(StoreError):
    """No account or alias has this address (SMTP 550 5.1.1)."""


class DomainDisabled(StoreError):
    """The recipient domain is disabled: a temporary refusal (SMTP 450 4.2.1), as upstream."""


class AliasPostRefused(StoreError):
    """The alias only accepts messages from its members (PostPublic is off)."""


def message_info(data: bytes) -> MessageInfo:
    """Header-derived fields the store keeps: normalised Message-ID, base subject, references, parsed tree."""
    part = msg.parse(data)
    headers = msg.parse_headers(data[part.header_offset : part.body_offset])
    values: dict[str, list[str]] = {}
    for name, raw in headers:
        values.setdefault(name.lower(), []).append(raw.decode("utf-8", "replace"))
    message_id = msg.normalize_message_id(values.get("message-id", [""])[0])
    subject = msg.decode_words(values.get("subject", [""])[0])
    base, is_response = msg.thread_subject(subject)
    refs = msg.referenced_ids(values.get("references", []), values.get("in-reply-to", []))
    return MessageInfo(
        message_id=message_id,
        subject_base=base,
        is_response=is_response,
        referenced_ids=refs,
        parsed_json=json.dumps(part.to_json(), separators=(",", ":")),
        imap_cache=msgcache.encode_part(part),
    )


@dataclass(frozen=True)
class Recipient:
    """A resolved local recipient."""

    account: str
    destination: model.Destination
    address: str  # canonical address that matched


def _canonical(cfg: Config, address: str) -> str:
    try:
        a = parse_address(address)
    except AddressError:
        return ""
    dom = cfg.dynamic.Domains.get(a.domain.name)
    lp = canonical_localpart(a.localpart, dom) if dom else a.localpart
    return f"{format_localpart(lp)}@{a.domain.name}"


def _host_tlsrpt_recipient(cfg: Config, rcpt: Address) -> Recipient | None:
    """The HostTLSRPT address (mox.conf) at our host name, which need not be a configured domain
    (the MX host's per-host ``_smtp._tls`` record points there); its localpart is ASCII, compared
    case-insensitively."""
    h = cfg.static.HostTLSRPT
    if not h.Account or not h.ParsedLocalpart or rcpt.localpart.lower() != h.ParsedLocalpart.lower():
        return None
    addr = f"{format_localpart(h.ParsedLocalpart)}@{rcpt.domain.name}"
    dest = cfg.account_destinations.get(addr)
    return None if dest is None else Recipient(dest.account, dest.destination, addr)


def resolve_recipient(cfg: Config, rcpt: Address, msg_from: str = "") -> list[Recipient]:
    """Accounts a message for rcpt goes to: one for an address, several for an alias.

    For aliases, as upstream: unless PostPublic is set only members (by the
    message From address, assumed DMARC-verified) may post, and a member who is
    the message's From does not get a copy.

    Raises:
        UnknownRecipient: the domain is ours but the address is not configured.
        AliasPostRefused: a non-member posted to a members-only alias.
    """
    dom = cfg.dynamic.Domains.get(rcpt.domain.name)
    hostname = cfg.static.HostnameDomain
    if rcpt.localpart.lower() == "postmaster" and (dom is None or dom.Disabled) and hostname is not None and rcpt.domain == hostname:
        # RFC 5321 section 4.5.1: postmaster at the host name is always accepted.
        return [postmaster_recipient(cfg)]
    if dom is None and hostname is not None and rcpt.domain == hostname:
        host = _host_tlsrpt_recipient(cfg, rcpt)
        if host is not None:
            return [host]
    if dom is None:
        raise UnknownRecipient(f"domain {rcpt.domain.name} is not a local domain")
    if dom.Disabled:
        raise DomainDisabled("recipient domain temporarily disabled")
    lp = canonical_localpart(rcpt.localpart, dom)
    exact = cfg.account_destinations.get(f"{format_localpart(lp)}@{rcpt.domain.name}")
    if exact is not None:
        return [Recipient(exact.account, exact.destination, f"{format_localpart(lp)}@{rcpt.domain.name}")]
    alias = next((a for k, a in dom.Aliases.items() if canonical_localpart(k, dom) == lp), None)
    if alias is not None:
        out: list[Recipient] = []
        sender = _canonical(cfg, msg_from) if msg_from else ""
        members = {_canonical(cfg, m) for m in alias.Addresses}
        if not alias.PostPublic and sender not in members:
            raise AliasPostRefused(f"only members can send to {rcpt}")
        seen: set[str] = {sender} if sender else set()
        for member in alias.Addresses:
            try:
                ma = parse_address(member)
            except AddressError:
                continue
            for r in resolve_recipient(cfg, ma):
                if r.address not in seen:
                    seen.add(r.address)
                    out.append(r)
        return out
    if rcpt.localpart.lower() == "postmaster":
        # RFC 5321 section 4.5.1: postmaster@ every domain works (any case); without its own destination, the global postmaster.
        return [postmaster_recipient(cfg)]
    catchall = cfg.account_destinations.get("@" + rcpt.domain.name)
    if catchall is not None:
        return [Recipient(catchall.account, catchall.destination, "@" + rcpt.domain.name)]
    raise UnknownRecipient(f"no such user: {rcpt}")


def postmaster_recipient(cfg: Config) -> Recipient:
    """The global postmaster (mox.conf Postmaster): for bare "postmaster", postmaster@<hostname>,
    and postmaster@ domains without their own postmaster address (RFC 5321 section 4.5.1)."""
    pm = cfg.static.Postmaster
    return Recipient(pm.Account, model.Destination(Mailbox=pm.Mailbox), "postmaster")


def _header_pairs(data: bytes) -> list[tuple[str, str]]:
    part = msg.parse(data)
    out = []
    for name, raw in msg.parse_headers(data[part.header_offset : part.body_offset]):
        value = msg.decode_words(raw.decode("utf-8", "replace"))
        out.append((name.lower(), " ".join(value.split()).strip().lower()))
    return out


def _domain_matches(domain: str, candidates: list[str]) -> bool:
    d = domain.lower()
    return any(c.lower() == d or c.lower().endswith("." + d) for c in candidates)


def ruleset_mailbox(dest: model.Destination, data: bytes, smtp: SMTPContext) -> str:
    """The mailbox for a message: the first matching ruleset's, else the destination's, else Inbox.

    A ruleset matches when every rule it has matches: SMTP MAIL FROM and message
    From regular expressions (searched, not anchored), a verified domain (SPF
    pass for MAIL FROM's domain, or a passing DKIM signature, the domain or a
    subdomain), and each header field/value expression pair against some header.
    """
    headers: list[tuple[str, str]] | None = None
    for rs in dest.Rulesets:
        if rs.SMTPMailFromRegexp and not re.search(rs.SMTPMailFromRegexp, smtp.mail_from):
            continue
        if rs.MsgFromRegexp and not re.search(rs.MsgFromRegexp, smtp.msg_from):
            continue
        if rs.VerifiedDomain:
            verified = list(smtp.dkim_domains)
            if smtp.spf == "pass" and "@" in smtp.mail_from:
                verified.append(smtp.mail_from.rsplit("@", 1)[1])
            if not _domain_matches(rs.VerifiedDomain, verified):
                continue
        if rs.HeadersRegexp:
            if headers is None:
                headers = _header_pairs(data)
            ok = True
            for kre, vre in rs.HeadersRegexp.items():
                if not any(re.search(kre, k) and re.search(vre, v) for k, v in headers):
                    ok = False
                    break
            if not ok:
                continue
        return rs.Mailbox
    return dest.Mailbox or "Inbox"


def account_quota(cfg: Config, account: str) -> int:
    """Maximum total message size for the account in bytes; 0 for unlimited."""
    acc = cfg.dynamic.Accounts[account]
    q = acc.QuotaMessageSize or cfg.static.QuotaMessageSize
    return q if q > 0 else 0


def initial_mailboxes(cfg: Config) -> list[tuple[str, SpecialUse | None]]:
    """Mailboxes for a new account besides Inbox, from InitialMailboxes or DefaultMailboxes, else upstream's default set."""
    im = cfg.static.InitialMailboxes
    su = im.SpecialUse
    configured = [(su.Sent, SpecialUse.SENT), (su.Archive, SpecialUse.ARCHIVE), (su.Trash, SpecialUse.TRASH),
                  (su.Draft, SpecialUse.DRAFTS), (su.Junk, SpecialUse.JUNK)]  # fmt: skip
    out: list[tuple[str, SpecialUse | None]] = [(n, u) for n, u in configured if n]
    out += [(n, None) for n in im.Regular]
    if out:
        return out
    if cfg.static.DefaultMailboxes:
        return [(n, _special_by_name(n)) for n in cfg.static.DefaultMailboxes]
    return [(n, u) for u, n in DEFAULT_SPECIAL_MAILBOXES.items()]


def _special_by_name(name: str) -> SpecialUse | None:
    for u, n in DEFAULT_SPECIAL_MAILBOXES.items():
        if n.lower() == name.lower():
            return u
    return None


async def open_config_account(cfg: Config, name: str) -> Account:
    """Open an account of the configuration, with its quota and initial mailboxes."""
    if name not in cfg.dynamic.Accounts:
        raise StoreError(f"account {name!r} does not exist")
    acc = await open_account(Path(cfg.data_dir), name, quota=account_quota(cfg, name), initial_mailboxes=initial_mailboxes(cfg))
    # An account already open (an IMAP session) keeps the quota it was opened with otherwise.
    acc.quota = account_quota(cfg, name)
    return acc


def apply_config_to_open_accounts(cfg: Config) -> None:
    """After a configuration change: open accounts take their new quota at once, so an IMAP session
    logged in for days does not keep enforcing the old one."""
    data = Path(cfg.data_dir).resolve()
    for acc in open_accounts():
        if acc.name in cfg.dynamic.Accounts and acc.dir.parent.parent.resolve() == data:
            acc.quota = account_quota(cfg, acc.name)


@dataclass(frozen=True)
class Delivered:
    account: str
    mailbox: str
    message: Message


async def deliver(cfg: Config, rcpt: Address, data: bytes, smtp: SMTPContext | None = None, *, flags: Flags = Flags.NONE) -> list[Delivered]:
    """Deliver data to the local recipient rcpt (every member for an alias).

    Returns once every copy is committed. Raises UnknownRecipient, QuotaExceeded or StoreError.
    """
    smtp = smtp or SMTPContext()
    recipients = resolve_recipient(cfg, rcpt, msg_from=smtp.msg_from)
    info = await asyncio.to_thread(message_info, data)
    out: list[Delivered] = []
    for r in recipients:
        mailbox = ruleset_mailbox(r.destination, data, smtp)
        acc = await open_config_account(cfg, r.account)
        try:
            m = await acc.add_message(mailbox, data, flags=flags, smtp=smtp, info=info)
        finally:
            await acc.close()
        out.append(Delivered(r.account, mailbox, m))
    return out
