"""Files written by upstream mox load unchanged, and our model has exactly upstream's keys.

The ``*.described`` files are the output of upstream's ``mox config
describe-static`` / ``describe-domains``: every field, with zero values and
``x`` for map keys. They are documentation, not working configs, but they are
valid sconf for the types, which lets us compare our model with upstream's
field by field.
"""

from __future__ import annotations

import dataclasses
import shutil
import typing
from pathlib import Path

import pytest

from mox.config import load, model, sconf
from mox.config.sconf import Duration

DESCRIBED = [("mox.conf.described", model.Static), ("domains.conf.described", model.Dynamic)]


def test_localserve_config_loads_unchanged(localserve_dir: Path, upstream_config: Path) -> None:
    assert (localserve_dir / "mox.conf").read_bytes() == (
        upstream_config / "localserve-mox.conf"
    ).read_bytes()
    cfg = load.load_config(localserve_dir / "mox.conf")

    st = cfg.static
    assert st.Hostname == "localhost"
    assert st.LogLevel == "traceauth"
    assert st.User == "0" and st.UID == 0
    assert st.Pedantic is True
    assert st.TLS.CA is not None and st.TLS.CA.AdditionalToSystem and st.TLS.CA.CertFiles == ["localhost.crt"]
    assert st.AdminPasswordFile == "adminpasswd"
    assert st.Postmaster == model.Postmaster(Account="mox", Mailbox="Inbox")
    assert cfg.data_dir == localserve_dir / "."

    lst = st.Listeners["local"]
    assert lst.IPs == ["127.0.0.1", "::1"]
    assert lst.TLS is not None
    assert lst.TLS.KeyCerts == [model.KeyCert(CertFile="localhost.crt", KeyFile="localhost.key")]
    assert (lst.SMTP.Enabled, lst.SMTP.Port) == (True, 1025)
    assert (lst.Submission.Port, lst.Submission.NoRequireSTARTTLS) == (1587, True)
    assert (lst.Submissions.Port, lst.IMAP.Port, lst.IMAPS.Port) == (1465, 1143, 1993)
    assert lst.IMAP.NoRequireSTARTTLS is True
    assert (lst.AccountHTTP.Port, lst.AccountHTTP.Path) == (1080, "/account/")
    assert (lst.AdminHTTPS.Enabled, lst.AdminHTTPS.Port, lst.AdminHTTPS.Path) == (True, 1443, "")
    assert (lst.WebmailHTTPS.Path, lst.WebAPIHTTP.Path) == ("/webmail/", "/webapi/")
    assert (lst.MetricsHTTP.Enabled, lst.MetricsHTTP.Port) == (True, 1081)
    assert (lst.WebserverHTTP.Port, lst.WebserverHTTPS.Port) == (1080, 1443)
    assert not lst.PprofHTTP.Enabled and not lst.MTASTSHTTPS.Enabled and not lst.AutoconfigHTTPS.Enabled
    assert lst.SMTP.FirstTimeSenderDelay is None

    dyn = cfg.dynamic
    dom = dyn.Domains["localhost"]
    assert dom.LocalpartCatchallSeparator == "+"
    assert dom.LocalpartCatchallSeparatorsEffective == ["+"]
    assert dom.DKIM.Sign == ["localserve"]
    sel = dom.DKIM.Selectors["localserve"]
    assert sel.Expiration == "72h" and sel.ExpirationSeconds == 72 * 3600
    assert sel.PrivateKeyFile == "dkim.localserve.privatekey.pkcs8.pem"
    assert sel.Algorithm == "ed25519" and sel.Key is not None
    assert sel.HashEffective == "sha256"
    assert dom.DMARC is None and dom.MTASTS is None and dom.TLSRPT is None

    acc = dyn.Accounts["mox"]
    assert acc.KeepRetiredMessagePeriod == Duration(72 * 3600 * 10**9)
    assert acc.KeepRetiredWebhookPeriod == Duration(72 * 3600 * 10**9)
    assert type(acc.KeepRetiredMessagePeriod) is Duration
    assert acc.Domain == ""  # written by upstream as "Domain: " (required, empty)
    assert acc.Destinations == {"mox@localhost": model.Destination()}
    assert acc.RejectsMailbox == "Rejects"
    assert acc.AutomaticJunkFlags.Enabled
    assert acc.AutomaticJunkFlags.JunkMailboxRegexp == "^(junk|spam)"
    assert acc.JunkFilter is not None
    assert acc.JunkFilter.Threshold == 0.95
    assert acc.JunkFilter.Params == model.JunkParams(
        Onegrams=True, MaxPower=0.01, TopWords=10, IgnoreWords=0.1, RareWords=2
    )
    assert acc.NoFirstTimeSenderDelay is True

    assert len(dyn.WebHandlers) == 1
    wh = dyn.WebHandlers[0]
    assert (wh.LogName, wh.Domain, wh.PathRegexp, wh.DontRedirectPlainHTTP) == (
        "workdir",
        "localhost",
        "^/workdir/",
        True,
    )
    assert wh.WebStatic == model.WebStatic(StripPrefix="/workdir/", Root=".", ListFiles=True)
    assert wh.WebRedirect is None and wh.WebForward is None and wh.WebInternal is None

    # The lookup table the servers use.
    ad = cfg.account_destinations["mox@localhost"]
    assert (ad.account, ad.catchall) == ("mox", False)


def test_localserve_config_loads_with_a_relative_path(
    localserve_dir: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(localserve_dir.parent)
    cfg = load.load_config("config/mox.conf")
    assert cfg.static_path == localserve_dir / "mox.conf"
    assert cfg.static_path.is_absolute()


@pytest.mark.parametrize(("name", "cls"), DESCRIBED)
def test_described_files_are_valid_sconf_for_our_model(upstream_config: Path, name: str, cls: type) -> None:
    # Every field is present, with zero values: "Port: 0", "Threshold: 0.000000",
    # "RenewBefore: 0s", empty strings and "- " for empty list items.
    obj: object
    obj, lines = sconf.parse(cls, (upstream_config / name).read_text(), name)
    assert isinstance(obj, cls)
    assert len(lines) > 150


def _described_keys(text: str) -> dict[tuple[str, ...], bool]:
    """Key paths in a described file ("x" for map keys, "-" for list items), each with
    whether its comment says (optional). Read without any type knowledge."""
    out: dict[tuple[str, ...], bool] = {}
    stack: list[str] = []
    comment: list[str] = []
    for line in text.split("\n"):
        s = line.strip()
        if s.startswith("#"):
            comment.append(s)
            continue
        if s == "":
            continue
        depth = len(line) - len(line.lstrip("\t"))
        body = line.lstrip("\t")
        stack = stack[:depth]
        key = "-" if body.startswith("-") else body.split(":", 1)[0]
        stack.append(key)
        if key != "-":
            out[tuple(stack)] = "(optional)" in " ".join(comment)
        comment = []
    return out


def _model_keys(cls: type, prefix: tuple[str, ...] = ()) -> dict[tuple[str, ...], bool]:
    """Key paths of our model, in the same shape, each with whether it is optional."""
    out: dict[tuple[str, ...], bool] = {}

    def walk_type(tp: typing.Any, path: tuple[str, ...]) -> None:
        args = [a for a in typing.get_args(tp) if a is not type(None)]
        origin = typing.get_origin(tp)
        if origin is list:
            walk_type(args[0], (*path, "-"))
        elif origin is dict:
            out[(*path, "x")] = False
            walk_type(args[1], (*path, "x"))
        elif len(args) == 1:  # X | None
            walk_type(args[0], path)
        elif dataclasses.is_dataclass(tp):
            assert isinstance(tp, type)
            out.update(_model_keys(tp, path))

    for f in sconf.fields_of(cls):
        out[(*prefix, f.name)] = f.optional
        walk_type(f.type, (*prefix, f.name))
    return out


@pytest.mark.parametrize(("name", "cls"), DESCRIBED)
def test_model_has_exactly_upstreams_keys_in_upstreams_order(
    upstream_config: Path, name: str, cls: type
) -> None:
    upstream = _described_keys((upstream_config / name).read_text())
    ours = _model_keys(cls)
    assert sorted(set(upstream) - set(ours)) == [], "keys upstream has and our model lacks"
    assert sorted(set(ours) - set(upstream)) == [], "keys our model has and upstream lacks"
    assert list(upstream) == list(ours), "field order differs from upstream"
    differ = {k: (upstream[k], ours[k]) for k in upstream if upstream[k] != ours[k]}
    assert differ == {}, "optional in one, required in the other: (upstream, ours)"


@pytest.mark.parametrize(("name", "cls"), DESCRIBED)
def test_describe_writes_upstreams_structure_and_values(upstream_config: Path, name: str, cls: type) -> None:
    # Our documentation is our own words; everything else matches line for line.
    def values(t: str) -> list[str]:
        return [line for line in t.split("\n") if line.strip() and not line.strip().startswith("#")]

    ours = sconf.describe(cls)
    assert values(ours) == values((upstream_config / name).read_text())
    # Our described output is valid sconf for the type as well.
    sconf.parse(cls, ours, name)


def test_described_domains_conf_is_not_a_loadable_config(tmp_path: Path, upstream_config: Path) -> None:
    # Placeholders such as the domain "x" and empty key files fail validation with
    # ordinary errors (not a crash), each naming file, line and field.
    shutil.copy(upstream_config / "mox.conf.described", tmp_path / "mox.conf")
    shutil.copy(upstream_config / "domains.conf.described", tmp_path / "domains.conf")
    with pytest.raises(load.ConfigErrors) as exc:
        load.load_config(tmp_path / "mox.conf")
    errors = exc.value.errors
    assert errors
    assert {e.filename for e in errors} == {"mox.conf", "domains.conf"}
    assert all(e.line > 0 for e in errors if e.path.startswith(("Listeners", "Domains.x")))
    assert any(e.path == "Hostname" for e in errors)
