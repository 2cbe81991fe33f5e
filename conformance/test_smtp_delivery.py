"""SMTP against a real `mox serve`: incoming delivery with checks, no open relay, authenticated submission with DKIM."""

from __future__ import annotations

import asyncio
import smtplib
import ssl
from pathlib import Path

import pytest
from serve_harness import MoxServe

from mox.config.load import load_config
from mox.dkim import txt_record
from mox.dkim import verify as dkim_verify
from mox.dns import MockResolver
from mox.store import account as account_mod
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets

MESSAGE = b"From: <sender@example.net>\r\nTo: <mox@localhost>\r\nSubject: hello\r\n\r\nHi there.\r\n"


def stored(m: MoxServe, mailbox: str = "Inbox") -> list[bytes]:
    async def run() -> list[bytes]:
        cfg = load_config(m.config)
        acc = await account_mod.open_account(cfg.data_dir, "mox")
        try:
            return [acc.read_message(x) for x in await acc.messages(mailbox)]
        finally:
            await acc.close()

    return asyncio.run(run())


def set_password(m: MoxServe, password: str) -> None:
    async def run() -> None:
        acc = await open_config_account(load_config(m.config), "mox")
        try:
            await acc.set_password_secrets(make_secrets(password, bcrypt_cost=4).to_json())
        finally:
            await acc.close()

    asyncio.run(run())


def test_incoming_delivery_checks_and_refusals(mox_serve: MoxServe) -> None:
    m = mox_serve
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, local_hostname="client.example.net", timeout=20) as s:
        code, text = s.ehlo()
        assert code == 250 and b"PIPELINING" in text and b"SMTPUTF8" in text and b"CHUNKING" in text
        refused = s.sendmail("sender@example.net", ["mox@localhost", "nobody@localhost"], MESSAGE)
        assert refused == {"nobody@localhost": (550, b"5.1.1 no such user")}
        with pytest.raises(smtplib.SMTPRecipientsRefused) as e:
            s.sendmail("sender@example.net", ["someone@elsewhere.example"], MESSAGE)
        assert e.value.recipients["someone@elsewhere.example"][0] == 550
        # Postmaster is always accepted, also in any case.
        assert s.sendmail("sender@example.net", ["PostMaster@localhost"], MESSAGE) == {}
    m.stop()
    msgs = stored(m)
    assert len(msgs) == 2
    head = msgs[0].split(b"\r\n\r\n", 1)[0].decode()
    assert head.startswith("Authentication-Results: localhost;")
    assert "iprev=pass" in head and "spf=none" in head and "dkim=none" in head and "dmarc=none" in head
    assert "Received-SPF: none" in head
    assert "Received: from client.example.net" in head
    assert msgs[0].endswith(MESSAGE)


def test_open_connection_sees_address_added_through_ctl(mox_serve: MoxServe) -> None:
    """An address added with ``mox config address add`` while an SMTP connection is open is accepted on
    that connection at its next RCPT TO: sessions use the server's current configuration, as upstream."""
    m = mox_serve
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, local_hostname="client.example.net", timeout=20) as s:
        s.ehlo()
        assert s.sendmail("sender@example.net", ["mox@localhost", "later@localhost"], MESSAGE) == {
            "later@localhost": (550, b"5.1.1 no such user")
        }
        r = m.mox("config", "address", "add", "later@localhost", "mox")
        assert r.returncode == 0, r.stderr
        assert s.sendmail("sender@example.net", ["later@localhost"], MESSAGE) == {}
    m.stop()
    assert len(stored(m)) == 2


def test_submission_auth_dkim_and_from_check(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    # A real domain (localhost is a public suffix, DKIM verifiers refuse it): new RSA DKIM keys.
    assert m.mox("config", "domain", "add", "example.org", "mox").returncode == 0
    assert m.mox("config", "address", "add", "mox@example.org", "mox").returncode == 0
    msg = b"From: mox@example.org\r\nTo: mox@localhost\r\nSubject: signed\r\n\r\nbody\r\n"
    with smtplib.SMTP("127.0.0.1", m.ports.submission, timeout=20) as s:
        s.ehlo("client")
        with pytest.raises(smtplib.SMTPAuthenticationError):
            s.login("mox@localhost", "wrong password")
        s.login("mox@localhost", "moxmoxmox")
        assert s.sendmail("mox@localhost", ["mox@localhost"], msg) == {}
        with pytest.raises(smtplib.SMTPDataError) as e:
            s.sendmail("mox@localhost", ["mox@localhost"], msg.replace(b"From: mox@example.org", b"From: other@example.org"))
        assert e.value.smtp_code == 550 and b"From address not allowed" in e.value.smtp_error
        # Other domains go through the outgoing queue: remote.example does not exist (the
        # test DNS knows no names), so the sender gets a failure DSN in its Inbox.
        assert s.sendmail("mox@localhost", ["x@remote.example"], msg) == {}
        m.wait_log("delivered dsn to local account", timeout=20)
    # Implicit TLS (submissions) with SCRAM via AUTH is not in smtplib; PLAIN over TLS.
    ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
    with smtplib.SMTP_SSL("127.0.0.1", m.ports.submissions, context=ctx, timeout=20) as s:
        s.ehlo("client")
        s.login("mox@localhost", "moxmoxmox")
        assert s.sendmail("mox@localhost", ["mox@localhost"], msg) == {}
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, timeout=20) as s:
        s.starttls(context=ctx)
        s.ehlo("client.example.net")
        assert s.sendmail("a@example.net", ["mox@localhost"], MESSAGE) == {}
    m.stop()
    msgs = stored(m)
    assert len(msgs) == 4
    signed = msgs[0]
    assert b"DKIM-Signature:" in signed and b"Message-ID:" in signed and b"Date:" in signed
    assert b"auth=pass smtp.mailfrom=mox@localhost" in signed  # the login address
    dsn = msgs[1]
    assert b"multipart/report" in dsn and b"x@remote.example" in dsn and b"Action: failed" in dsn
    assert b"with ESMTPS" in msgs[3]  # after STARTTLS

    # The signature verifies with the domain's public key.
    cfg = load_config(m.config)
    dkimconf = cfg.dynamic.Domains["example.org"].DKIM
    sel = dkimconf.Sign[0]
    key = dkimconf.Selectors[sel].Key
    resolver = MockResolver(txt={f"{sel}._domainkey.example.org": [txt_record(key.public_key())]})
    body = signed.split(b"\r\n", 0)[0]
    start = body.index(b"DKIM-Signature:")
    results = asyncio.run(dkim_verify(body[start:], resolver))
    assert [str(r.status) for r in results] == ["pass"], [r.error for r in results]


def test_message_over_size_limit_refused_after_data(tmp_path: Path) -> None:
    m = MoxServe(tmp_path)
    text = m.config.read_text().replace("\n\t\tTLS:", "\n\t\tSMTPMaxMessageSize: 2000\n\t\tTLS:", 1)
    m.config.write_text(text)
    m.start()
    try:
        with smtplib.SMTP("127.0.0.1", m.ports.smtp, timeout=20) as s:
            s.ehlo("client.example.net")
            big = MESSAGE + b"x" * 5000 + b"\r\n"
            # With SIZE announced, refused at MAIL FROM (RFC 1870).
            with pytest.raises(smtplib.SMTPSenderRefused) as e1:
                s.sendmail("a@example.net", ["mox@localhost"], big)
            assert e1.value.smtp_code == 552
            # Without SIZE: the data is read to the end, then refused; the connection stays usable.
            s.rset()
            assert s.mail("a@example.net")[0] == 250
            assert s.rcpt("mox@localhost")[0] == 250
            code, text = s.data(big)
            assert code == 552 and b"too large" in text
            assert s.noop()[0] == 250
    finally:
        m.stop()


def test_dmarc_policy_and_evaluations(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from mox.dmarcdb import EvaluationDB
    from mox.dns.testserver import DNSTestServer

    with DNSTestServer() as dns:
        dns.add_txt("example.net", "v=spf1 ip4:127.0.0.0/8 -all")
        dns.add_txt("_dmarc.example.net", "v=DMARC1; p=reject; rua=mailto:dmarc@example.net")
        dns.add_txt("bad.example", "v=spf1 -all")
        dns.add_txt("_dmarc.bad.example", "v=DMARC1; p=reject; rua=mailto:dmarc@bad.example")
        monkeypatch.setenv("MOX_DNS", dns.address)
        m = MoxServe(tmp_path)
        m.start()
        try:
            with smtplib.SMTP("127.0.0.1", m.ports.smtp, timeout=20) as s:
                s.ehlo("client.example.net")
                assert s.sendmail("a@example.net", ["mox@localhost"], MESSAGE.replace(b"sender@example.net", b"a@example.net")) == {}
                with pytest.raises(smtplib.SMTPDataError) as e:
                    s.sendmail("a@bad.example", ["mox@localhost"], MESSAGE.replace(b"sender@example.net", b"a@bad.example"))
                assert e.value.smtp_code == 550 and b"dmarc" in e.value.smtp_error
        finally:
            m.stop()
    head = stored(m)[0].split(b"\r\n\r\n", 1)[0]
    assert b"spf=pass" in head and b"dmarc=pass" in head and b"header.from=example.net" in head

    async def evaluations() -> list[tuple[str, str, bool]]:
        db = await EvaluationDB.open(load_config(m.config).data_dir / "dmarceval.db")
        try:
            return [(e.policy_domain, e.disposition, e.aligned_spf_pass) for e in await db.evaluations()]
        finally:
            await db.close()

    assert asyncio.run(evaluations()) == [("example.net", "none", True), ("bad.example", "reject", False)]
