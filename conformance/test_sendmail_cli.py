"""``mox sendmail`` against a real ``mox serve``: submission with AUTH, -t, TLS, failures saved; ``mox config describe-sendmail``."""

from __future__ import annotations

import asyncio
import os
import ssl
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from serve_harness import MoxServe

from mox.cli.sendmail import SendmailArgs, SubmitConfig, compose_message, parse_sendmail_args, submit
from mox.config import sconf
from mox.config.load import load_config
from mox.store import account as account_mod
from mox.store.deliver import open_config_account
from mox.store.password import make_secrets

PASSWORD = "moxmoxmox"


def _stored(m: MoxServe) -> list[bytes]:
    async def run() -> list[bytes]:
        acc = await account_mod.open_account(load_config(m.config).data_dir, "mox")
        try:
            return [acc.read_message(x) for x in await acc.messages("Inbox")]
        finally:
            await acc.close()

    return asyncio.run(run())


def _set_password(m: MoxServe) -> None:
    async def run() -> None:
        acc = await open_config_account(load_config(m.config), "mox")
        try:
            await acc.set_password_secrets(make_secrets(PASSWORD, bcrypt_cost=4).to_json())
        finally:
            await acc.close()

    asyncio.run(run())


def _write_conf(path: Path, m: MoxServe, **overrides: str | int | bool) -> Path:
    conf = SubmitConfig(
        LocalHostname="client.example",
        Host="localhost",
        Port=m.ports.submission,
        TLS=False,
        STARTTLS=False,
        Username="mox@localhost",
        Password=PASSWORD,
        AuthMethod="",
        From="mox@localhost",
        DefaultDestination="mox@localhost",
    )
    for k, v in overrides.items():
        setattr(conf, k, v)
    path.write_text(sconf.write(conf, docs=False))
    return path


def _sendmail(
    conf: Path, home: Path, *args: str, input: bytes, env: dict[str, str] | None = None
) -> subprocess.CompletedProcess[bytes]:
    e = dict(os.environ, MOXSUBMITCONF=str(conf), HOME=str(home), **(env or {}))
    return subprocess.run(
        [sys.executable, "-m", "mox", "sendmail", *args], input=input, capture_output=True, env=e, timeout=60
    )


@pytest.fixture(scope="module")
def served(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MoxServe]:
    """One server for the module: starting one per test would dominate the time."""
    m = MoxServe(tmp_path_factory.mktemp("sendmail"))
    m.start()
    _set_password(m)
    try:
        yield m
    finally:
        m.stop()


def _head(msg: bytes) -> str:
    return msg.split(b"\r\n\r\n", 1)[0].decode()


def test_submit_with_auth_adds_headers_and_crlf(served: MoxServe, tmp_path: Path) -> None:
    m = served
    conf = _write_conf(tmp_path / "moxsubmit.conf", m)
    before = len(_stored(m))
    # Bare LF line endings, as cron writes; From is replaced, -F names it; flags as cron passes them.
    msg = b"From: root (Cron Daemon)\nSubject: cron output one\n\nline 1\nline 2\n"
    r = _sendmail(conf, tmp_path, "-FCron Daemon", "-i", "-B8BITMIME", "-oem", "root", input=msg)
    assert r.returncode == 0, r.stderr
    assert r.stdout == b"" and r.stderr == b""
    msgs = _stored(m)
    assert len(msgs) == before + 1
    got = msgs[-1]
    head = _head(got)
    assert "From: Cron Daemon <mox@localhost>" in head
    assert "root (Cron Daemon)" not in head
    assert "To: <mox@localhost>" in head  # root -> DefaultDestination
    assert "Subject: cron output one" in head
    assert "\r\nDate: " in head and "\r\nMessage-ID: <" in head and "@localhost>" in head
    assert "auth=pass smtp.mailfrom=mox@localhost" in head
    assert got.endswith(b"\r\n\r\nline 1\r\nline 2\r\n")
    assert b"\n" not in got.replace(b"\r\n", b"")


def test_t_takes_recipients_from_header_and_drops_bcc(served: MoxServe, tmp_path: Path) -> None:
    m = served
    conf = _write_conf(tmp_path / "moxsubmit.conf", m, AuthMethod="SCRAM-SHA-256")
    before = len(_stored(m))
    msg = (
        b"To: Someone <mox@localhost>\r\nBcc: mox@localhost\r\nSubject: with -t\r\n"
        b"Date: Mon, 2 Jan 2006 15:04:05 -0700\r\nMessage-ID: <given@example>\r\n\r\nbody\r\n"
    )
    r = _sendmail(conf, tmp_path, "-t", input=msg)
    assert r.returncode == 0, r.stderr
    msgs = _stored(m)
    assert len(msgs) == before + 1  # The same address twice is one recipient.
    head = _head(msgs[-1])
    assert "\r\nBcc:" not in head
    assert "To: Someone <mox@localhost>" in head
    assert head.count("\r\nDate:") == 1 and "Message-ID: <given@example>" in head


def test_implicit_tls_verified_with_ca_file_and_requiretls_no(served: MoxServe, tmp_path: Path) -> None:
    m = served
    conf = _write_conf(
        tmp_path / "moxsubmit.conf",
        m,
        Port=m.ports.submissions,
        TLS=True,
        RequireTLS="no",
        AuthMethod="CRAM-MD5",
    )
    before = len(_stored(m))
    cert = m.config.parent / "localhost.crt"
    # Without trusting the self-signed certificate, verification fails and the message is kept.
    r = _sendmail(
        conf,
        tmp_path,
        "mox@localhost",
        input=b"Subject: tls\n\nbody\n",
        env={"SSL_CERT_FILE": "/nonexistent"},
    )
    assert r.returncode == 1
    err = r.stderr.decode()
    assert (
        err.startswith("mox: submit failed: connecting to localhost:") and "CERTIFICATE_VERIFY_FAILED" in err
    )
    assert len(list((tmp_path / "moxsubmit.failures").iterdir())) == 1
    r = _sendmail(
        conf, tmp_path, "mox@localhost", input=b"Subject: tls\n\nbody\n", env={"SSL_CERT_FILE": str(cert)}
    )
    assert r.returncode == 0, r.stderr
    msgs = _stored(m)
    assert len(msgs) == before + 1
    head = _head(msgs[-1])
    assert "TLS-Required: No" in head and "with ESMTPSA" in head


def test_starttls_requiretls_and_scram_plus_over_tls12(
    served: MoxServe, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """In-process: TLS 1.2 has the tls-unique channel binding the server offers -PLUS with."""
    m = served
    cafile = str(m.config.parent / "localhost.crt")
    default_context = ssl.create_default_context

    def tls12_context() -> ssl.SSLContext:
        ctx = default_context(cafile=cafile)
        ctx.maximum_version = ssl.TLSVersion.TLSv1_2
        return ctx

    before = len(_stored(m))
    monkeypatch.setattr(ssl, "create_default_context", tls12_context)
    for method in ("", "SCRAM-SHA-1"):
        conf = SubmitConfig(
            LocalHostname="client.example",
            Host="localhost",
            Port=m.ports.submission,
            STARTTLS=True,
            Username="mox@localhost",
            Password=PASSWORD,
            AuthMethod=method,
            From="mox@localhost",
            RequireTLS="yes",
        )
        submit(
            conf, compose_message(b"Subject: plus\n\nx\n", conf, SendmailArgs(recipients=["mox@localhost"]))
        )
    monkeypatch.undo()
    assert len(_stored(m)) == before + 2
    log = m.log()
    assert "mechanism=SCRAM-SHA-256-PLUS" in log
    # Not binding while the server offers -PLUS is flag "n", not a downgrade ("y").
    assert "mechanism=SCRAM-SHA-1 " in log


def test_bad_password_fails_with_one_line_and_saves_message(served: MoxServe, tmp_path: Path) -> None:
    m = served
    conf = _write_conf(tmp_path / "moxsubmit.conf", m, Password="wrong", AuthMethod="PLAIN")
    before = len(_stored(m))
    r = _sendmail(conf, tmp_path, "mox@localhost", input=b"Subject: nope\n\nbody\n")
    assert r.returncode == 1
    err = r.stderr.decode()
    assert err.count("\n") == 1 and err.startswith(
        "mox: submit failed: authentication with PLAIN failed: 535"
    )
    saved = list((tmp_path / "moxsubmit.failures").iterdir())
    assert len(saved) == 1 and f"message saved in {saved[0]}" in err
    kept = saved[0].read_bytes()
    assert kept.startswith(
        b"From: <mox@localhost>\r\nSubject: nope\r\nTo: <mox@localhost>\r\n"
    ) and kept.endswith(b"\r\n\r\nbody\r\n")
    assert len(_stored(m)) == before


def test_usage_errors_are_one_line(served: MoxServe, tmp_path: Path) -> None:
    m = served
    conf = _write_conf(tmp_path / "moxsubmit.conf", m, DefaultDestination="")
    r = _sendmail(conf, tmp_path, "root", input=b"Subject: x\n\nbody\n")
    assert r.returncode == 1
    assert r.stderr == b"mox: recipient 'root' has no @ and no DefaultDestination is configured\n"
    r = _sendmail(conf, tmp_path, input=b"Subject: x\n\nbody\n")
    assert r.returncode == 1 and r.stderr.startswith(b"mox: need recipients")
    r = _sendmail(tmp_path / "missing.conf", tmp_path, "mox@localhost", input=b"")
    assert r.returncode == 1 and r.stderr.startswith(b"mox: reading config: No such file or directory")
    bad = tmp_path / "bad.conf"
    _write_conf(bad, m, Password="")
    r = _sendmail(bad, tmp_path, "mox@localhost", input=b"")
    assert r.returncode == 1 and b"need exactly one of Password" in r.stderr
    # Nothing was saved: these are refused before submitting.
    assert not (tmp_path / "moxsubmit.failures").exists()


def test_describe_sendmail_parses_back() -> None:
    r = subprocess.run(
        [sys.executable, "-m", "mox", "config", "describe-sendmail"],
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert r.returncode == 0
    assert "\nSubmissionURL" not in r.stdout
    for key in (
        "LocalHostname:",
        "Host:",
        "Port:",
        "STARTTLS:",
        "AuthMethod:",
        "DefaultDestination:",
        "RequireTLS:",
    ):
        assert f"\n{key}" in "\n" + r.stdout
    conf, _ = sconf.parse(SubmitConfig, r.stdout, "describe")
    assert conf == SubmitConfig()


def test_flags_and_headerless_input() -> None:
    a = parse_sendmail_args(["-oi", "-f", "x@y", "-F", "Jan", "-ti", "--"])
    assert a == SendmailArgs(from_headers=True, full_name="Jan", recipients=[])
    a = parse_sendmail_args(["-FCronDaemon", "-i", "-B8BITMIME", "-oem", "root", "jan@example.org"])
    assert a == SendmailArgs(False, "CronDaemon", ["root", "jan@example.org"])
    conf = SubmitConfig(
        LocalHostname="h.example", From="me@example.org", DefaultDestination="admin@example.org"
    )
    c = compose_message(b"hi there\n", conf, SendmailArgs(recipients=["root", "a@example.org"]))
    assert c.recipients == ["admin@example.org", "a@example.org"]
    head, body = c.message.split(b"\r\n\r\n", 1)
    assert head.startswith(b"From: <me@example.org>\r\nTo: <admin@example.org>, <a@example.org>\r\nDate: ")
    assert body == b"hi there\r\n"
    # A folded From is dropped whole; folded others stay.
    c = compose_message(
        b"From: a\n b\nSubject: x\n y\n\nbody", conf, SendmailArgs(recipients=["a@example.org"])
    )
    assert b"\r\n b\r\n" not in c.message and b"Subject: x\r\n y\r\n" in c.message
