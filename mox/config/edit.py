"""Changes to domains.conf: adding and removing domains, accounts and addresses.

Every change works on a fresh copy of the dynamic config, validates the result
completely (as a reload would) and only then writes domains.conf atomically.
A refused change leaves the file untouched. The running server calls these
through the ctl socket; the CLI calls them directly when no server runs.
Concurrent editors are serialised with an advisory lock file beside
domains.conf.
"""

from __future__ import annotations

import contextlib
import datetime
import fcntl
import os
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

from mox.config import keys, model
from mox.config.load import (
    Config,
    ConfigErrors,
    canonical_localpart,
    dynamic_text,
    parse_dynamic,
    prepare_dynamic,
    write_file_atomic,
)
from mox.dns.domain import DomainError, parse_domain
from mox.smtp.address import AddressError, format_localpart, parse_address, parse_localpart


class EditError(Exception):
    """A requested change is not possible; the message says why."""


@contextlib.contextmanager
def domains_lock(cfg: Config) -> Iterator[None]:
    """Hold the advisory lock for editing domains.conf."""
    lock_path = cfg.dynamic_path.with_name(".domains.conf.lock")
    fd = os.open(lock_path, os.O_RDWR | os.O_CREAT, 0o660)
    try:
        fcntl.flock(fd, fcntl.LOCK_EX)
        yield
    finally:
        os.close(fd)


def _fresh_copy(cfg: Config) -> model.Dynamic:
    # Re-parsing the written form gives an independent copy without derived values.
    dyn, _ = parse_dynamic(cfg.dynamic_path, dynamic_text(cfg.dynamic))
    return dyn


def apply(cfg: Config, change: Callable[[model.Dynamic], None]) -> Config:
    """Apply change to a copy of the dynamic config, validate, write domains.conf and return the new Config.

    Raises:
        EditError: the change itself or the resulting config is invalid.
    """
    dyn = _fresh_copy(cfg)
    change(dyn)
    try:
        text = dynamic_text(dyn)
        new_dyn, lines = parse_dynamic(cfg.dynamic_path, text)
    except (ValueError, ConfigErrors) as e:
        # E.g. removing the last domain: domains.conf needs at least one.
        raise EditError(f"change cannot be written to domains.conf: {e}") from None
    dests, errs = prepare_dynamic(new_dyn, lines, cfg.dynamic_path, cfg.static)
    if errs:
        raise EditError("change would make the config invalid: " + "; ".join(f"{e.path}: {e.message}" for e in errs))
    write_file_atomic(cfg.dynamic_path, text.encode("utf-8"))
    mtime = cfg.dynamic_path.stat().st_mtime_ns
    return Config(cfg.static_path, cfg.static, cfg.dynamic_path, new_dyn, cfg.static_lines, lines, mtime, dests)


def make_account_config(address: str, domain_name: str) -> model.Account:
    """A new account with upstream's defaults: junk filter, automatic junk flags, rejects mailbox."""
    return model.Account(
        Domain=domain_name,
        Destinations={address: model.Destination()},
        RejectsMailbox="Rejects",
        JunkFilter=model.JunkFilter(
            Threshold=0.95,
            Params=model.JunkParams(Onegrams=True, MaxPower=0.01, TopWords=10, IgnoreWords=0.1, RareWords=2),
        ),
        AutomaticJunkFlags=model.AutomaticJunkFlags(
            Enabled=True,
            JunkMailboxRegexp="^(junk|spam)",
            NeutralMailboxRegexp="^(inbox|introbox|neutral|postmaster|dmarc|tlsrpt|rejects)",
        ),
        SubjectPass=model.SubjectPass(Period=model.Duration(12 * 3600 * 10**9)),
        NoCustomPassword=True,
    )


def _address_available(cfg: Config, localpart: str, domain_name: str) -> None:
    dom = cfg.dynamic.Domains.get(domain_name)
    if dom is None:
        raise EditError(f"domain {domain_name!r} does not exist")
    for sep in dom.LocalpartCatchallSeparatorsEffective:
        if sep in localpart:
            raise EditError(f"local part cannot contain the domain's catchall separator {sep!r}")
    key = f"{format_localpart(canonical_localpart(localpart, dom))}@{domain_name}"
    if key in cfg.account_destinations:
        raise EditError(f"address {key} is already configured")
    if localpart in dom.Aliases:
        raise EditError(f"address {key} is in use as an alias")


def account_add(cfg: Config, account: str, address: str) -> Config:
    """Add an account with one address (upstream's ``config account add``)."""
    if not account or "/" in account or account in (".", "..") or account.strip() != account:
        raise EditError(f"invalid account name {account!r}")
    try:
        addr = parse_address(address)
    except AddressError as e:
        raise EditError(f"parsing email address: {e}") from None
    if account in cfg.dynamic.Accounts:
        raise EditError(f"account {account!r} already exists")
    acc_dir = cfg.data_dir / "accounts" / account
    if acc_dir.exists():
        raise EditError(f"account directory {str(acc_dir)!r} already or still exists")

    def change(dyn: model.Dynamic) -> None:
        _address_available(cfg, addr.localpart, addr.domain.name)
        dyn.Accounts[account] = make_account_config(addr.pack(True), addr.domain.name)

    return apply(cfg, change)


def account_remove(cfg: Config, account: str) -> Config:
    """Remove an account from the config (its data directory is removed by the caller)."""
    if account not in cfg.dynamic.Accounts:
        raise EditError(f"account {account!r} does not exist")
    if account == cfg.static.Postmaster.Account:
        raise EditError(f"account {account!r} is the postmaster account (mox.conf Postmaster) and cannot be removed")

    def change(dyn: model.Dynamic) -> None:
        for dname, dom in dyn.Domains.items():
            for kind, rep in (("DMARC", dom.DMARC), ("TLSRPT", dom.TLSRPT)):
                if rep is not None and rep.Account == account:
                    raise EditError(f"account is used for {kind} reports of domain {dname}; change that first")
        del dyn.Accounts[account]

    return apply(cfg, change)


def address_add(cfg: Config, address: str, account: str) -> Config:
    """Add an address (or '@domain' catchall) to an existing account."""
    if account not in cfg.dynamic.Accounts:
        raise EditError(f"account {account!r} does not exist")

    def change(dyn: model.Dynamic) -> None:
        if address.startswith("@"):
            try:
                d = parse_domain(address[1:])
            except DomainError as e:
                raise EditError(f"parsing domain: {e}") from None
            if d.name not in dyn.Domains:
                raise EditError(f"domain {d.name!r} does not exist")
            if "@" + d.name in cfg.account_destinations:
                raise EditError(f"catchall address for domain {d.name} already configured")
            dyn.Accounts[account].Destinations["@" + d.name] = model.Destination()
            return
        try:
            addr = parse_address(address)
        except AddressError as e:
            raise EditError(f"parsing email address: {e}") from None
        _address_available(cfg, addr.localpart, addr.domain.name)
        dyn.Accounts[account].Destinations[addr.pack(True)] = model.Destination()

    return apply(cfg, change)


def address_remove(cfg: Config, address: str) -> Config:
    """Remove an address from the account it belongs to."""
    if address.startswith("@"):
        try:
            key = "@" + parse_domain(address[1:]).name
        except DomainError as e:
            raise EditError(f"parsing domain: {e}") from None
    else:
        try:
            addr = parse_address(address)
        except AddressError as e:
            raise EditError(f"parsing email address: {e}") from None
        dom = cfg.dynamic.Domains.get(addr.domain.name)
        if dom is None:
            raise EditError(f"unknown domain in address {address!r}")
        key = f"{format_localpart(canonical_localpart(addr.localpart, dom))}@{addr.domain.name}"
    ad = cfg.account_destinations.get(key)
    if ad is None:
        raise EditError(f"address {address!r} does not exist")

    def change(dyn: model.Dynamic) -> None:
        acc = dyn.Accounts[ad.account]
        for name in list(acc.Destinations):
            if _destination_key(cfg, acc, name) == key:
                del acc.Destinations[name]
                break
        else:
            raise EditError("address not removed: it is probably a postmaster or reporting address, configured elsewhere")
        # As upstream: the address leaves the aliases it is a member of, unless it is the last member.
        for dname, dom in dyn.Domains.items():
            for alias_lp, alias in dom.Aliases.items():
                keep = [m for m in alias.Addresses if _destination_key(cfg, acc, m) != key]
                if len(keep) == len(alias.Addresses):
                    continue
                if not keep:
                    raise EditError(f"address is the last member of alias {alias_lp}@{dname}; remove the alias first")
                alias.Addresses = keep

    return apply(cfg, change)


def _destination_key(cfg: Config, acc: model.Account, name: str) -> str:
    if name.startswith("@"):
        try:
            return "@" + parse_domain(name[1:]).name
        except DomainError:
            return name
    try:
        if "@" in name:
            a = parse_address(name)
            lp, dname = a.localpart, a.domain.name
        else:
            lp, dname = parse_localpart(name), parse_domain(acc.Domain).name
    except (AddressError, DomainError):
        return name
    dom = cfg.dynamic.Domains.get(dname)
    return f"{format_localpart(canonical_localpart(lp, dom) if dom else lp)}@{dname}"


def domain_add(cfg: Config, domain: str, account: str, localpart: str = "", *, disabled: bool = False) -> Config:
    """Add a domain with DKIM keys and reporting addresses, as upstream's ``config domain add``.

    The account receives the domain's postmaster and DMARC/TLS reports. It is
    created with ``localpart@domain`` when it does not exist yet; localpart must
    be given exactly then.
    """
    try:
        d = parse_domain(domain)
    except DomainError as e:
        raise EditError(f"parsing domain: {e}") from None
    if d.name in cfg.dynamic.Domains:
        raise EditError(f"domain {d.name} already exists")
    if not account:
        raise EditError("account name is empty")
    exists = account in cfg.dynamic.Accounts
    if exists and localpart:
        raise EditError("account already exists (leave the local part out when using an existing account)")
    if not exists and not localpart:
        raise EditError("account does not exist yet (give a local part for its first address)")
    if localpart:
        try:
            localpart = parse_localpart(localpart)
        except AddressError as e:
            raise EditError(f"parsing local part: {e}") from None
    with_mtasts = any(lst.MTASTSHTTPS.Enabled for lst in cfg.static.Listeners.values())

    now = datetime.datetime.now()
    year = now.strftime("%Y")
    stamp = now.strftime("%Y%m%dT%H%M%S")
    created: list[Path] = []
    selectors: dict[str, model.Selector] = {}
    try:
        for name in (year + "a", year + "b"):
            rel = f"dkim/{name}._domainkey.{d.ascii}.{stamp}.rsa2048.privatekey.pkcs8.pem"
            p = cfg.dynamic_path.parent / rel
            p.parent.mkdir(mode=0o770, parents=True, exist_ok=True)
            fd = os.open(p, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o660)
            created.append(p)
            with os.fdopen(fd, "wb") as f:
                f.write(keys.make_dkim_rsa_key())
            selectors[name] = model.Selector(Expiration="72h", PrivateKeyFile=rel)
        dom = model.Domain(
            Disabled=disabled,
            ClientSettingsDomain="mail." + d.name,
            LocalpartCatchallSeparator="+",
            DKIM=model.DKIM(Selectors=selectors, Sign=[year + "a"]),
            DMARC=model.DMARC(Localpart="dmarcreports", Account=account, Mailbox="DMARC"),
            TLSRPT=model.TLSRPT(Localpart="tlsreports", Account=account, Mailbox="TLSRPT"),
        )
        if with_mtasts:
            hostname = cfg.static.HostnameDomain
            dom.MTASTS = model.MTASTS(
                PolicyID=datetime.datetime.now(datetime.UTC).strftime("%Y%m%dT%H%M%S"),
                Mode="enforce",
                MaxAge=model.Duration(24 * 3600 * 10**9),
                MX=[hostname.ascii if hostname is not None else cfg.static.Hostname],
            )

        def change(dyn: model.Dynamic) -> None:
            dyn.Domains[d.name] = dom
            if not exists:
                dyn.Accounts[account] = make_account_config(f"{format_localpart(localpart)}@{d.name}", d.name)
            elif account != cfg.static.Postmaster.Account:
                dyn.Accounts[account].Destinations[f"postmaster@{d.name}"] = model.Destination()

        new = apply(cfg, change)
        created = []
        return new
    finally:
        for p in created:
            with contextlib.suppress(FileNotFoundError):
                p.unlink()


def domain_remove(cfg: Config, domain: str) -> Config:
    """Remove a domain. Refused while accounts still have addresses at it."""
    try:
        d = parse_domain(domain)
    except DomainError as e:
        raise EditError(f"parsing domain: {e}") from None
    if d.name not in cfg.dynamic.Domains:
        raise EditError(f"domain {d.name} does not exist")
    users = sorted({ad.account for key, ad in cfg.account_destinations.items() if key.endswith("@" + d.name)})
    key_files = [cfg.dynamic_path.parent / sel.PrivateKeyFile for sel in cfg.dynamic.Domains[d.name].DKIM.Selectors.values()]

    def change(dyn: model.Dynamic) -> None:
        for acc_name in users:
            acc = dyn.Accounts.get(acc_name)
            if acc is None:
                continue
            for name in list(acc.Destinations):
                if _destination_key(cfg, acc, name).endswith("@" + d.name):
                    if name.startswith("postmaster@"):
                        del acc.Destinations[name]
                    else:
                        raise EditError(f"account {acc_name!r} still has address {name}; remove it first")
        del dyn.Domains[d.name]

    new = apply(cfg, change)
    # Keep the DKIM keys, renamed, in case the removal was a mistake (as upstream does).
    used = {str(new.dynamic_path.parent / s.PrivateKeyFile) for dm in new.dynamic.Domains.values() for s in dm.DKIM.Selectors.values()}
    for p in key_files:
        if str(p) not in used and p.exists():
            with contextlib.suppress(OSError):
                p.rename(p.with_name(p.name + ".removed"))
    return new


def remove_account_data(cfg: Config, account: str) -> None:
    """Remove the data directory of a removed account (messages and index), as upstream does."""
    if not account or "/" in account or account in (".", ".."):
        raise EditError(f"invalid account name {account!r}")
    d = cfg.data_dir / "accounts" / account
    if d.exists():
        shutil.rmtree(d)


# Account login and domain state, as upstream's AccountSave/DomainSave callers
# ``config account disable/enable`` and ``config domain disable/enable``.

LOGIN_DISABLED_MAX = 256
"""Longest message for a disabled login. Upstream's limit: the message is sent in
SMTP and IMAP replies, which must stay within their line lengths."""


def account_addresses(cfg: Config, account: str) -> list[str]:
    """The addresses of an account as configured, sorted; a catchall is ``@domain``."""
    acc = cfg.dynamic.Accounts.get(account)
    if acc is None:
        raise EditError(f"account {account!r} does not exist")
    return sorted(acc.Destinations)


def check_login_disabled_message(message: str) -> None:
    """Refuse a message unfit for SMTP/IMAP replies: empty, non-ASCII, control characters, too long."""
    if not message:
        raise EditError("message must be non-empty")
    if len(message) > LOGIN_DISABLED_MAX:
        raise EditError(f"message must be at most {LOGIN_DISABLED_MAX} characters")
    if any(not (" " <= ch < "\x7f") for ch in message):
        # IMAP only allows UTF-8 after ENABLE IMAP4rev2/UTF8=ACCEPT; ASCII works everywhere.
        raise EditError("message must be ASCII-only without control characters (including newlines)")


def account_login_disabled(cfg: Config, account: str, message: str) -> Config:
    """Disable logins to an account with message, or enable them again with an empty message.

    Incoming mail is still delivered to a disabled account.
    """
    if message:
        check_login_disabled_message(message)
    if account not in cfg.dynamic.Accounts:
        raise EditError(f"account {account!r} does not exist")

    def change(dyn: model.Dynamic) -> None:
        dyn.Accounts[account].LoginDisabled = message

    return apply(cfg, change)


def domain_disabled(cfg: Config, domain: str, disabled: bool) -> Config:
    """Set the Disabled field of a domain: mail to and from a disabled domain is refused."""
    try:
        d = parse_domain(domain)
    except DomainError as e:
        raise EditError(f"parsing domain: {e}") from None
    if d.name not in cfg.dynamic.Domains:
        raise EditError(f"domain {d.name} does not exist")

    def change(dyn: model.Dynamic) -> None:
        dyn.Domains[d.name].Disabled = disabled

    return apply(cfg, change)


# Aliases (lists), as upstream's admin AliasAdd, AliasUpdate, AliasRemove,
# AliasAddressesAdd and AliasAddressesRemove. Aliases are kept per domain under
# their local part. Upstream looks an alias up by its local part exactly as
# given; we compare canonical local parts (case, catchall separators), as
# delivery does, so "List@" finds the alias "list".


def _canonical_address(cfg: Config, lp: str, domain_name: str) -> str:
    dom = cfg.dynamic.Domains[domain_name]
    return f"{format_localpart(canonical_localpart(lp, dom))}@{domain_name}"


def _parse_alias_address(cfg: Config, address: str) -> tuple[str, str]:
    """The domain name and canonical address of an alias address at a configured domain."""
    try:
        addr = parse_address(address)
    except AddressError as e:
        raise EditError(f"parsing address: {e}") from None
    if addr.domain.name not in cfg.dynamic.Domains:
        raise EditError(f"domain {addr.domain.name} does not exist")
    return addr.domain.name, _canonical_address(cfg, addr.localpart, addr.domain.name)


def _alias_key(cfg: Config, dname: str, canon: str) -> str | None:
    """The configured local part (the key in Aliases) of the alias with canonical address canon."""
    for key in cfg.dynamic.Domains[dname].Aliases:
        try:
            lp = parse_localpart(key)
        except AddressError:
            continue
        if _canonical_address(cfg, lp, dname) == canon:
            return key
    return None


def _find_alias(cfg: Config, address: str) -> tuple[str, str]:
    """The domain name and configured local part of an existing alias."""
    dname, canon = _parse_alias_address(cfg, address)
    key = _alias_key(cfg, dname, canon)
    if key is None:
        raise EditError(f"alias {address} does not exist")
    return dname, key


def _member_key(cfg: Config, member: str) -> str:
    """The canonical form of an alias member, which must be a (non-catchall) account address."""
    try:
        ma = parse_address(member)
    except AddressError as e:
        raise EditError(f"parsing member address {member!r}: {e}") from None
    if ma.domain.name in cfg.dynamic.Domains:
        key = _canonical_address(cfg, ma.localpart, ma.domain.name)
        ad = cfg.account_destinations.get(key)
        if ad is not None and not ad.catchall:
            return key
    raise EditError(f"member {member!r} is not an address of a local account")


def _member_keys(cfg: Config, members: list[str], existing: list[str]) -> None:
    """Check new members: account addresses, not already in existing, not given twice."""
    seen = {_member_key(cfg, m) for m in existing}
    for m in members:
        key = _member_key(cfg, m)
        if key in seen:
            raise EditError(f"address {m} is already a member of the alias")
        seen.add(key)


def alias_list(cfg: Config, domain: str) -> list[str]:
    """The alias addresses of a domain, sorted."""
    try:
        d = parse_domain(domain)
    except DomainError as e:
        raise EditError(f"parsing domain: {e}") from None
    dom = cfg.dynamic.Domains.get(d.name)
    if dom is None:
        raise EditError(f"domain {d.name} does not exist")
    return sorted(f"{_normal_localpart(key)}@{d.name}" for key in dom.Aliases)


def _normal_localpart(key: str) -> str:
    """A configured local part in its usual written form (quoted only when needed)."""
    try:
        return format_localpart(parse_localpart(key))
    except AddressError:
        return key


def alias_get(cfg: Config, address: str) -> model.Alias:
    """The configuration of an existing alias."""
    dname, key = _find_alias(cfg, address)
    return cfg.dynamic.Domains[dname].Aliases[key]


def alias_add(cfg: Config, address: str, members: list[str], *, post_public: bool = True) -> Config:
    """Add an alias with at least one member; by default anyone may post to it, as upstream's ``config alias add``.

    The alias address must not be an account address, and every member must be
    an address of a local account.
    """
    dname, canon = _parse_alias_address(cfg, address)
    lp = parse_address(address).localpart
    dom = cfg.dynamic.Domains[dname]
    for sep in dom.LocalpartCatchallSeparatorsEffective:
        if sep in lp:
            raise EditError(f"alias local part cannot contain the domain's catchall separator {sep!r}")
    if canon in cfg.account_destinations:
        raise EditError(f"address {canon} is already configured for an account")
    if _alias_key(cfg, dname, canon) is not None:
        raise EditError(f"alias {canon} already exists")
    if not members:
        raise EditError("an alias needs at least one member address")
    _member_keys(cfg, members, [])

    def change(dyn: model.Dynamic) -> None:
        dyn.Domains[dname].Aliases[format_localpart(lp)] = model.Alias(Addresses=list(members), PostPublic=post_public)

    return apply(cfg, change)


def alias_update(
    cfg: Config,
    address: str,
    *,
    post_public: bool | None = None,
    list_members: bool | None = None,
    allow_msg_from: bool | None = None,
) -> Config:
    """Change the settings of an alias; None leaves a setting as it is."""
    dname, key = _find_alias(cfg, address)

    def change(dyn: model.Dynamic) -> None:
        alias = dyn.Domains[dname].Aliases[key]
        if post_public is not None:
            alias.PostPublic = post_public
        if list_members is not None:
            alias.ListMembers = list_members
        if allow_msg_from is not None:
            alias.AllowMsgFrom = allow_msg_from

    return apply(cfg, change)


def alias_remove(cfg: Config, address: str) -> Config:
    """Remove an alias; mail to its address is rejected afterwards."""
    dname, key = _find_alias(cfg, address)

    def change(dyn: model.Dynamic) -> None:
        del dyn.Domains[dname].Aliases[key]

    return apply(cfg, change)


def alias_addresses_add(cfg: Config, address: str, members: list[str]) -> Config:
    """Add members (local account addresses) to an alias."""
    if not members:
        raise EditError("at least one address required")
    dname, key = _find_alias(cfg, address)
    _member_keys(cfg, members, cfg.dynamic.Domains[dname].Aliases[key].Addresses)

    def change(dyn: model.Dynamic) -> None:
        dyn.Domains[dname].Aliases[key].Addresses.extend(members)

    return apply(cfg, change)


def alias_addresses_remove(cfg: Config, address: str, members: list[str]) -> Config:
    """Remove members from an alias. Refused if one is not a member, or if no member would be left."""
    if not members:
        raise EditError("at least one address required")
    dname, key = _find_alias(cfg, address)
    current = cfg.dynamic.Domains[dname].Aliases[key].Addresses

    def canon(a: str) -> str:
        try:
            return _member_key(cfg, a)
        except EditError:
            return a  # Compared as written, e.g. a member whose account address was removed meanwhile.

    gone = {canon(m) for m in members}
    missing = [m for m in members if canon(m) not in {canon(c) for c in current}]
    if missing:
        raise EditError(f"address not found: {', '.join(missing)}")
    kept = [c for c in current if canon(c) not in gone]
    if not kept:
        raise EditError("an alias needs at least one member address; remove the alias instead")

    def change(dyn: model.Dynamic) -> None:
        dyn.Domains[dname].Aliases[key].Addresses = kept

    return apply(cfg, change)
