"""Authentication-Results header writing (mox.authres, RFC 8601), with results of dkim, dmarc and iprev."""

from mox import authres, dkim, dmarc, iprev
from mox.authres import AuthMethod, AuthProp, AuthResults, quote_value
from mox.dns import Domain, parse_domain


def test_quote_value() -> None:
    assert quote_value("pass") == "pass"
    assert quote_value("") == '""'
    assert quote_value("a b") == '"a b"'
    assert quote_value('say "hi"\\') == '"say \\"hi\\"\\\\"'
    assert quote_value("user@example.org") == '"user@example.org"'
    assert quote_value("user@example.org", is_addr_like=True) == "user@example.org"
    assert quote_value("a;b") == '"a;b"'
    assert quote_value("ünïcode") == "ünïcode"


def test_header_without_methods_is_none() -> None:
    assert AuthResults("mox.example").header() == "Authentication-Results: mox.example; none\r\n"


def test_header_layout_and_folding() -> None:
    ar = AuthResults(
        "mox.example",
        methods=[
            authres.iprev_method(iprev.Result(iprev.Status.PASS, "mail.example.org"), "198.51.100.1"),
            AuthMethod(
                "dkim",
                "fail",
                "without dnssec",
                "body hash does not match",
                [AuthProp("header", "d", "example.org", True)],
            ),
            authres.spf_method("pass", parse_domain("example.org"), True),
            authres.auth_method("mjl@mox.example"),
        ],
    )
    h = ar.header()
    assert h == (
        "Authentication-Results: mox.example;\r\n"
        "\tiprev=pass (without dnssec) policy.iprev=198.51.100.1;\r\n"
        '\tdkim=fail (without dnssec) reason="body hash does not match"\r\n'
        "\theader.d=example.org;\r\n"
        "\tspf=pass (with dnssec) smtp.mailfrom=example.org;\r\n"
        "\tauth=pass smtp.mailfrom=mjl@mox.example\r\n"
    )
    for line in h.split("\r\n"):
        assert len(line) <= 78


def test_comment_only_when_something_follows() -> None:
    ar = AuthResults("mox.example", comment="x (y)", methods=[AuthMethod("dmarc", "none", "without dnssec")])
    assert ar.header() == "Authentication-Results: (x \\(y\\)) mox.example;\r\n\tdmarc=none\r\n"


def test_dkim_and_dmarc_methods() -> None:
    key = dkim.generate_ed25519_key()
    rec = dkim.record_for_key(key)
    sig = dkim.Signature(
        algorithm_sign="ed25519",
        algorithm_hash="sha256",
        signature=b"\x01" * 64,
        domain=parse_domain("example.org"),
        selector=parse_domain("sel"),
        identity="mjl@example.org",
    )
    ms = authres.dkim_methods([dkim.Result(dkim.Status.PASS, sig, rec, True)])
    h = AuthResults("mox.example", methods=ms).header()
    assert h == (
        "Authentication-Results: mox.example;\r\n"
        "\tdkim=pass (with dnssec) header.d=example.org header.s=sel\r\n"
        "\theader.a=ed25519-sha256 header.b=AQEBAQEBAQEB header.i=mjl@example.org\r\n"
    )
    assert authres.dkim_methods([]) == [AuthMethod("dkim", "none", reason="no dkim signatures")]
    r = dmarc.Result(status=dmarc.Status.PASS, record_authentic=False)
    m = authres.dmarc_method(r, parse_domain("example.org"))
    assert AuthResults("h", methods=[m]).header() == (
        "Authentication-Results: h;\r\n\tdmarc=pass (without dnssec) header.from=example.org\r\n"
    )
    assert authres.dmarc_method(None, None) == AuthMethod("dmarc", "none")


def test_unicode_domain_with_ascii_comment() -> None:
    d = parse_domain("ex\u00e4mple.org")
    assert isinstance(d, Domain) and d.unicode
    m = authres.spf_method("pass", d, False, smtputf8=True)
    assert m.props[0].value == "exämple.org" and m.props[0].comment == d.ascii
    m = authres.spf_method("pass", d, False)
    assert m.props[0].value == d.ascii and m.props[0].comment == ""
