"""Editing domains.conf for administration: aliases, disabled logins and domains, account addresses.

As with the other edits: a successful change leaves a domains.conf that
load_config accepts and that matches the returned Config; a refused change
leaves the file byte for byte as it was.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytest

from mox.config import edit, load, model
from mox.config.edit import EditError

# Two accounts, a second domain, and a case-sensitive domain.
DOMAINS_CONF = """\
Domains:
	example.com:
		LocalpartCatchallSeparator: +
		DKIM:
			Selectors:
				2024a:
					Expiration: 72h
					PrivateKeyFile: dkim/2024a.example.com.pem
			Sign:
				- 2024a
	example.org:
		LocalpartCaseSensitive: true
Accounts:
	mjl:
		Domain: example.com
		Destinations:
			mjl@example.com: nil
			@example.org: nil
		RejectsMailbox: Rejects
	jan:
		Domain: example.com
		Destinations:
			jan@example.com: nil
			Jan@example.org: nil
		RejectsMailbox: Rejects
"""


@pytest.fixture
def cd(make_config_dir: Callable[..., Any], base_mox_conf: str) -> Any:
    return make_config_dir(base_mox_conf, DOMAINS_CONF)


@pytest.fixture
def cfg(cd: Any) -> load.Config:
    return load.load_config(cd.mox_conf)


def refused(cd: Any, fn: Callable[[], object], match: str) -> None:
    before = cd.domains_conf.read_bytes()
    with pytest.raises(EditError, match=match):
        fn()
    assert cd.domains_conf.read_bytes() == before


def reloaded(cd: Any, new: load.Config) -> load.Config:
    """The config read back from disk, which must equal what the edit returned."""
    got = load.load_config(cd.mox_conf)
    assert got.dynamic == new.dynamic
    assert set(got.account_destinations) == set(new.account_destinations)
    return got


def with_alias(cd: Any, cfg: load.Config) -> load.Config:
    return reloaded(cd, edit.alias_add(cfg, "team@example.com", ["mjl@example.com", "jan@example.com"]))


# Aliases.


def test_alias_add_defaults_to_public_posting(cd: Any, cfg: load.Config) -> None:
    got = with_alias(cd, cfg)
    alias = got.dynamic.Domains["example.com"].Aliases["team"]
    assert alias == model.Alias(Addresses=["mjl@example.com", "jan@example.com"], PostPublic=True)
    assert "\t\tAliases:\n\t\t\tteam:\n" in cd.domains_conf.read_text()
    assert edit.alias_list(got, "example.com") == ["team@example.com"]
    assert edit.alias_list(got, "example.org") == []
    assert edit.alias_get(got, "team@example.com") == alias
    # Lookups use the canonical local part, as delivery does.
    assert edit.alias_get(got, "TEAM@example.com") == alias
    assert edit.alias_get(got, "team+x@example.com") == alias


@pytest.mark.parametrize(
    ("address", "members", "match"),
    [
        ("not an address", ["mjl@example.com"], "parsing address"),
        ("team@example.net", ["mjl@example.com"], "domain example.net does not exist"),
        ("team+x@example.com", ["mjl@example.com"], "catchall separator"),
        ("MJL@example.com", ["jan@example.com"], "mjl@example.com is already configured for an account"),
        ("team@example.com", [], "at least one member"),
        ("team@example.com", ["nobody@example.com"], "'nobody@example.com' is not an address of a local account"),
        ("team@example.com", ["x@example.org"], "not an address of a local account"),  # only the catchall
        ("team@example.com", ["jan@example.org"], "not an address of a local account"),  # case-sensitive domain
        ("team@example.com", ["jan@example.com", "JAN@example.com"], "already a member"),
        ("team@example.com", ["mjl"], "parsing member address"),
    ],
)
def test_alias_add_refused_changes_nothing(cd: Any, cfg: load.Config, address: str, members: list[str], match: str) -> None:
    refused(cd, lambda: edit.alias_add(cfg, address, members), match)


def test_alias_address_is_exclusive(cd: Any, cfg: load.Config) -> None:
    got = with_alias(cd, cfg)
    refused(cd, lambda: edit.alias_add(got, "Team@example.com", ["mjl@example.com"]), "alias team@example.com already exists")
    # The alias address is taken for accounts too.
    refused(cd, lambda: edit.address_add(got, "team@example.com", "mjl"), "in use as an alias")


def test_alias_members_may_be_on_other_domains(cd: Any, cfg: load.Config) -> None:
    got = reloaded(cd, edit.alias_add(cfg, "List@example.org", ["Jan@example.org", "mjl@example.com"]))
    assert edit.alias_list(got, "example.org") == ["List@example.org"]
    # Case-sensitive domain: a different case is a different alias.
    refused(cd, lambda: edit.alias_get(got, "list@example.org"), "alias list@example.org does not exist")


def test_alias_update_changes_only_given_settings(cd: Any, cfg: load.Config) -> None:
    got = with_alias(cd, cfg)
    got = reloaded(cd, edit.alias_update(got, "team@example.com", post_public=False, list_members=True))
    a = got.dynamic.Domains["example.com"].Aliases["team"]
    assert (a.PostPublic, a.ListMembers, a.AllowMsgFrom) == (False, True, False)
    got = reloaded(cd, edit.alias_update(got, "TEAM@example.com", allow_msg_from=True))
    a = got.dynamic.Domains["example.com"].Aliases["team"]
    assert (a.PostPublic, a.ListMembers, a.AllowMsgFrom) == (False, True, True)
    assert a.Addresses == ["mjl@example.com", "jan@example.com"]
    refused(cd, lambda: edit.alias_update(got, "other@example.com", post_public=True), "alias other@example.com does not exist")


def test_alias_remove(cd: Any, cfg: load.Config) -> None:
    got = with_alias(cd, cfg)
    refused(cd, lambda: edit.alias_remove(got, "other@example.com"), "does not exist")
    refused(cd, lambda: edit.alias_remove(got, "team@example.net"), "domain example.net does not exist")
    got = reloaded(cd, edit.alias_remove(got, "team@example.com"))
    assert got.dynamic.Domains["example.com"].Aliases == {}
    assert "Aliases" not in cd.domains_conf.read_text()
    # The address is free for an account again.
    reloaded(cd, edit.address_add(got, "team@example.com", "jan"))


def test_alias_addresses_add_and_remove(cd: Any, cfg: load.Config) -> None:
    got = reloaded(cd, edit.alias_add(cfg, "team@example.com", ["mjl@example.com"]))
    got = reloaded(cd, edit.alias_addresses_add(got, "team@example.com", ["jan@example.com", "Jan@example.org"]))
    assert got.dynamic.Domains["example.com"].Aliases["team"].Addresses == [
        "mjl@example.com",
        "jan@example.com",
        "Jan@example.org",
    ]
    refused(cd, lambda: edit.alias_addresses_add(got, "team@example.com", []), "at least one address")
    refused(cd, lambda: edit.alias_addresses_add(got, "team@example.com", ["MJL@example.com"]), "already a member")
    refused(cd, lambda: edit.alias_addresses_add(got, "team@example.com", ["x@example.com"]), "not an address of a local account")
    refused(cd, lambda: edit.alias_addresses_add(got, "other@example.com", ["jan@example.com"]), "does not exist")

    got = reloaded(cd, edit.alias_addresses_remove(got, "team@example.com", ["JAN@example.com", "mjl@example.com"]))
    assert got.dynamic.Domains["example.com"].Aliases["team"].Addresses == ["Jan@example.org"]
    refused(cd, lambda: edit.alias_addresses_remove(got, "team@example.com", []), "at least one address")
    refused(
        cd,
        lambda: edit.alias_addresses_remove(got, "team@example.com", ["jan@example.com", "x@example.com"]),
        "address not found: jan@example.com, x@example.com",
    )
    # The last member stays: an alias without members is not valid.
    refused(cd, lambda: edit.alias_addresses_remove(got, "team@example.com", ["Jan@example.org"]), "remove the alias instead")


# Accounts and domains.


def test_account_addresses_as_configured_with_catchalls(cfg: load.Config) -> None:
    assert edit.account_addresses(cfg, "mjl") == ["@example.org", "mjl@example.com"]
    assert edit.account_addresses(cfg, "jan") == ["Jan@example.org", "jan@example.com"]
    with pytest.raises(EditError, match="account 'nobody' does not exist"):
        edit.account_addresses(cfg, "nobody")


def test_account_disable_and_enable(cd: Any, cfg: load.Config) -> None:
    got = reloaded(cd, edit.account_login_disabled(cfg, "jan", "account moved, ask the admin"))
    assert got.dynamic.Accounts["jan"].LoginDisabled == "account moved, ask the admin"
    assert "LoginDisabled: account moved, ask the admin\n" in cd.domains_conf.read_text()
    assert got.dynamic.Accounts["mjl"].LoginDisabled == ""
    got = reloaded(cd, edit.account_login_disabled(got, "jan", ""))
    assert got.dynamic.Accounts["jan"].LoginDisabled == ""
    assert "LoginDisabled" not in cd.domains_conf.read_text()


@pytest.mark.parametrize(
    ("message", "match"),
    [
        ("x" * 257, "at most 256 characters"),
        ("bye\nnow", "control characters"),
        ("tab\there", "control characters"),
        ("del\x7f", "control characters"),
        ("caf\u00e9 closed", "ASCII-only"),
    ],
)
def test_account_disable_message_refused(cd: Any, cfg: load.Config, message: str, match: str) -> None:
    refused(cd, lambda: edit.account_login_disabled(cfg, "jan", message), match)


def test_account_disable_message_limits(cd: Any, cfg: load.Config) -> None:
    with pytest.raises(EditError, match="non-empty"):
        edit.check_login_disabled_message("")
    got = reloaded(cd, edit.account_login_disabled(cfg, "jan", "x" * 256))
    assert got.dynamic.Accounts["jan"].LoginDisabled == "x" * 256
    refused(cd, lambda: edit.account_login_disabled(got, "nobody", "bye"), "account 'nobody' does not exist")


def test_domain_disable_and_enable(cd: Any, cfg: load.Config) -> None:
    got = reloaded(cd, edit.domain_disabled(cfg, "EXAMPLE.org", True))
    assert got.dynamic.Domains["example.org"].Disabled is True
    assert got.dynamic.Domains["example.com"].Disabled is False
    got = reloaded(cd, edit.domain_disabled(got, "example.org", False))
    assert got.dynamic.Domains["example.org"].Disabled is False
    assert "Disabled" not in cd.domains_conf.read_text()
    refused(cd, lambda: edit.domain_disabled(got, "example.net", True), "domain example.net does not exist")
    refused(cd, lambda: edit.domain_disabled(got, "exa mple.net", True), "parsing domain")


def test_alias_list_writes_local_parts_in_their_usual_form(make_config_dir: Callable[..., Any], base_mox_conf: str) -> None:
    text = DOMAINS_CONF.replace(
        "\texample.org:\n", '\t\tAliases:\n\t\t\t"team":\n\t\t\t\tAddresses:\n\t\t\t\t\t- mjl@example.com\n\texample.org:\n'
    )
    cd = make_config_dir(base_mox_conf, text)
    cfg = load.load_config(cd.mox_conf)
    assert edit.alias_list(cfg, "example.com") == ["team@example.com"]
    assert edit.alias_get(cfg, "team@example.com").Addresses == ["mjl@example.com"]
    new = reloaded(cd, edit.alias_addresses_add(cfg, "team@example.com", ["jan@example.com"]))
    assert new.dynamic.Domains["example.com"].Aliases['"team"'].Addresses == ["mjl@example.com", "jan@example.com"]


def test_address_remove_leaves_aliases_but_not_the_last_member(cd: Any, cfg: load.Config) -> None:
    cfg = reloaded(cd, edit.alias_add(cfg, "team@example.com", ["mjl@example.com", "jan@example.com"]))
    new = reloaded(cd, edit.address_remove(cfg, "jan@example.com"))
    assert new.dynamic.Domains["example.com"].Aliases["team"].Addresses == ["mjl@example.com"]
    refused(cd, lambda: edit.address_remove(new, "mjl@example.com"), "last member of alias team@example.com")
