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
        for dname, dom in dyn.Domains.items():
            for alias_lp, alias in dom.Aliases.items():
                if any(m.lower() == address.lower() for m in alias.Addresses):
                    raise EditError(f"address is a member of alias {alias_lp}@{dname}; remove it from the alias first")

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
