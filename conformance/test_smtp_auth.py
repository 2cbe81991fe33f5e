"""SMTP AUTH with every mechanism, rate-limit replies, DKIM checked by dkimpy, and bad input on the wire."""

from __future__ import annotations

import base64
import smtplib
import socket

import dkim as dkimpy
import pytest
from serve_harness import MoxServe
from test_smtp_delivery import set_password, stored

from mox.config.load import load_config
from mox.dkim import txt_record
from mox.scram import ScramClient

PASSWORD = "moxmoxmox"
MSG = b"From: mox@localhost\r\nTo: mox@localhost\r\nSubject: t\r\n\r\nbody\r\n"


def submit(m: MoxServe) -> smtplib.SMTP:
    s = smtplib.SMTP("127.0.0.1", m.ports.submission, timeout=20)
    s.ehlo("client")
    return s


@pytest.mark.parametrize("mech", ["PLAIN", "LOGIN", "CRAM-MD5"])
def test_smtplib_mechanisms(mox_serve: MoxServe, mech: str) -> None:
    set_password(mox_serve, PASSWORD)
    with submit(mox_serve) as s:
        assert mech in s.esmtp_features["auth"].split()
        s.user, s.password = "mox@localhost", PASSWORD
        code, _ = s.auth(mech, getattr(s, "auth_" + mech.lower().replace("-", "_")))
        assert code == 235
        assert s.sendmail("mox@localhost", ["mox@localhost"], MSG) == {}


@pytest.mark.parametrize("mech", ["SCRAM-SHA-256", "SCRAM-SHA-1"])
def test_scram(mox_serve: MoxServe, mech: str) -> None:
    set_password(mox_serve, PASSWORD)
    with submit(mox_serve) as s:
        client = ScramClient(mech, "mox@localhost", PASSWORD)
        code, resp = s.docmd("AUTH", f"{mech} {base64.b64encode(client.client_first()).decode()}")
        assert code == 334
        code, resp = s.docmd(base64.b64encode(client.client_final(base64.b64decode(resp))).decode())
        assert code == 334
        client.check_server_final(base64.b64decode(resp))
        code, _ = s.docmd("")
        assert code == 235
        assert s.sendmail("mox@localhost", ["mox@localhost"], MSG) == {}
    with submit(mox_serve) as s:
        client = ScramClient(mech, "mox@localhost", "wrong password")
        code, resp = s.docmd("AUTH", f"{mech} {base64.b64encode(client.client_first()).decode()}")
        code, resp = s.docmd(base64.b64encode(client.client_final(base64.b64decode(resp))).decode())
        assert code in (334, 535)


def test_daily_limit_reply_names_the_setting(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, PASSWORD)
    domains = m.config.parent / "domains.conf"
    domains.write_text(domains.read_text().replace("\tmox:\n", "\tmox:\n\t\tMaxOutgoingMessagesPerDay: 2\n", 1))
    m.wait_log('m="domains.conf reloaded"')
    with submit(m) as s:
        s.login("mox@localhost", PASSWORD)
        assert s.sendmail("mox@localhost", ["mox@localhost"], MSG) == {}
        assert s.sendmail("mox@localhost", ["mox@localhost"], MSG) == {}
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("mox@localhost", ["mox@localhost"], MSG)
        assert e.value.smtp_code == 451 and b"MaxOutgoingMessagesPerDay" in e.value.smtp_error


def test_dkim_signature_verified_by_dkimpy(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, PASSWORD)
    assert m.mox("config", "domain", "add", "example.org", "mox").returncode == 0
    assert m.mox("config", "address", "add", "mox@example.org", "mox").returncode == 0
    with submit(m) as s:
        s.login("mox@localhost", PASSWORD)
        assert s.sendmail("mox@example.org", ["mox@localhost"], MSG.replace(b"From: mox@localhost", b"From: mox@example.org")) == {}
    m.stop()
    signed = stored(m)[0]
    signed = signed[signed.index(b"DKIM-Signature:") :]
    dk = load_config(m.config).dynamic.Domains["example.org"].DKIM
    sel = dk.Sign[0]
    record = txt_record(dk.Selectors[sel].Key.public_key()).encode()

    def dnsfunc(name: bytes, timeout: int = 5) -> bytes:
        assert name.rstrip(b".") == f"{sel}._domainkey.example.org".encode()
        return record

    assert dkimpy.verify(signed, dnsfunc=dnsfunc)


def test_bad_input_on_the_wire_gets_replies(mox_serve: MoxServe) -> None:
    m = mox_serve
    with socket.create_connection(("127.0.0.1", m.ports.smtp), timeout=10) as s:
        f = s.makefile("rb")
        assert f.readline().startswith(b"220 ")
        s.sendall(b"EHLO client.example.net\r\n")
        while not f.readline().startswith(b"250 "):
            pass
        s.sendall(b"NOOP " + b"x" * 3000 + b"\r\n")
        assert f.readline()[:1] == b"5"
        s2 = socket.create_connection(("127.0.0.1", m.ports.smtp), timeout=10)
        g = s2.makefile("rb")
        g.readline()
        s2.sendall(b"EHLO c.example\r\nMAIL FROM:<a@example.net>\r\nRCPT TO:<mox@localhost>\r\nDATA\r\n")
        while not g.readline().startswith(b"354"):
            pass
        s2.sendall(b"Subject: x\r\n\r\nbare cr\rhere\r\n.\r\n")
        assert g.readline()[:1] == b"5"
        s2.sendall(b"QUIT\r\n")
        assert g.readline().startswith(b"221")
        s2.close()
