"""DANE verification (RFC 7671, RFC 7672) with generated certificates."""

from __future__ import annotations

import asyncio
import datetime as dt
import ssl
import tempfile
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import ec
from danehelpers import NOW, cert, der, make_pki, name
from hypothesis import given, settings
from hypothesis import strategies as st

from mox import dane
from mox.dane import TLSAStatus, make_record, peer_chain_der, raw_spki, verify
from mox.dns import TLSA, MockResolver

HOST = "mx.example.org"


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matchtype", [0, 1, 2])
def test_dane_ee_each_selector_matchtype(selector: int, matchtype: int) -> None:
    pki = make_pki()
    rec = make_record(3, selector, matchtype, pki.leaf)
    res = verify(pki.chain(), [rec], [HOST], NOW)
    assert res.verified and res.record == rec and res.result_type == ""
    # Another certificate does not match.
    other = make_pki()
    res = verify(other.chain(), [rec], [HOST], NOW)
    assert not res.verified
    assert (res.result_type, res.reason) == ("validation-failure", "dane-no-match")


@pytest.mark.parametrize("selector", [0, 1])
@pytest.mark.parametrize("matchtype", [0, 1, 2])
@pytest.mark.parametrize("anchor", ["root", "inter"])
def test_dane_ta_each_selector_matchtype(selector: int, matchtype: int, anchor: str) -> None:
    pki = make_pki()
    ta = pki.root if anchor == "root" else pki.inter
    rec = make_record(2, selector, matchtype, ta)
    res = verify(pki.chain(with_root=True), [rec], [HOST], NOW)
    assert res.verified and res.record == rec


def test_dane_ta_full_anchor_not_sent() -> None:
    # RFC 7671 section 5.2.2: a full trust anchor in the record need not be sent.
    pki = make_pki()
    for selector in (0, 1):
        rec = make_record(2, selector, 0, pki.root)
        assert verify(pki.chain(), [rec], [HOST], NOW).verified
    # A hash of an anchor that is not sent cannot be used.
    rec = make_record(2, 0, 1, pki.root)
    res = verify(pki.chain(), [rec], [HOST], NOW)
    assert (res.verified, res.reason) == (False, "dane-no-match")


def test_expired_leaf_dane_ee_ok_dane_ta_fails() -> None:
    pki = make_pki(not_before=NOW - dt.timedelta(days=60), not_after=NOW - dt.timedelta(days=1))
    # DANE-EE: no expiry check (RFC 7672 section 3.1.1).
    assert verify(pki.chain(), [make_record(3, 1, 1, pki.leaf)], [HOST], NOW).verified
    res = verify(pki.chain(), [make_record(2, 1, 1, pki.inter)], [HOST], NOW)
    assert not res.verified
    assert res.result_type == "certificate-expired"


def test_wrong_name_dane_ta_vs_ee() -> None:
    pki = make_pki(host="other.example.org")
    assert verify(pki.chain(), [make_record(3, 1, 1, pki.leaf)], [HOST], NOW).verified
    res = verify(pki.chain(), [make_record(2, 0, 1, pki.inter)], [HOST], NOW)
    assert (res.verified, res.result_type) == (False, "certificate-host-mismatch")
    # Any of the allowed names will do (RFC 7672 section 3.2.2).
    assert verify(pki.chain(), [make_record(2, 0, 1, pki.inter)], [HOST, "other.example.org"], NOW).verified


def test_dane_ta_wildcard_name() -> None:
    pki = make_pki(host="*.example.org")
    rec = make_record(2, 1, 1, pki.inter)
    assert verify(pki.chain(), [rec], [HOST], NOW).verified
    assert not verify(pki.chain(), [rec], ["a.b.example.org"], NOW).verified
    assert not verify(pki.chain(), [rec], ["example.org"], NOW).verified


def test_dane_ta_broken_chain() -> None:
    pki = make_pki()
    other = make_pki()
    # The leaf is from another PKI, with the same intermediate name: signatures fail.
    chain = [der(other.leaf), der(pki.inter), der(pki.root)]
    res = verify(chain, [make_record(2, 1, 1, pki.root)], [HOST], NOW)
    assert (res.verified, res.result_type, res.reason) == (False, "validation-failure", "dane-ta-no-chain")


def test_dane_ta_intermediate_must_be_ca() -> None:
    rk = ec.generate_private_key(ec.SECP256R1())
    root = cert("r", rk, name("r"), rk, ca=True)
    nk = ec.generate_private_key(ec.SECP256R1())
    notca = cert("notca", nk, root.subject, rk, ca=False)
    lk = ec.generate_private_key(ec.SECP256R1())
    leaf = cert(HOST, lk, notca.subject, nk, san=[HOST])
    res = verify([der(leaf), der(notca), der(root)], [make_record(2, 1, 1, root)], [HOST], NOW)
    assert not res.verified and res.reason == "dane-ta-no-chain"


def test_leaf_as_trust_anchor() -> None:
    pki = make_pki()
    assert verify(pki.chain(), [make_record(2, 1, 1, pki.leaf)], [HOST], NOW).verified
    assert not verify(pki.chain(), [make_record(2, 1, 1, pki.leaf)], ["x.example"], NOW).verified


def test_pkix_usages_unusable_for_smtp() -> None:
    pki = make_pki()
    recs = [make_record(0, 1, 1, pki.root), make_record(1, 1, 1, pki.leaf)]
    res = verify(pki.chain(), recs, [HOST], NOW)
    assert (res.verified, res.result_type) == (False, "tlsa-invalid")
    assert dane.usable_records(recs) == []
    # With PKIX usages allowed and the root as the trust store, PKIX-EE does not
    # verify these certificates: cryptography's web PKI profile wants more extensions.
    res = verify(pki.chain(), recs, [HOST], NOW, usages={0, 1}, pkix_roots=[pki.root])
    assert not res.verified


def test_first_matching_record_wins_and_bad_records_skipped() -> None:
    pki = make_pki()
    bad = TLSA(3, 1, 1, b"\x00" * 31)  # wrong length: unusable
    unknown = TLSA(3, 7, 1, b"\x00" * 32)
    good = make_record(3, 1, 2, pki.leaf)
    res = verify(pki.chain(), [bad, unknown, good], [HOST], NOW)
    assert res.verified and res.record == good
    assert "expected 32" in dane.unusable_reason(bad)


def test_no_chain_and_garbage() -> None:
    pki = make_pki()
    rec = make_record(3, 1, 1, pki.leaf)
    assert verify([], [rec], [HOST], NOW).reason == "no-server-certificate"
    assert verify([b"junk"], [rec], [HOST], NOW).reason == "bad-server-certificate"
    # Unparsable extra certificates are skipped.
    assert verify([der(pki.leaf), b"junk"], [rec], [HOST], NOW).verified


@settings(max_examples=60, deadline=None)
@given(
    chain=st.lists(st.binary(max_size=64), max_size=3),
    usage=st.integers(0, 255),
    selector=st.integers(0, 255),
    mtype=st.integers(0, 255),
    data=st.binary(max_size=70),
)
def test_verify_never_crashes(chain: list[bytes], usage: int, selector: int, mtype: int, data: bytes) -> None:
    res = verify(chain, [TLSA(usage, selector, mtype, data)], [HOST], NOW)
    assert not res.verified and res.result_type in ("tlsa-invalid", "validation-failure")


def test_make_record_pem_inputs(tmp_path: Path) -> None:
    pki = make_pki()
    spki = pki.leaf_key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    assert raw_spki(pki.leaf) == spki
    cert_pem = pki.leaf.public_bytes(serialization.Encoding.PEM)
    pub_pem = pki.leaf_key.public_key().public_bytes(
        serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    priv_pem = pki.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    ec_pem = pki.leaf_key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.TraditionalOpenSSL, serialization.NoEncryption()
    )
    want = make_record(3, 1, 1, pki.leaf)
    for pem in (cert_pem, pub_pem, priv_pem, ec_pem, priv_pem + cert_pem):
        assert make_record(3, 1, 1, pem) == want
    assert make_record(3, 0, 0, cert_pem).data == der(pki.leaf)
    assert make_record(3, 0, 0, der(pki.leaf)).data == der(pki.leaf)
    # A key first, then a certificate: for selector cert the key is skipped.
    assert make_record(3, 0, 1, priv_pem + cert_pem) == make_record(3, 0, 1, pki.leaf)
    with pytest.raises(dane.MakeRecordError, match="no certificate found"):
        make_record(3, 0, 1, pub_pem)
    with pytest.raises(dane.MakeRecordError, match="no certificate or public or private key"):
        make_record(3, 1, 1, b"-----BEGIN FOO-----\nAAAA\n-----END FOO-----\n")
    with pytest.raises(dane.MakeRecordError, match="selector"):
        make_record(3, 2, 1, cert_pem)
    with pytest.raises(dane.MakeRecordError, match="matching type"):
        make_record(3, 1, 3, cert_pem)
    assert dane.record_text(want) == f"3 1 1 {want.data.hex()}"
    assert dane.record_description(want).startswith("dane-ee spki sha2-256 ")


# TLSA lookups.


def _resolver(records: list[TLSA], **kw: object) -> MockResolver:
    return MockResolver(tlsa={"_25._tcp." + HOST: records}, **kw)  # type: ignore[arg-type]


async def test_lookup_tlsa_statuses() -> None:
    pki = make_pki()
    good = make_record(3, 1, 1, pki.leaf)
    r = _resolver([good, TLSA(1, 1, 1, good.data)], all_authentic=True)
    lk = await dane.lookup_tlsa(r, HOST)
    assert lk.status == TLSAStatus.USABLE and lk.records == (good,) and len(lk.all_records) == 2
    assert lk.dane_required and lk.verify and lk.name == "_25._tcp." + HOST

    lk = await dane.lookup_tlsa(_resolver([TLSA(0, 1, 1, good.data), TLSA(3, 1, 1, b"x")], all_authentic=True), HOST)
    assert lk.status == TLSAStatus.UNUSABLE and lk.dane_required and not lk.verify
    assert lk.result_type == "tlsa-invalid" and "pkix" in lk.error

    lk = await dane.lookup_tlsa(_resolver([good]), HOST)
    assert lk.status == TLSAStatus.INSECURE and not lk.dane_required

    lk = await dane.lookup_tlsa(MockResolver(all_authentic=True), HOST)
    assert lk.status == TLSAStatus.NONE and not lk.dane_required

    lk = await dane.lookup_tlsa(MockResolver(), HOST)
    assert lk.status == TLSAStatus.INSECURE

    r = _resolver([good], all_authentic=True)
    r.fail["_25._tcp." + HOST] = "temporary"
    lk = await dane.lookup_tlsa(r, HOST)
    assert lk.status == TLSAStatus.ERROR and lk.dane_required and lk.result_type == "dnssec-invalid"
    assert "SERVFAIL" in lk.error


async def test_gather_tlsa_expanded_host() -> None:
    pki = make_pki()
    good = make_record(3, 1, 1, pki.leaf)
    r = MockResolver(tlsa={"_25._tcp.orig.example": [good]}, all_authentic=True)
    lk, base = await dane.gather_tlsa(r, "orig.example", "expanded.example", True)
    assert (lk.status, base) == (TLSAStatus.USABLE, "orig.example")
    r.tlsa["_25._tcp.expanded.example"] = [good]
    lk, base = await dane.gather_tlsa(r, "orig.example", "expanded.example", True)
    assert (lk.status, base) == (TLSAStatus.USABLE, "expanded.example")
    # Not followed securely: only the original name.
    lk, base = await dane.gather_tlsa(r, "orig.example", "expanded.example", False)
    assert base == "orig.example"


def test_tlsa_hostnames() -> None:
    kw = {
        "orig_next_hop": "example.org",
        "expanded_next_hop": "example.net",
        "orig_tlsa_base": "mx.example.org",
        "expanded_tlsa_base": "mx.example.net",
    }
    assert dane.tlsa_hostnames(
        have_mx=True, expanded_next_hop_authentic=True, expanded_tlsa_base_authentic=True, **kw
    ) == ["mx.example.net", "mx.example.org", "example.org", "example.net"]
    assert dane.tlsa_hostnames(
        have_mx=False, expanded_next_hop_authentic=True, expanded_tlsa_base_authentic=False, **kw
    ) == ["mx.example.org"]
    assert dane.tlsa_hostnames(
        have_mx=True, expanded_next_hop_authentic=False, expanded_tlsa_base_authentic=True, **kw
    ) == ["example.org"]


async def test_peer_chain_der_over_tls() -> None:
    # The chain as sent by a real TLS server, fetched without verification.
    pki = make_pki(not_before=dt.datetime.now(dt.UTC) - dt.timedelta(days=1),
                   not_after=dt.datetime.now(dt.UTC) + dt.timedelta(days=1))
    with tempfile.TemporaryDirectory() as d:
        certfile = Path(d) / "chain.pem"
        keyfile = Path(d) / "key.pem"
        certfile.write_bytes(
            pki.leaf.public_bytes(serialization.Encoding.PEM) + pki.inter.public_bytes(serialization.Encoding.PEM)
        )
        keyfile.write_bytes(
            pki.leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        sctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
        sctx.load_cert_chain(certfile, keyfile)

    async def handle(reader: asyncio.StreamReader, writer: asyncio.StreamWriter) -> None:
        writer.write(b"hi\n")
        await writer.drain()
        writer.close()

    server = await asyncio.start_server(handle, "127.0.0.1", 0, ssl=sctx)
    port = server.sockets[0].getsockname()[1]
    cctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    cctx.check_hostname = False
    cctx.verify_mode = ssl.CERT_NONE
    reader, writer = await asyncio.open_connection("127.0.0.1", port, ssl=cctx, server_hostname=HOST)
    sslobj = writer.get_extra_info("ssl_object")
    chain = peer_chain_der(sslobj)
    assert chain == pki.chain()
    assert verify(chain, [make_record(3, 1, 1, pki.leaf)], [HOST]).verified
    await reader.read()
    writer.close()
    server.close()
    await server.wait_closed()


def test_pkix_usages_when_allowed() -> None:
    # For dane dial: PKIX-TA/PKIX-EE need a chain trusted by the PKIX roots too (RFC 6698 section 2.1.1).
    from cryptography import x509 as cx509
    from cryptography.hazmat.primitives import hashes
    from cryptography.x509.oid import ExtendedKeyUsageOID

    rk = ec.generate_private_key(ec.SECP256R1())
    root = (
        cx509.CertificateBuilder()
        .subject_name(name("pkix root"))
        .issuer_name(name("pkix root"))
        .public_key(rk.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=30))
        .add_extension(cx509.BasicConstraints(ca=True, path_length=None), critical=True)
        .add_extension(cx509.KeyUsage(False, False, False, False, False, True, True, False, False), critical=True)
        .add_extension(cx509.SubjectKeyIdentifier.from_public_key(rk.public_key()), critical=False)
        .sign(rk, hashes.SHA256())
    )
    lk = ec.generate_private_key(ec.SECP256R1())
    leaf = (
        cx509.CertificateBuilder()
        .subject_name(name(HOST))
        .issuer_name(root.subject)
        .public_key(lk.public_key())
        .serial_number(cx509.random_serial_number())
        .not_valid_before(NOW - dt.timedelta(days=1))
        .not_valid_after(NOW + dt.timedelta(days=10))
        .add_extension(cx509.SubjectAlternativeName([cx509.DNSName(HOST)]), critical=False)
        .add_extension(cx509.ExtendedKeyUsage([ExtendedKeyUsageOID.SERVER_AUTH]), critical=False)
        .add_extension(cx509.AuthorityKeyIdentifier.from_issuer_public_key(rk.public_key()), critical=False)
        .sign(rk, hashes.SHA256())
    )
    chain = [der(leaf)]
    all_usages = {0, 1, 2, 3}
    pkix_ee = make_record(1, 1, 1, leaf)
    pkix_ta = make_record(0, 0, 1, root)
    for rec in (pkix_ee, pkix_ta):
        res = verify(chain, [rec], [HOST], NOW, usages=all_usages, pkix_roots=[root])
        assert res.verified and res.record == rec
        # Not trusted by the roots given: no.
        other = make_pki().root
        assert not verify(chain, [rec], [HOST], NOW, usages=all_usages, pkix_roots=[other]).verified
        # Wrong name: no.
        assert not verify(chain, [rec], ["x.example"], NOW, usages=all_usages, pkix_roots=[root]).verified
        # Without roots, or for SMTP: unusable.
        assert not verify(chain, [rec], [HOST], NOW, usages=all_usages).verified
        assert verify(chain, [rec], [HOST], NOW).result_type == "tlsa-invalid"
