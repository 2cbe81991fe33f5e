"""IMAP against a real `mox serve` with Python's imaplib: login, mailboxes, fetch, store, search, append,
copy/move, expunge, and IDLE seeing a message delivered by SMTP."""

from __future__ import annotations

import imaplib
import smtplib
import socket
import ssl

import pytest
from serve_harness import MoxServe
from test_smtp_delivery import set_password

MESSAGE = (
    b"From: Sender <sender@example.net>\r\n"
    b"To: <mox@localhost>\r\n"
    b"Subject: hello imap\r\n"
    b"MIME-Version: 1.0\r\n"
    b'Content-Type: multipart/alternative; boundary="x"\r\n'
    b"\r\n"
    b"--x\r\n"
    b"Content-Type: text/plain\r\n"
    b"\r\n"
    b"plain text body\r\n"
    b"--x\r\n"
    b"Content-Type: text/html\r\n"
    b"\r\n"
    b"<b>html</b>\r\n"
    b"--x--\r\n"
)


def _deliver(m: MoxServe) -> None:
    with smtplib.SMTP("127.0.0.1", m.ports.smtp, local_hostname="client.example.net", timeout=20) as s:
        assert s.sendmail("sender@example.net", ["mox@localhost"], MESSAGE) == {}


def test_imap_session_with_imaplib(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    _deliver(m)
    im = imaplib.IMAP4("127.0.0.1", m.ports.imap, timeout=20)
    try:
        assert "IDLE" in im.capabilities and "UIDPLUS" in im.capabilities and "MOVE" in im.capabilities
        with pytest.raises(imaplib.IMAP4.error, match="AUTHENTICATIONFAILED"):
            im.login("mox@localhost", "wrong")
        assert im.login("mox@localhost", "moxmoxmox")[0] == "OK"
        typ, data = im.list()
        assert typ == "OK" and any(b'"/" INBOX' in x for x in data if isinstance(x, bytes))
        assert any(b"\\Sent" in x for x in data if isinstance(x, bytes))
        typ, data = im.select("INBOX")
        assert typ == "OK" and data == [b"1"]
        typ, data = im.fetch("1", "(FLAGS ENVELOPE BODYSTRUCTURE)")
        head = data[0]
        assert isinstance(head, bytes) and b'"hello imap"' in head and b'"ALTERNATIVE"' in head and b"FLAGS ()" in head
        typ, data = im.fetch("1", "(BODY.PEEK[1] BODY.PEEK[HEADER.FIELDS (SUBJECT)])")
        assert data[0][1] == b"plain text body"  # type: ignore[index]
        assert data[1][1] == b"Subject: hello imap\r\n\r\n"  # type: ignore[index]
        typ, data = im.fetch("1", "BODY[TEXT]")
        assert b"\\Seen" in b"".join(x if isinstance(x, bytes) else x[0] for x in data)  # type: ignore[misc]
        assert im.store("1", "+FLAGS", "(\\Flagged)")[0] == "OK"
        assert im.search(None, "FLAGGED", "SUBJECT", "imap") == ("OK", [b"1"])
        assert im.search(None, "UNSEEN") == ("OK", [b""])
        typ, data = im.append("INBOX", "(\\Draft)", None, b"Subject: appended\r\n\r\nx\r\n")
        assert typ == "OK" and b"APPENDUID" in data[0]
        assert im.create("Archive2")[0] == "OK"
        assert im.uid("COPY", "1", "Archive2")[0] == "OK"
        copyuid = im.response("COPYUID")[1][0]
        assert isinstance(copyuid, bytes) and copyuid.endswith(b" 1 1")
        typ, data = im.uid("MOVE", "2", "Archive2")
        assert typ == "OK"
        assert im.status("Archive2", "(MESSAGES)")[1] == [b"Archive2 (MESSAGES 2)"]
        im.store("1", "+FLAGS", "(\\Deleted)")
        typ, data = im.expunge()
        assert typ == "OK" and data == [b"2", b"1"]  # the MOVE expunged 2 (kept by imaplib), then 1
        assert im.select("INBOX")[1] == [b"0"]

        # IDLE: a message delivered by SMTP shows up as EXISTS.
        tag = im._new_tag()
        im.send(tag + b" IDLE\r\n")
        assert im.readline().startswith(b"+ ")
        _deliver(m)
        assert im.readline() == b"* 1 EXISTS\r\n"
        im.send(b"DONE\r\n")
        assert im.readline() == tag + b" OK idle done\r\n"
        assert im.logout()[0] == "BYE"
    finally:
        try:
            im.shutdown()
        except OSError:
            pass


def test_open_connection_logs_in_to_account_added_later(mox_serve: MoxServe) -> None:
    """A connection opened before ``mox config account add`` logs in to the new account: sessions use
    the server's current configuration."""
    m = mox_serve
    im = imaplib.IMAP4("127.0.0.1", m.ports.imap)
    try:
        im.starttls(ssl._create_unverified_context())
        with pytest.raises(imaplib.IMAP4.error):
            im.login("newer@localhost", "Newer-passw0rd-here")
        assert m.mox("config", "account", "add", "newer", "newer@localhost").returncode == 0
        r = m.mox("setaccountpassword", "newer", input="Newer-passw0rd-here\n")
        assert r.returncode == 0, r.stderr
        typ, _ = im.login("newer@localhost", "Newer-passw0rd-here")
        assert typ == "OK"
        assert im.select("INBOX")[0] == "OK"
    finally:
        im.logout()


def test_imaps_and_starttls_greetings(mox_serve: MoxServe) -> None:
    m = mox_serve
    ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as s:
        assert s.recv(200).startswith(b"* OK [CAPABILITY IMAP4rev2 IMAP4rev1 ")
    im = imaplib.IMAP4("127.0.0.1", m.ports.imap, timeout=20)
    try:
        assert "STARTTLS" in im.capabilities
        assert im.starttls(ssl_context=ctx)[0] == "OK"
        assert "STARTTLS" not in im.capabilities and "AUTH=PLAIN" in im.capabilities
    finally:
        im.shutdown()
