"""Editing domains.conf: domains, accounts and addresses, validated before an atomic write.

Every successful edit leaves a domains.conf that load_config accepts and that
matches the returned Config; every refused edit leaves the file (and the DKIM
key directory) byte for byte as it was.
"""

from __future__ import annotations

import datetime
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa

from mox.config import edit, keys, load, model
from mox.config.edit import EditError

MTASTS_LISTENER = "\t\tMTASTSHTTPS:\n\t\t\tEnabled: true\n\t\t\tPort: 1443\n"


@pytest.fixture(scope="module")
def rsa_key() -> bytes:
    return keys.make_dkim_rsa_key()


@pytest.fixture
def fast_rsa(monkeypatch: pytest.MonkeyPatch, rsa_key: bytes) -> None:
    """Reuse one RSA key for every DKIM selector: generating 2048-bit keys is slow."""
    monkeypatch.setattr(keys, "make_dkim_rsa_key", lambda: rsa_key)


@pytest.fixture
def cd(make_config_dir: Callable[..., Any]) -> Any:
    return make_config_dir()


@pytest.fixture
def cfg(cd: Any) -> load.Config:
    return load.load_config(cd.mox_conf)


def state(cd: Any) -> tuple[bytes, list[str]]:
    """domains.conf's bytes and the files in dkim/."""
    return cd.domains_conf.read_bytes(), sorted(p.name for p in (cd.path / "dkim").iterdir())


def refused(cd: Any, fn: Callable[[], object], match: str) -> None:
    before = state(cd)
    with pytest.raises(EditError, match=match):
        fn()
    assert state(cd) == before


def reloaded(cd: Any, new: load.Config) -> load.Config:
    """The config read back from disk, which must equal what the edit returned."""
    cfg = load.load_config(cd.mox_conf)
    assert cfg.dynamic == new.dynamic
    assert set(cfg.account_destinations) == set(new.account_destinations)
    assert cd.domains_conf.read_text().startswith("# domains.conf:")
    return cfg


def test_domain_add_creates_keys_reporting_addresses_and_account(
    cd: Any, cfg: load.Config, elsewhere_cwd: Path
) -> None:
    # Real key generation here; the other tests reuse one key.
    new = edit.domain_add(cfg, "example.org", "jane", "jane")
    got = reloaded(cd, new)

    dom = got.dynamic.Domains["example.org"]
    year = str(datetime.datetime.now().year)
    assert sorted(dom.DKIM.Selectors) == [year + "a", year + "b"]
    assert dom.DKIM.Sign == [year + "a"]
    for sel in dom.DKIM.Selectors.values():
        assert sel.PrivateKeyFile.startswith("dkim/") and sel.PrivateKeyFile.endswith(".pem")
        assert "example.org" in sel.PrivateKeyFile
        assert sel.Expiration == "72h"
        assert sel.Algorithm == "rsa-2048"
        key = serialization.load_pem_private_key((cd.path / sel.PrivateKeyFile).read_bytes(), None)
        assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048
        # Written under the config directory, not the working directory.
        assert not (elsewhere_cwd / "dkim").exists()
    assert len({s.PrivateKeyFile for s in dom.DKIM.Selectors.values()}) == 2
    assert dom.DMARC == model.DMARC(Localpart="dmarcreports", Account="jane", Mailbox="DMARC")
    assert dom.TLSRPT == model.TLSRPT(Localpart="tlsreports", Account="jane", Mailbox="TLSRPT")
    assert dom.MTASTS is None  # no listener serves MTA-STS
    assert dom.ClientSettingsDomain == "mail.example.org"
    assert dom.LocalpartCatchallSeparator == "+"
    assert dom.Disabled is False

    acc = got.dynamic.Accounts["jane"]
    assert acc.Destinations == {"jane@example.org": model.Destination()}
    assert acc.Domain == "example.org"
    assert acc.JunkFilter is not None and acc.JunkFilter.Threshold == 0.95
    assert acc.RejectsMailbox == "Rejects"
    for addr in ("jane@example.org", "dmarcreports@example.org", "tlsreports@example.org"):
        assert got.account_destinations[addr].account == "jane"
    # The other domain and account are untouched.
    assert got.dynamic.Domains["example.com"] == cfg.dynamic.Domains["example.com"]
    assert got.dynamic.Accounts["mjl"] == cfg.dynamic.Accounts["mjl"]


@pytest.fixture
def elsewhere_cwd(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    d = tmp_path / "cwd"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def test_domain_add_disabled(cd: Any, cfg: load.Config, fast_rsa: None) -> None:
    new = edit.domain_add(cfg, "example.net", "jane", "jane", disabled=True)
    assert reloaded(cd, new).dynamic.Domains["example.net"].Disabled is True


def test_domain_add_with_mtasts_listener_adds_policy(
    make_config_dir: Callable[..., Any], base_mox_conf: str, fast_rsa: None
) -> None:
    cd = make_config_dir(base_mox_conf.replace("\t\tWebserverHTTP:", MTASTS_LISTENER + "\t\tWebserverHTTP:"))
    cfg = load.load_config(cd.mox_conf)
    assert cfg.static.Listeners["public"].MTASTSHTTPS.Enabled
    new = edit.domain_add(cfg, "example.org", "mjl")
    sts = reloaded(cd, new).dynamic.Domains["example.org"].MTASTS
    assert sts is not None
    assert sts.Mode == "enforce"
    assert sts.MaxAge == 24 * 3600 * 10**9
    assert sts.MX == ["mail.example.com"]
    assert re.fullmatch(r"[0-9]{8}T[0-9]{6}", sts.PolicyID)


def test_domain_add_for_existing_account_adds_its_postmaster_address(
    cd: Any, cfg: load.Config, fast_rsa: None
) -> None:
    cfg = edit.account_add(cfg, "jane", "jane@example.com")
    new = edit.domain_add(cfg, "example.org", "jane")
    got = reloaded(cd, new)
    assert "postmaster@example.org" in got.dynamic.Accounts["jane"].Destinations
    assert got.dynamic.Domains["example.org"].DMARC is not None
    # The postmaster account (mox.conf) gets no explicit postmaster address.
    new = edit.domain_add(got, "example.net", "mjl")
    assert "postmaster@example.net" not in reloaded(cd, new).dynamic.Accounts["mjl"].Destinations


@pytest.mark.parametrize(
    ("domain", "account", "localpart", "match"),
    [
        ("example.com", "jane", "jane", "domain example.com already exists"),
        ("EXAMPLE.com", "jane", "jane", "domain example.com already exists"),
        ("exa mple.org", "jane", "jane", "parsing domain"),
        ("example.org", "", "", "account name is empty"),
        ("example.org", "mjl", "mjl", "account already exists"),
        ("example.org", "jane", "", "account does not exist yet"),
        ("example.org", "jane", "bad local part", "parsing local part"),
        # Valid request, but the result is invalid: the new account's address is the DMARC reporting address.
        ("example.org", "jane", "dmarcreports", "change would make the config invalid"),
    ],
)
def test_domain_add_refused_changes_nothing(
    cd: Any, cfg: load.Config, fast_rsa: None, domain: str, account: str, localpart: str, match: str
) -> None:
    refused(cd, lambda: edit.domain_add(cfg, domain, account, localpart), match)


def test_domain_remove_refused_while_addresses_remain(cd: Any, cfg: load.Config, fast_rsa: None) -> None:
    cfg = edit.domain_add(cfg, "example.org", "jane", "jane")
    key_files = [
        cd.path / s.PrivateKeyFile for s in cfg.dynamic.Domains["example.org"].DKIM.Selectors.values()
    ]
    refused(
        cd,
        lambda: edit.domain_remove(cfg, "example.org"),
        "account 'jane' still has address jane@example.org",
    )

    cfg = edit.address_remove(cfg, "jane@example.org")
    new = edit.domain_remove(cfg, "example.org")
    got = reloaded(cd, new)
    assert "example.org" not in got.dynamic.Domains
    assert not any(k.endswith("@example.org") for k in got.account_destinations)
    # The keys are kept, renamed, in case the removal was a mistake.
    for p in key_files:
        assert not p.exists()
        assert p.with_name(p.name + ".removed").exists()


def test_domain_remove_takes_postmaster_addresses_along(cd: Any, cfg: load.Config, fast_rsa: None) -> None:
    cfg = edit.account_add(cfg, "jane", "jane@example.com")
    cfg = edit.domain_add(cfg, "example.org", "jane")
    assert "postmaster@example.org" in cfg.dynamic.Accounts["jane"].Destinations
    new = edit.domain_remove(cfg, "example.org")
    assert reloaded(cd, new).dynamic.Accounts["jane"].Destinations == {
        "jane@example.com": model.Destination()
    }


def test_domain_remove_refusals(cd: Any, cfg: load.Config) -> None:
    refused(cd, lambda: edit.domain_remove(cfg, "example.org"), "domain example.org does not exist")
    refused(cd, lambda: edit.domain_remove(cfg, "exa mple.org"), "parsing domain")
    refused(
        cd, lambda: edit.domain_remove(cfg, "example.com"), "account 'mjl' still has address mjl@example.com"
    )


def test_removing_the_last_domain_is_refused(cd: Any, cfg: load.Config) -> None:
    # domains.conf needs at least one domain: an empty Domains map cannot be written.
    cfg = edit.address_remove(cfg, "mjl@example.com")
    refused(cd, lambda: edit.domain_remove(cfg, "example.com"), "Domains: a required map cannot be empty")


def test_account_add_and_remove(cd: Any, cfg: load.Config) -> None:
    new = edit.account_add(cfg, "jane", "Jane@Example.com")
    got = reloaded(cd, new)
    acc = got.dynamic.Accounts["jane"]
    assert acc.Destinations == {"Jane@example.com": model.Destination()}
    assert acc.Domain == "example.com"
    assert got.account_destinations["jane@example.com"].account == "jane"
    assert got.lookup_address("JANE+tag", got.dynamic.Domains["example.com"].DNSDomain) is not None

    new = edit.account_remove(got, "jane")
    got = reloaded(cd, new)
    assert "jane" not in got.dynamic.Accounts
    assert "jane@example.com" not in got.account_destinations


@pytest.mark.parametrize(
    ("account", "address", "match"),
    [
        ("mjl", "other@example.com", "account 'mjl' already exists"),
        ("a/b", "ab@example.com", "invalid account name"),
        ("..", "dots@example.com", "invalid account name"),
        (" jane", "jane@example.com", "invalid account name"),
        ("jane", "jane", "parsing email address"),
        ("jane", "jane@example.org", "domain 'example.org' does not exist"),
        ("jane", "MJL@example.com", "address mjl@example.com is already configured"),
        ("jane", "mjl@EXAMPLE.COM", "address mjl@example.com is already configured"),
        ("jane", "jane+x@example.com", "catchall separator '\\+'"),
    ],
)
def test_account_add_refused_changes_nothing(
    cd: Any, cfg: load.Config, account: str, address: str, match: str
) -> None:
    refused(cd, lambda: edit.account_add(cfg, account, address), match)


def test_account_add_refused_while_its_directory_exists(cd: Any, cfg: load.Config) -> None:
    (cfg.data_dir / "accounts" / "jane").mkdir(parents=True)
    refused(cd, lambda: edit.account_add(cfg, "jane", "jane@example.com"), "already or still exists")


def test_account_remove_refusals(cd: Any, cfg: load.Config, fast_rsa: None) -> None:
    refused(cd, lambda: edit.account_remove(cfg, "nobody"), "account 'nobody' does not exist")
    refused(cd, lambda: edit.account_remove(cfg, "mjl"), "postmaster account")
    cfg = edit.domain_add(cfg, "example.org", "jane", "jane")
    refused(cd, lambda: edit.account_remove(cfg, "jane"), "used for DMARC reports of domain example.org")


def test_address_add_and_remove_with_canonicalisation(cd: Any, cfg: load.Config) -> None:
    cfg = edit.address_add(cfg, "Lists@example.com", "mjl")
    got = reloaded(cd, cfg)
    assert "Lists@example.com" in got.dynamic.Accounts["mjl"].Destinations
    assert got.account_destinations["lists@example.com"].account == "mjl"

    # The same address in another case, or with a catchall suffix, is refused.
    refused(
        cd,
        lambda: edit.address_add(cfg, "LISTS@example.com", "mjl"),
        "address lists@example.com is already configured",
    )
    refused(cd, lambda: edit.address_add(cfg, "lists@EXAMPLE.COM", "mjl"), "already configured")
    refused(cd, lambda: edit.address_add(cfg, "lists+x@example.com", "mjl"), "catchall separator")
    refused(cd, lambda: edit.address_add(cfg, "x@example.com", "nobody"), "account 'nobody' does not exist")
    refused(cd, lambda: edit.address_add(cfg, "x@example.org", "mjl"), "domain 'example.org' does not exist")
    refused(cd, lambda: edit.address_add(cfg, "not an address", "mjl"), "parsing email address")

    # Removal finds the address through the same canonicalisation.
    cfg = edit.address_remove(cfg, "LISTS@example.com")
    got = reloaded(cd, cfg)
    assert got.dynamic.Accounts["mjl"].Destinations == {"mjl@example.com": model.Destination()}
    refused(cd, lambda: edit.address_remove(cfg, "lists@example.com"), "does not exist")
    refused(cd, lambda: edit.address_remove(cfg, "x@example.org"), "unknown domain")


def test_catchall_address_add_and_remove(cd: Any, cfg: load.Config) -> None:
    cfg = edit.address_add(cfg, "@example.com", "mjl")
    got = reloaded(cd, cfg)
    assert "@example.com" in got.dynamic.Accounts["mjl"].Destinations
    assert got.account_destinations["@example.com"].catchall
    assert got.lookup_address("anything", got.dynamic.Domains["example.com"].DNSDomain) is not None
    refused(
        cd,
        lambda: edit.address_add(cfg, "@EXAMPLE.com", "mjl"),
        "catchall address for domain example.com already configured",
    )
    refused(cd, lambda: edit.address_add(cfg, "@example.org", "mjl"), "domain 'example.org' does not exist")
    refused(cd, lambda: edit.address_add(cfg, "@exa mple.com", "mjl"), "parsing domain")

    cfg = edit.address_remove(cfg, "@Example.COM")
    got = reloaded(cd, cfg)
    assert "@example.com" not in got.account_destinations
    refused(cd, lambda: edit.address_remove(cfg, "@example.com"), "does not exist")


def test_case_sensitive_domain_keeps_case_distinct(
    make_config_dir: Callable[..., Any], base_domains_conf: str
) -> None:
    cd = make_config_dir(
        domains_conf=base_domains_conf.replace(
            "\t\tLocalpartCatchallSeparator: +\n", "\t\tLocalpartCaseSensitive: true\n"
        )
    )
    cfg = load.load_config(cd.mox_conf)
    cfg = edit.address_add(cfg, "MJL@example.com", "mjl")
    got = reloaded(cd, cfg)
    assert set(got.dynamic.Accounts["mjl"].Destinations) == {"mjl@example.com", "MJL@example.com"}
    # No catchall separator on this domain: a + is an ordinary character.
    cfg = edit.address_add(cfg, "mjl+x@example.com", "mjl")
    assert "mjl+x@example.com" in reloaded(cd, cfg).account_destinations


def test_address_that_is_an_alias_member_cannot_be_removed(
    make_config_dir: Callable[..., Any], base_domains_conf: str
) -> None:
    text = base_domains_conf.replace(
        "\t\t\tSign:\n\t\t\t\t- 2024a\n",
        "\t\t\tSign:\n\t\t\t\t- 2024a\n\t\tAliases:\n\t\t\tteam:\n\t\t\t\tAddresses:\n\t\t\t\t\t- mjl@example.com\n",
    )
    cd = make_config_dir(domains_conf=text)
    cfg = load.load_config(cd.mox_conf)
    refused(cd, lambda: edit.address_remove(cfg, "mjl@example.com"), "member of alias team@example.com")
    refused(cd, lambda: edit.address_add(cfg, "team@example.com", "mjl"), "in use as an alias")


def test_address_with_leading_dash_is_written_and_read_back(cd: Any, cfg: load.Config) -> None:
    # A map key may start with '-': maps are read by type, '-' only marks list items.
    cfg = edit.address_add(cfg, "-bounces@example.com", "mjl")
    assert "\t\t\t-bounces@example.com: nil\n" in cd.domains_conf.read_text()
    assert "-bounces@example.com" in reloaded(cd, cfg).account_destinations


def test_edits_keep_other_settings(localserve_dir: Path) -> None:
    # Upstream's localserve domains.conf, edited: everything else survives.
    cfg = load.load_config(localserve_dir / "mox.conf")
    before = cfg.dynamic
    cfg = edit.address_add(cfg, "second@localhost", "mox")
    got = load.load_config(localserve_dir / "mox.conf")
    assert got.dynamic == cfg.dynamic
    assert got.dynamic.WebHandlers == before.WebHandlers
    assert got.dynamic.Domains == before.Domains
    acc = got.dynamic.Accounts["mox"]
    assert acc.KeepRetiredMessagePeriod == before.Accounts["mox"].KeepRetiredMessagePeriod
    assert acc.JunkFilter == before.Accounts["mox"].JunkFilter
    assert set(acc.Destinations) == {"mox@localhost", "second@localhost"}


def test_no_temporary_files_are_left_behind(cd: Any, cfg: load.Config) -> None:
    cfg = edit.address_add(cfg, "a@example.com", "mjl")
    with pytest.raises(EditError):
        edit.address_add(cfg, "A@example.com", "mjl")
    names = sorted(p.name for p in cd.path.iterdir() if p.is_file())
    assert names == [".domains.conf.lock", "domains.conf", "mox.conf"] or names == [
        "domains.conf",
        "mox.conf",
    ]
