"""load_config: syntactically valid files with invalid settings give errors naming file, line and field.

The base files (tests/config/conftest.py) are valid; each test breaks one thing.
Line numbers refer to those files.
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mox.config import load
from mox.config.sconf import SconfError


def load_errors(cd: Any) -> list[SconfError]:
    with pytest.raises(load.ConfigErrors) as exc:
        load.load_config(cd.mox_conf)
    errors = exc.value.errors
    assert errors
    for e in errors:
        assert isinstance(e, SconfError)
        assert str(e).startswith(f"{e.filename}:{e.line}: " if e.line else f"{e.filename}: ")
    assert str(exc.value) == "\n".join(str(e) for e in errors)
    return errors


def find(errors: list[SconfError], path: str) -> SconfError:
    hits = [e for e in errors if e.path == path]
    assert hits, f"no error for {path}; errors: {[str(e) for e in errors]}"
    return hits[0]


def test_base_config_is_valid(make_config_dir: Callable[..., Any]) -> None:
    cd = make_config_dir()
    cfg = load.load_config(cd.mox_conf)
    assert cfg.static.Hostname == "mail.example.com"
    assert cfg.static.HostnameDomain is not None and cfg.static.HostnameDomain.name == "mail.example.com"
    assert cfg.dynamic.Domains["example.com"].DKIM.Selectors["2024a"].Algorithm == "ed25519"
    assert set(cfg.account_destinations) == {"mjl@example.com"}


def test_unknown_domain_in_destination_names_file_line_and_field(
    make_config_dir: Callable[..., Any], base_domains_conf: str
) -> None:
    cd = make_config_dir(
        domains_conf=base_domains_conf.replace("mjl@example.com: nil", "mjl@exmple.com: nil")
    )
    errors = load_errors(cd)
    assert [str(e) for e in errors] == [
        'domains.conf:15: Accounts.mjl.Destinations: unknown domain "exmple.com"'
    ]


# (case id, mox.conf text change, domains.conf text change, file, line, path, part of the message)
Change = tuple[str, str] | None
# fmt: off
CASES: list[tuple[str, Change, Change, str, int, str, str]] = [
    ("unknown-log-level", ("LogLevel: info", "LogLevel: verbose"), None, "mox.conf", 2, "LogLevel",
     "invalid log level 'verbose', expected one of error, info, debug, trace, traceauth, tracedata"),
    ("bad-hostname", ("Hostname: mail.example.com", "Hostname: mail..example.com"), None, "mox.conf", 4, "Hostname",
     "invalid hostname 'mail..example.com'"),
    ("hostname-with-space", ("Hostname: mail.example.com", "Hostname: mail example.com"), None, "mox.conf", 4, "Hostname",
     "invalid hostname"),
    ("unknown-user", ("User: 0", "User: no-such-user-here"), None, "mox.conf", 3, "User", "unknown user 'no-such-user-here'"),
    ("tls-cert-missing", ("CertFile: certs/mail.crt", "CertFile: certs/missing.crt"), None, "mox.conf", 11,
     "Listeners.public.TLS.KeyCerts[0]", "missing.crt' does not exist"),
    ("tls-key-missing", ("KeyFile: certs/mail.key", "KeyFile: certs/missing.key"), None, "mox.conf", 11,
     "Listeners.public.TLS.KeyCerts[0]", "missing.key' does not exist"),
    ("tls-key-does-not-match", ("KeyFile: certs/mail.key", "KeyFile: ../config/dkim/2024a.example.com.pem"), None, "mox.conf", 11,
     "Listeners.public.TLS.KeyCerts[0]", "loading certificate"),
    ("listener-without-tls-needing-tls",
     ("\t\tTLS:\n\t\t\tKeyCerts:\n\t\t\t\t-\n\t\t\t\t\tCertFile: certs/mail.crt\n\t\t\t\t\tKeyFile: certs/mail.key\n", ""), None,
     "mox.conf", 6, "Listeners.public", "no TLS config, but TLS is needed for IMAPS, SMTP, Submissions"),
    ("unknown-acme-provider",
     ("\t\t\tKeyCerts:\n\t\t\t\t-\n\t\t\t\t\tCertFile: certs/mail.crt\n\t\t\t\t\tKeyFile: certs/mail.key\n", "\t\t\tACME: letsencrypt\n"),
     None, "mox.conf", 10, "Listeners.public.TLS.ACME", "unknown ACME provider 'letsencrypt'"),
    ("bad-listener-ip", ("- 127.0.0.1", "- 127.0.0.256"), None, "mox.conf", 8, "Listeners.public.IPs[0]", "invalid IP '127.0.0.256'"),
    ("port-out-of-range", ("Port: 1993", "Port: 99993"), None, "mox.conf", 22, "Listeners.public.IMAPS.Port", "port 99993 out of range"),
    ("transport-bad-host", ("Host: smtp.example.net", "Host: smtp..example.net"), None, "mox.conf", 32,
     "Transports.smarthost.Submissions.Host", "invalid host"),
    ("postmaster-account-missing", ("Account: mjl", "Account: nobody"), None, "domains.conf", 11, "Accounts",
     "postmaster account 'nobody' (from mox.conf) does not exist"),
    ("dkim-key-file-missing", None, ("dkim/2024a.example.com.pem", "dkim/missing.pem"), "domains.conf", 8,
     "Domains.example.com.DKIM.Selectors.2024a.PrivateKeyFile", "missing.pem"),
    ("dkim-key-not-a-key", None, ("dkim/2024a.example.com.pem", "../config/certs/mail.crt"), "domains.conf", 8,
     "Domains.example.com.DKIM.Selectors.2024a.PrivateKeyFile", "expected a PKCS#8 PEM block"),
    ("dkim-bad-expiration", None, ("Expiration: 72h", "Expiration: 3 days"), "domains.conf", 7,
     "Domains.example.com.DKIM.Selectors.2024a.Expiration", "invalid duration '3 days'"),
    ("dkim-sign-unknown-selector", None, ("- 2024a", "- 2024b"), "domains.conf", 10, "Domains.example.com.DKIM.Sign[0]",
     "unknown selector '2024b'"),
    ("route-undefined-transport", None, ("\t\tRejectsMailbox: Rejects\n", "\t\tRejectsMailbox: Rejects\nRoutes:\n\t-\n\t\tTransport: nosuch\n"),
     "domains.conf", 19, "Routes[0].Transport", "route references undefined transport 'nosuch'"),
    ("account-route-undefined-transport", None,
     ("\t\tRejectsMailbox: Rejects\n", "\t\tRejectsMailbox: Rejects\n\t\tRoutes:\n\t\t\t-\n\t\t\t\tTransport: nosuch\n"),
     "domains.conf", 19, "Accounts.mjl.Routes[0].Transport", "undefined transport 'nosuch'"),
    ("catchall-unknown-domain", None, ("mjl@example.com: nil", "mjl@example.com: nil\n\t\t\t@exmple.com: nil"), "domains.conf", 16,
     "Accounts.mjl.Destinations", 'unknown domain "exmple.com"'),
    ("invalid-ruleset-regexp", None,
     ("mjl@example.com: nil", "mjl@example.com:\n\t\t\t\tRulesets:\n\t\t\t\t\t-\n\t\t\t\t\t\tSMTPMailFromRegexp: (unclosed\n\t\t\t\t\t\tMailbox: Lists"),
     "domains.conf", 18, "Accounts.mjl.Destinations.mjl@example.com.Rulesets[0].SMTPMailFromRegexp", "invalid regular expression '(unclosed'"),
    ("ruleset-without-rule", None,
     ("mjl@example.com: nil", "mjl@example.com:\n\t\t\t\tRulesets:\n\t\t\t\t\t-\n\t\t\t\t\t\tMailbox: Lists"),
     "domains.conf", 17, "Accounts.mjl.Destinations.mjl@example.com.Rulesets[0]", "a ruleset needs at least one rule"),
    ("mtasts-without-listener", None,
     ("\t\tLocalpartCatchallSeparator: +\n",
      "\t\tLocalpartCatchallSeparator: +\n\t\tMTASTS:\n\t\t\tPolicyID: 20240101T000000\n\t\t\tMode: enforce\n\t\t\tMaxAge: 24h\n"),
     "domains.conf", 4, "Domains.example.com.MTASTS", "MTA-STS configured, but no listener has MTASTSHTTPS enabled"),
    ("duplicate-address-after-case-folding", None,
     ("\t\tRejectsMailbox: Rejects\n", "\t\tRejectsMailbox: Rejects\n\tother:\n\t\tDomain: example.com\n\t\tDestinations:\n\t\t\tMJL@example.com: nil\n"),
     "domains.conf", 20, "Accounts.other.Destinations", "duplicate address mjl@example.com (after canonicalisation)"),
    ("address-with-catchall-separator", None, ("mjl@example.com: nil", "mjl@example.com: nil\n\t\t\tmjl+lists@example.com: nil"),
     "domains.conf", 16, "Accounts.mjl.Destinations", "contains the domain's catchall separator '+'"),
    ("smtp-error-with-bad-code", None, ("mjl@example.com: nil", "mjl@example.com:\n\t\t\t\tSMTPError: 450 go away"),
     "domains.conf", 16, "Accounts.mjl.Destinations.mjl@example.com.SMTPError", "must start with 421 or 550"),
    ("junk-threshold-out-of-range", None,
     ("\t\tRejectsMailbox: Rejects\n",
      "\t\tRejectsMailbox: Rejects\n\t\tJunkFilter:\n\t\t\tThreshold: 1.5\n\t\t\tParams:\n\t\t\t\tMaxPower: 0.01\n\t\t\t\tTopWords: 10\n"),
     "domains.conf", 18, "Accounts.mjl.JunkFilter.Threshold", "must be between 0 and 1"),
    ("webhandler-path-without-caret", None,
     ("\t\tRejectsMailbox: Rejects\n",
      "\t\tRejectsMailbox: Rejects\nWebHandlers:\n\t-\n\t\tDomain: example.com\n\t\tPathRegexp: /x/\n\t\tWebStatic:\n\t\t\tRoot: /var/www\n"),
     "domains.conf", 20, "WebHandlers[0].PathRegexp", "must start with ^"),
    ("dmarc-account-missing", None,
     ("\t\tLocalpartCatchallSeparator: +\n",
      "\t\tLocalpartCatchallSeparator: +\n\t\tDMARC:\n\t\t\tLocalpart: dmarcreports\n\t\t\tAccount: nobody\n\t\t\tMailbox: DMARC\n"),
     "domains.conf", 6, "Domains.example.com.DMARC.Account", "account 'nobody' does not exist"),
    ("domain-not-in-unicode-form", None, ("\texample.com:", "\tEXAMPLE.com:"), "domains.conf", 2, "Domains.EXAMPLE.com",
     "must be written in Unicode form 'example.com'"),
]
# fmt: on


@pytest.mark.parametrize(
    ("mox_change", "domains_change", "file", "line", "path", "message"),
    [c[1:] for c in CASES],
    ids=[c[0] for c in CASES],
)
def test_invalid_setting_names_file_line_and_field(
    make_config_dir: Callable[..., Any],
    base_mox_conf: str,
    base_domains_conf: str,
    mox_change: Change,
    domains_change: Change,
    file: str,
    line: int,
    path: str,
    message: str,
) -> None:
    mox_conf, domains_conf = base_mox_conf, base_domains_conf
    if mox_change is not None:
        assert mox_change[0] in mox_conf
        mox_conf = mox_conf.replace(mox_change[0], mox_change[1], 1)
    if domains_change is not None:
        assert domains_change[0] in domains_conf
        domains_conf = domains_conf.replace(domains_change[0], domains_change[1], 1)
    errors = load_errors(make_config_dir(mox_conf, domains_conf))
    e = find(errors, path)
    assert (e.filename, e.line) == (file, line), str(e)
    assert message in e.message, str(e)
    # One problem, one error (no follow-on noise), except where a dependent check also fails.
    assert len(errors) <= 2, [str(x) for x in errors]


def test_errors_from_both_files_are_reported_together(
    make_config_dir: Callable[..., Any], base_mox_conf: str, base_domains_conf: str
) -> None:
    cd = make_config_dir(
        base_mox_conf.replace("LogLevel: info", "LogLevel: loud"),
        base_domains_conf.replace("mjl@example.com: nil", "mjl@exmple.com: nil"),
    )
    errors = load_errors(cd)
    assert [(e.filename, e.line, e.path) for e in errors] == [
        ("mox.conf", 2, "LogLevel"),
        ("domains.conf", 15, "Accounts.mjl.Destinations"),
    ]


def test_syntax_error_in_domains_conf_is_reported_with_mox_conf_errors(
    make_config_dir: Callable[..., Any], base_mox_conf: str, base_domains_conf: str
) -> None:
    cd = make_config_dir(
        base_mox_conf.replace("LogLevel: info", "LogLevel: loud"),
        base_domains_conf.replace("\t\tDomain:", "\t\tDomian:"),
    )
    errors = load_errors(cd)
    assert [str(e) for e in errors] == [
        "mox.conf:2: LogLevel: invalid log level 'loud', expected one of error, info, debug, trace, traceauth, tracedata",
        "domains.conf:13: Accounts.mjl.Domian: unknown key 'Domian'",
    ]


def test_syntax_error_in_mox_conf(make_config_dir: Callable[..., Any], base_mox_conf: str) -> None:
    cd = make_config_dir(
        base_mox_conf.replace("\t\tSMTP:\n\t\t\tEnabled: true", "\t\tSMTP:\n\t\t\tEnabled: yes")
    )
    assert [str(e) for e in load_errors(cd)] == [
        "mox.conf:15: Listeners.public.SMTP.Enabled: expected true or false, not 'yes'"
    ]


def test_missing_files(tmp_path: Path, make_config_dir: Callable[..., Any]) -> None:
    with pytest.raises(load.ConfigErrors) as exc:
        load.load_config(tmp_path / "nothere" / "mox.conf")
    assert "does not exist" in str(exc.value)

    cd = make_config_dir()
    cd.domains_conf.unlink()
    errors = load_errors(cd)
    assert (
        len(errors) == 1
        and errors[0].filename.endswith("domains.conf")
        and "does not exist" in errors[0].message
    )


def test_file_that_is_not_utf8_is_an_error_not_a_crash(make_config_dir: Callable[..., Any]) -> None:
    cd = make_config_dir()
    cd.domains_conf.write_bytes(b"Domains:\n\t\xff\xfe: nil\n")
    errors = load_errors(cd)
    assert errors[0].filename.endswith("domains.conf")
    assert "reading config file" in errors[0].message


def test_reload_dynamic_keeps_validating(make_config_dir: Callable[..., Any], base_domains_conf: str) -> None:
    cd = make_config_dir()
    cfg = load.load_config(cd.mox_conf)
    new = load.reload_dynamic(
        cfg, base_domains_conf.replace("RejectsMailbox: Rejects", "RejectsMailbox: Junkmail")
    )
    assert new.dynamic.Accounts["mjl"].RejectsMailbox == "Junkmail"
    assert new.static is cfg.static
    with pytest.raises(load.ConfigErrors) as exc:
        load.reload_dynamic(cfg, base_domains_conf.replace("mjl@example.com: nil", "mjl@exmple.com: nil"))
    assert [str(e) for e in exc.value.errors] == [
        'domains.conf:15: Accounts.mjl.Destinations: unknown domain "exmple.com"'
    ]
