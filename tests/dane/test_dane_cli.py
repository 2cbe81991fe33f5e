"""mox dane makerecord and mox dane dial."""

from __future__ import annotations

import contextlib
import datetime as dt
import io
import socket
import ssl
import sys
import tempfile
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest
from cryptography.hazmat.primitives import serialization
from danehelpers import make_pki

from mox import dns
from mox.cli.main import main
from mox.dane import make_record, record_text
from mox.dns import TLSA, MockResolver

HOST = "mx.example.org"


def test_makerecord(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    pki = make_pki()
    pem = tmp_path / "cert.pem"
    pem.write_bytes(pki.leaf.public_bytes(serialization.Encoding.PEM))
    want = record_text(make_record(3, 1, 1, pki.leaf))
    assert main(["dane", "makerecord", "dane-ee", "spki", "sha2-256", str(pem)]) == 0
    assert capsys.readouterr().out == want + "\n"
    assert main(["dane", "makerecord", "3", "1", "1", str(pem)]) == 0
    assert capsys.readouterr().out == want + "\n"
    assert main(["dane", "makerecord", "9", "0", "2", str(pem)]) == 0
    out = capsys.readouterr()
    assert out.out.startswith("9 0 2 ") and "unrecognized tlsa usage 9" in out.err
    assert main(["dane", "makerecord", "3", "2", "1", str(pem)]) == 2
    assert main(["dane", "makerecord", "3", "1", "1", str(tmp_path / "missing.pem")]) == 1
    assert "reading certificate" in capsys.readouterr().err
    key = tmp_path / "key.pem"
    key.write_bytes(
        pki.leaf_key.public_key().public_bytes(
            serialization.Encoding.PEM, serialization.PublicFormat.SubjectPublicKeyInfo
        )
    )
    assert main(["dane", "makerecord", "3", "1", "1", str(key)]) == 0
    assert capsys.readouterr().out == want + "\n"
    assert main(["dane", "makerecord", "3", "0", "1", str(key)]) == 1
    assert "no certificate found" in capsys.readouterr().err


@pytest.fixture
def tls_echo_server() -> Iterator[tuple[int, object]]:
    """A TLS server on 127.0.0.1 that greets, echoes one line and closes."""
    now = dt.datetime.now(dt.UTC)
    pki = make_pki(host=HOST, not_before=now - dt.timedelta(days=1), not_after=now + dt.timedelta(days=1))
    ctx = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    with tempfile.TemporaryDirectory() as d:
        cf, kf = Path(d) / "c.pem", Path(d) / "k.pem"
        cf.write_bytes(pki.leaf.public_bytes(serialization.Encoding.PEM))
        kf.write_bytes(
            pki.leaf_key.private_bytes(
                serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
            )
        )
        ctx.load_cert_chain(cf, kf)
    sock = socket.create_server(("127.0.0.1", 0))
    sock.settimeout(10)

    def serve() -> None:
        try:
            conn, _ = sock.accept()
        except OSError:
            return
        conn.settimeout(10)
        try:
            with ctx.wrap_socket(conn, server_side=True) as tls:
                tls.sendall(b"220 hello\r\n")
                buf = b""
                while not buf.endswith(b"\n"):
                    data = tls.recv(100)
                    if not data:
                        break
                    buf += data
                tls.sendall(b"echo " + buf)
        except OSError:
            pass

    t = threading.Thread(target=serve, daemon=True)
    t.start()
    yield sock.getsockname()[1], pki
    sock.close()
    t.join(5)


@contextlib.contextmanager
def _use_resolver(r: MockResolver) -> Iterator[None]:
    dns.set_default_resolver(r)
    try:
        yield
    finally:
        dns.set_default_resolver(None)


def test_dial_verified(
    tls_echo_server: tuple[int, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, pki = tls_echo_server
    rec = make_record(3, 1, 1, pki.leaf)  # type: ignore[attr-defined]
    r = MockResolver(a={HOST: ["127.0.0.1"]}, tlsa={f"_{port}._tcp.{HOST}": [rec]}, all_authentic=True)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"EHLO test\r\n")))
    with _use_resolver(r):
        code = main(["dane", "dial", f"{HOST}:{port}"])
    out = capsys.readouterr()
    assert code == 0, out.err
    assert "(connected, verified with dane-ee spki sha2-256" in out.err
    assert out.out == "220 hello\r\necho EHLO test\r\n"


def test_dial_failures(
    tls_echo_server: tuple[int, object], capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    port, _pki = tls_echo_server
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    name = f"_{port}._tcp.{HOST}"
    wrong = TLSA(3, 1, 1, b"\x01" * 32)
    cases = [
        (MockResolver(a={HOST: ["127.0.0.1"]}, tlsa={name: [wrong]}, all_authentic=True), [], "no match"),
        (MockResolver(a={HOST: ["127.0.0.1"]}, tlsa={name: [wrong]}), [], "insecure"),
        (MockResolver(a={HOST: ["127.0.0.1"]}, all_authentic=True), [], "no tlsa records"),
        (
            MockResolver(a={HOST: ["127.0.0.1"]}, tlsa={name: [wrong]}, all_authentic=True),
            ["-usages", "pkix-ee"],
            "no usable tlsa records",
        ),
    ]
    # The first case connects (and is refused by DANE); the server serves one connection.
    for r, flags, message in cases:
        with _use_resolver(r):
            code = main(["dane", "dial", *flags, f"{HOST}:{port}"])
        assert code == 1
        assert message in capsys.readouterr().err
    assert main(["dane", "dial", "-usages", "bogus", f"{HOST}:{port}"]) == 2
    assert main(["dane", "dial", "no-port"]) == 2
