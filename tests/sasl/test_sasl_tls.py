"""Channel binding data from real TLS connections (in memory): tls-unique on TLS 1.2, none on TLS 1.3."""

from __future__ import annotations

import ssl
from pathlib import Path

from saslhelpers import ACCOUNT, PASSWORD, USER, credentials

from mox.config.keys import make_self_signed
from mox.sasl import Challenge, NeedCredentials, Success, channel_bindings, mechanisms_offered, new_server
from mox.scram import ScramClient


def handshake(tmp_path: Path, version: ssl.TLSVersion) -> tuple[ssl.SSLObject, ssl.SSLObject]:
    cert, key = make_self_signed(["localhost"])
    (tmp_path / "cert.pem").write_bytes(cert)
    (tmp_path / "key.pem").write_bytes(key)
    server_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server_ctx.load_cert_chain(tmp_path / "cert.pem", tmp_path / "key.pem")
    client_ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_CLIENT)
    client_ctx.check_hostname = False
    client_ctx.verify_mode = ssl.CERT_NONE
    for ctx in (server_ctx, client_ctx):
        ctx.minimum_version = ctx.maximum_version = version
    s_in, s_out, c_in, c_out = (ssl.MemoryBIO() for _ in range(4))
    server = server_ctx.wrap_bio(s_in, s_out, server_side=True)
    client = client_ctx.wrap_bio(c_in, c_out, server_hostname="localhost")
    done = {id(server): False, id(client): False}
    for _ in range(10):
        for obj in (client, server):
            if not done[id(obj)]:
                try:
                    obj.do_handshake()
                    done[id(obj)] = True
                except ssl.SSLWantReadError:
                    pass
        s_in.write(c_out.read())
        c_in.write(s_out.read())
        if all(done.values()):
            break
    assert all(done.values())
    return server, client


def test_tls12_tls_unique_binds_scram_plus(tmp_path: Path) -> None:
    server, client = handshake(tmp_path, ssl.TLSVersion.TLSv1_2)
    bindings = channel_bindings(server)
    client_binding = client.get_channel_binding("tls-unique")
    assert client_binding is not None and bindings == {"tls-unique": client_binding}
    assert mechanisms_offered(True, bool(bindings), False)[0] == "SCRAM-SHA-256-PLUS"

    scram = ScramClient("SCRAM-SHA-256-PLUS", USER, PASSWORD, channel_binding=("tls-unique", client_binding))
    mech = new_server("SCRAM-SHA-256-PLUS", channel_bindings=bindings)
    assert mech.step(scram.client_first()) == NeedCredentials(USER)
    step = mech.provide(credentials())
    assert isinstance(step, Challenge)
    step = mech.step(scram.client_final(step.data))
    assert isinstance(step, Challenge)
    scram.check_server_final(step.data)
    assert mech.step(b"") == Success(USER, ACCOUNT)


def test_tls13_has_no_binding(tmp_path: Path) -> None:
    server, _ = handshake(tmp_path, ssl.TLSVersion.TLSv1_3)
    assert channel_bindings(server) == {}
    assert "SCRAM-SHA-256-PLUS" not in mechanisms_offered(True, False, False)
