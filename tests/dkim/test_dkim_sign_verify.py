"""DKIM sign/verify round trips, failures, key records, and interop with dkimpy's own verifier."""

from __future__ import annotations

import base64
import time
from functools import cache

import dkim as dkimpy
import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa

from mox.dkim import (
    MAX_SIGNATURES,
    SignError,
    SignSelector,
    Status,
    generate_ed25519_key,
    generate_rsa_key,
    load_private_key_pem,
    parse_record,
    private_key_pem,
    sign,
    txt_record,
    verify,
)
from mox.dkim.record import PrivateKey
from mox.dns import MockResolver, parse_domain

MSG = (
    b"From: Mjl <mjl@example.org>\r\n"
    b"To: <other@example.net>\r\n"
    b"Subject: test message\r\n"
    b"Date: Mon, 1 Jan 2024 00:00:00 +0000\r\n"
    b"Message-Id: <1@example.org>\r\n"
    b"\r\n"
    b"hello  there\r\n"
    b"world \r\n"
    b"\r\n"
)
DOMAIN = parse_domain("example.org")


@cache
def rsa_key() -> rsa.RSAPrivateKey:
    return generate_rsa_key(2048)


@cache
def ed_key() -> ed25519.Ed25519PrivateKey:
    return generate_ed25519_key()


def resolver(key: PrivateKey, selector: str = "sel", extra: str = "") -> MockResolver:
    return MockResolver(txt={f"{selector}._domainkey.example.org": [txt_record(key) + extra]})


def signed(key: PrivateKey, msg: bytes = MSG, **kw: object) -> bytes:
    sel = SignSelector(parse_domain("sel"), key, **kw)  # type: ignore[arg-type]
    return sign(msg, DOMAIN, [sel], localpart="mjl").encode() + msg


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
@pytest.mark.parametrize("relaxed", [(True, True), (False, False), (True, False), (False, True)])
async def test_sign_then_verify_passes(kind: str, relaxed: tuple[bool, bool]) -> None:
    key: PrivateKey = rsa_key() if kind == "rsa" else ed_key()
    data = signed(key, header_relaxed=relaxed[0], body_relaxed=relaxed[1])
    res = await verify(data, resolver(key))
    assert [r.status for r in res] == [Status.PASS], res[0].error
    r = res[0]
    assert r.domain == DOMAIN
    assert r.selector == parse_domain("sel")
    assert r.algorithm == f"{kind}-sha256"
    assert r.sig is not None and r.sig.identity == "mjl@example.org"


@pytest.mark.parametrize("kind", ["rsa", "ed25519"])
async def test_tampered_body_or_header_fails(kind: str) -> None:
    key: PrivateKey = rsa_key() if kind == "rsa" else ed_key()
    data = signed(key)
    res = await verify(data.replace(b"hello", b"HELLO"), resolver(key))
    assert res[0].status == Status.FAIL
    assert "body hash" in res[0].error
    res = await verify(data.replace(b"Subject: test message", b"Subject: test massage"), resolver(key))
    assert res[0].status == Status.FAIL
    assert "signature verification failed" in res[0].error


async def test_relaxed_tolerates_whitespace_and_header_case() -> None:
    data = signed(ed_key(), header_relaxed=True, body_relaxed=True)
    changed = data.replace(b"Subject: test message", b"subject:   test    message").replace(
        b"world \r\n", b"world\r\n"
    )
    assert (await verify(changed, resolver(ed_key())))[0].status == Status.PASS
    data = signed(ed_key(), header_relaxed=False, body_relaxed=False)
    changed = data.replace(b"Subject: test message", b"subject: test message")
    assert (await verify(changed, resolver(ed_key())))[0].status == Status.FAIL


async def test_oversigned_header_cannot_be_added() -> None:
    data = signed(ed_key())
    added = data.replace(b"Subject: test message\r\n", b"Subject: test message\r\nSubject: added\r\n")
    assert (await verify(added, resolver(ed_key())))[0].status == Status.FAIL
    # Without sealing, a listed name without instance (Cc) still signs "no
    # instance", so adding one breaks the signature too.
    data = signed(ed_key(), seal_headers=False)
    added = data.replace(b"\r\n\r\nhello", b"\r\nCc: x@example.com\r\n\r\nhello")
    assert (await verify(added, resolver(ed_key())))[0].status == Status.FAIL


async def test_missing_key_record_is_permerror_and_dns_failure_temperror() -> None:
    data = signed(ed_key())
    res = await verify(data, MockResolver())
    assert res[0].status == Status.PERMERROR
    r = MockResolver(fail={"sel._domainkey.example.org": "temporary"})
    assert (await verify(data, r))[0].status == Status.TEMPERROR


async def test_record_problems() -> None:
    data = signed(ed_key())
    name = "sel._domainkey.example.org"
    cases = [
        (["v=DKIM1; k=ed25519; p="], Status.PERMERROR, "revoked"),
        (["v=DKIM1; k=ed25519; p=!!!"], Status.PERMERROR, "syntax"),
        ([txt_record(rsa_key())], Status.PERMERROR, "does not match"),
        ([txt_record(ed_key()), txt_record(ed_key())], Status.TEMPERROR, "multiple"),
        (["v=spf1 -all"], Status.TEMPERROR, "not a dkim record"),
        ([txt_record(ed_key(), hashes=["sha1"])], Status.PERMERROR, "hash algorithm"),
        ([txt_record(ed_key()) + "; s=tlsrpt"], Status.PERMERROR, "email"),
        ([txt_record(generate_ed25519_key()) + "; t=y"], Status.NONE, "signature verification failed"),
    ]
    for txts, status, reason in cases:
        res = await verify(data, MockResolver(txt={name: txts}))
        assert res[0].status == status, (txts, res[0])
        assert reason in res[0].error, (txts, res[0].error)


async def test_signature_problems() -> None:
    key = ed_key()
    r = resolver(key)
    # Expired.
    sel = SignSelector(parse_domain("sel"), key, expiration_seconds=60)
    data = sign(MSG, DOMAIN, [sel], now=time.time() - 3600).encode() + MSG
    assert (await verify(data, r))[0].status == Status.PERMERROR
    # Still valid at the time it was made.
    res = await verify(data, r, now=time.time() - 3590)
    assert res[0].status == Status.PASS
    # Subject not signed: local policy.
    data = signed(key, headers=["From", "To"])
    res = await verify(data, r)
    assert res[0].status == Status.POLICY
    # Malformed header.
    bad = b"DKIM-Signature: v=1; a=rsa-sha256; d=example.org\r\n" + MSG
    assert (await verify(bad, r))[0].status == Status.PERMERROR
    # l= is refused by policy.
    with_l = signed(key).replace(b"c=relaxed/relaxed;", b"c=relaxed/relaxed; l=5;")
    assert (await verify(with_l, r))[0].status == Status.POLICY
    # d= a public suffix.
    sel = SignSelector(parse_domain("sel"), key)
    data = sign(MSG, parse_domain("co.uk"), [sel]).encode() + MSG
    res = await verify(data, MockResolver(txt={"sel._domainkey.co.uk": [txt_record(key)]}))
    assert res[0].status == Status.PERMERROR and "public suffix" in res[0].error


async def test_unsigned_message_has_no_results_and_signature_count_is_limited() -> None:
    assert await verify(MSG, MockResolver()) == []
    sel = SignSelector(parse_domain("sel"), ed_key())
    headers = "".join(sign(MSG, DOMAIN, [sel]) for _ in range(MAX_SIGNATURES + 2))
    res = await verify(headers.encode() + MSG, resolver(ed_key()))
    assert [r.status for r in res] == [Status.PASS] * MAX_SIGNATURES + [Status.POLICY] * 2


async def test_multiple_selectors_and_authentic_flag() -> None:
    sels = [SignSelector(parse_domain("a"), rsa_key()), SignSelector(parse_domain("b"), ed_key())]
    data = sign(MSG, DOMAIN, sels).encode() + MSG
    r = MockResolver(
        txt={
            "a._domainkey.example.org": [txt_record(rsa_key())],
            "b._domainkey.example.org": [txt_record(ed_key())],
        },
        authentic={"b._domainkey.example.org"},
    )
    res = await verify(data, r)
    assert [(x.status, x.record_authentic) for x in res] == [(Status.PASS, False), (Status.PASS, True)]


def test_sign_needs_exactly_one_from() -> None:
    sel = SignSelector(parse_domain("sel"), ed_key())
    with pytest.raises(SignError):
        sign(MSG.replace(b"From: Mjl <mjl@example.org>\r\n", b""), DOMAIN, [sel])
    with pytest.raises(SignError):
        sign(b"From: a@example.org\r\n" + MSG, DOMAIN, [sel])


def test_txt_record_and_keys_round_trip() -> None:
    txt = txt_record(ed_key())
    assert txt.startswith("v=DKIM1; k=ed25519; p=")
    rec, is_dkim = parse_record(txt)
    assert is_dkim and rec.key_type == "ed25519" and len(rec.public_key) == 32
    txt = txt_record(rsa_key())
    assert txt.startswith("v=DKIM1; k=rsa; p=MII")
    rec, _ = parse_record(txt)
    assert rec.key is not None
    key = load_private_key_pem(private_key_pem(rsa_key()))
    assert isinstance(key, rsa.RSAPrivateKey) and key.key_size == 2048


# Interop with dkimpy's complete verifier and signer (RSA only: dkimpy needs PyNaCl for Ed25519).


def test_dkimpy_verifies_our_rsa_signature() -> None:
    for relaxed in (True, False):
        data = signed(rsa_key(), header_relaxed=relaxed, body_relaxed=relaxed)

        def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
            assert name == b"sel._domainkey.example.org."
            return txt_record(rsa_key()).encode()

        assert dkimpy.verify(data, dnsfunc=dnsfunc)


async def test_we_verify_dkimpy_rsa_signature() -> None:
    pem = rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    for canon in ((b"relaxed", b"simple"), (b"simple", b"simple"), (b"relaxed", b"relaxed")):
        header = dkimpy.sign(
            MSG, b"sel", b"example.org", pem, canonicalize=canon, include_headers=[b"from", b"subject", b"to"]
        )
        res = await verify(header + MSG, resolver(rsa_key()))
        assert res[0].status == Status.PASS, (canon, res[0].error)


async def test_rfc8463_example_ed25519_signature() -> None:
    # RFC 8463 appendix A: the example message, key and ed25519 signature.
    msg = (
        b"DKIM-Signature: v=1; a=ed25519-sha256; c=relaxed/relaxed;\r\n"
        b" d=football.example.com; i=@football.example.com;\r\n"
        b" q=dns/txt; s=brisbane; t=1528637909; h=from : to :\r\n"
        b" subject : date : message-id : from : subject : date;\r\n"
        b" bh=2jUSOH9NhtVGCQWNr9BrIAPreKQjO6Sn7XIkfJVOzv8=;\r\n"
        b" b=/gCrinpcQOoIfuHNQIbq4pgh9kyIK3AQUdt9OdqQehSwhEIug4D11Bus\r\n"
        b" Fa3bT3FY5OsU7ZbnKELq+eXdp1Q1Dw==\r\n"
        b"From: Joe SixPack <joe@football.example.com>\r\n"
        b"To: Suzie Q <suzie@shopping.example.net>\r\n"
        b"Subject: Is dinner ready?\r\n"
        b"Date: Fri, 11 Jul 2003 21:00:37 -0700 (PDT)\r\n"
        b"Message-ID: <20030712040037.46341.5F8J@football.example.com>\r\n"
        b"\r\n"
        b"Hi.\r\n"
        b"\r\n"
        b"We lost the game.  Are you hungry yet?\r\n"
        b"\r\n"
        b"Joe.\r\n"
    )
    r = MockResolver(
        txt={
            "brisbane._domainkey.football.example.com": [
                "v=DKIM1; k=ed25519; p=11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
            ]
        }
    )
    res = await verify(msg, r)
    assert res[0].status == Status.PASS, res[0].error
    # The RFC's private key (seed) reproduces the public key.
    seed = base64.b64decode("nWGxne/9WmC6hEr0kuwsxERJxWl7MmkZcDusAxyuf2A=")
    pub = ed25519.Ed25519PrivateKey.from_private_bytes(seed).public_key()
    assert base64.b64encode(pub.public_bytes(serialization.Encoding.Raw, serialization.PublicFormat.Raw)) == (
        b"11qYAYKxCrfVS/7TyWQHOg7hcvPapiMlrwIaaPcHURo="
    )


async def test_body_length_tag_only_with_accepting_policy() -> None:
    pem = rsa_key().private_bytes(
        serialization.Encoding.PEM,
        serialization.PrivateFormat.TraditionalOpenSSL,
        serialization.NoEncryption(),
    )
    header = dkimpy.sign(MSG, b"sel", b"example.org", pem, include_headers=[b"from", b"subject"], length=True)
    appended = header + MSG + b"appended by a list\r\n"
    r = resolver(rsa_key())
    # Default policy: refused, as upstream.
    assert (await verify(appended, r))[0].status == Status.POLICY
    # A policy that accepts l=: the signed prefix verifies, appended content is ignored.
    assert (await verify(appended, r, policy=lambda sig: ""))[0].status == Status.PASS
    # A body shorter than l= fails.
    short = header + MSG.replace(b"hello  there\r\n", b"")
    res = await verify(short, r, policy=lambda sig: "")
    assert res[0].status == Status.FAIL
