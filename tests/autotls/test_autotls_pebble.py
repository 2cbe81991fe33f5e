"""Certificates from a real ACME CA (pebble) with http-01 and tls-alpn-01 validation."""

from __future__ import annotations

import asyncio
import datetime
import ssl
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

from aiohttp import web
from cryptography import x509
from cryptography.hazmat.primitives import serialization
from pebblehelpers import free_port, run_pebble

from mox.autotls import certs
from mox.autotls.manager import Manager
from mox.config import model, sconf
from mox.dns.testserver import DNSTestServer

HOST = "mail.mox1.example"


@asynccontextmanager
async def _http01_server(m: Manager, port: int) -> AsyncIterator[None]:
    async def handle(request: web.BaseRequest) -> web.Response:
        prefix = "/.well-known/acme-challenge/"
        v = m.http01_response(request.path[len(prefix) :]) if request.path.startswith(prefix) else None
        return web.Response(text=v) if v else web.Response(status=404)

    srv = web.Server(handle)
    s = await asyncio.get_running_loop().create_server(srv, "127.0.0.1", port)
    try:
        yield
    finally:
        s.close()
        await srv.shutdown()


async def _tls_handshake(port: int, host: str, root: bytes) -> x509.Certificate:
    ctx = ssl.create_default_context(cadata=root.decode())
    _r, w = await asyncio.open_connection("127.0.0.1", port, ssl=ctx, server_hostname=host)
    der = w.get_extra_info("ssl_object").getpeercert(binary_form=True)
    w.close()
    return x509.load_der_x509_certificate(der)


def _manager(tmp_path: Path, url: str, ca: Path, types: tuple[str, ...], **kw: object) -> Manager:
    conf = model.ACME(DirectoryURL=url, ContactEmail="postmaster@mox1.example", RenewBefore=sconf.Duration(0))
    m = Manager("pebble", conf, tmp_path / "acme", ca_bundle=str(ca), challenge_types=types, **kw)  # type: ignore[arg-type]
    m.set_hosts({HOST}, HOST)
    return m


async def test_http01_then_serve_and_renewal_state(tmp_path: Path, dns_server: DNSTestServer) -> None:
    dns_server.add_ip(HOST, "127.0.0.1")
    http_port, tls_port = free_port(), free_port()
    with run_pebble(tmp_path, dns_server.address, http_port, tls_port) as pebble:
        m = _manager(tmp_path, pebble.directory_url, pebble.ca_file, ("http-01",))
        assert m.due() == [HOST]
        async with _http01_server(m, http_port):
            assert await m.ensure() == []
        assert m.due() == [] and m.has_certificate(HOST)
        root = pebble.root_pem()
        # The certificate is served for the host name and verifies against pebble's root.
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", 0, ssl=m.server_context())
        port = server.sockets[0].getsockname()[1]
        try:
            cert = await _tls_handshake(port, HOST, root)
        finally:
            server.close()
        san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        assert san.get_values_for_type(x509.DNSName) == [HOST]
        # Account key and cache files in upstream's layout.
        assert (tmp_path / "acme" / "pebble.key").exists()
        assert (tmp_path / "acme" / "keycerts" / "pebble" / HOST).exists()
        # A second manager (a restart) uses the cache and has nothing to do.
        m2 = _manager(tmp_path, pebble.directory_url, pebble.ca_file, ("http-01",))
        assert m2.due() == [] and m2.has_certificate(HOST)
        # Near expiry, the host is due again, and renewal replaces the certificate (same key).
        c = certs.read_cache(m.cache_dir, HOST, "ecdsa")
        assert c is not None
        later = _manager(tmp_path, pebble.directory_url, pebble.ca_file, ("http-01",), now=lambda: c.not_after - datetime.timedelta(days=1))
        assert later.due() == [HOST]
        old_pem = c.path.read_bytes()
        async with _http01_server(later, http_port):
            assert await later.ensure() == []
        new_pem = c.path.read_bytes()
        assert new_pem != old_pem
        assert x509.load_pem_x509_certificates(new_pem)[0].serial_number != x509.load_pem_x509_certificates(old_pem)[0].serial_number
        assert certs.key_pem(certs.load_key(new_pem)) == certs.key_pem(certs.load_key(old_pem))


async def test_tls_alpn01_with_host_keys(tmp_path: Path, dns_server: DNSTestServer) -> None:
    dns_server.add_ip(HOST, "127.0.0.1")
    http_port, tls_port = free_port(), free_port()
    ec_key, rsa_key = certs.generate_key("ecdsa"), certs.generate_key("rsa")
    with run_pebble(tmp_path, dns_server.address, http_port, tls_port) as pebble:
        m = _manager(tmp_path, pebble.directory_url, pebble.ca_file, ("tls-alpn-01",), host_keys=[ec_key, rsa_key])
        server = await asyncio.start_server(lambda r, w: w.close(), "127.0.0.1", tls_port, ssl=m.server_context())
        try:
            assert await m.ensure() == []
            cert = await _tls_handshake(tls_port, HOST, pebble.root_pem())
        finally:
            server.close()
        # The configured host keys were used (so DANE TLSA records made from them stay valid).
        ec_pub = ec_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        rsa_pub = rsa_key.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        served = cert.public_key().public_bytes(serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo)
        assert served in (ec_pub, rsa_pub)
        assert certs.read_cache(m.cache_dir, HOST, "rsa") is not None
        assert certs.read_cache(m.cache_dir, HOST, "ecdsa") is not None


async def test_validation_failure_is_reported(tmp_path: Path, dns_server: DNSTestServer) -> None:
    dns_server.add_ip(HOST, "127.0.0.1")
    http_port, tls_port = free_port(), free_port()
    with run_pebble(tmp_path, dns_server.address, http_port, tls_port) as pebble:
        m = _manager(tmp_path, pebble.directory_url, pebble.ca_file, ("http-01",))
        # Nothing answers on the http-01 port: the order fails, no certificate, the host stays due.
        assert await m.ensure() == [HOST]
        assert not m.has_certificate(HOST) and m.due() == [HOST]


def test_challenge_cert_has_acme_identifier() -> None:
    import hashlib

    pem, _key = certs.challenge_cert("mail.example.org", "token.thumb")
    cert = x509.load_pem_x509_certificate(pem)
    ext = cert.extensions.get_extension_for_oid(certs.ACME_IDENTIFIER_OID)
    assert ext.critical
    assert ext.value.value == b"\x04\x20" + hashlib.sha256(b"token.thumb").digest()
    san = cert.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    assert san.get_values_for_type(x509.DNSName) == ["mail.example.org"]
