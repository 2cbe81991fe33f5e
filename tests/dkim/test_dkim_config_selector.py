"""Signing with a selector as config validation leaves it (mox.config.model.Selector)."""

import pytest

from mox.config import model
from mox.dkim import (
    SignError,
    Status,
    generate_ed25519_key,
    parse_signature,
    selector_from_config,
    sign,
    txt_record,
    verify,
)
from mox.dkim.canon import split_message
from mox.dns import MockResolver, parse_domain

MSG = b"From: <mjl@example.org>\r\nSubject: hi\r\nTo: <x@example.net>\r\n\r\nbody\r\n"


async def test_config_selector_signs_with_its_settings() -> None:
    key = generate_ed25519_key()
    sel = model.Selector(PrivateKeyFile="sel.pem")
    sel.Canonicalization = model.Canonicalization(HeaderRelaxed=True, BodyRelaxed=False)
    sel.HashEffective = "sha256"
    sel.HeadersEffective = ["From", "Subject", "To"]
    sel.DontSealHeaders = True
    sel.ExpirationSeconds = 3600
    sel.Key = key
    sel.Domain = parse_domain("sel2024")
    ss = selector_from_config(sel)
    assert (ss.header_relaxed, ss.body_relaxed, ss.seal_headers) == (True, False, False)
    header = sign(MSG, parse_domain("example.org"), [ss], localpart="mjl", now=1_700_000_000)
    _, value = split_message(header.encode() + MSG).headers[0]
    sig = parse_signature(value.decode())
    assert (sig.canonicalization, sig.signed_headers) == ("relaxed/simple", ["From", "Subject", "To"])
    assert (sig.sign_time, sig.expire_time, sig.identity) == (1_700_000_000, 1_700_003_600, "mjl@example.org")
    assert str(sig.selector.ascii) == "sel2024"
    r = MockResolver(txt={"sel2024._domainkey.example.org": [txt_record(key)]})
    res = await verify(header.encode() + MSG, r, now=1_700_000_100)
    assert res[0].status == Status.PASS


def test_config_selector_without_key() -> None:
    with pytest.raises(SignError):
        selector_from_config(model.Selector(PrivateKeyFile="x.pem"))
