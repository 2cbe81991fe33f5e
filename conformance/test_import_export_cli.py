"""``mox import mbox|maildir`` and ``mox export mbox|maildir`` with the real command line,
through a running ``mox serve`` and directly on the files when none runs."""

from __future__ import annotations

import asyncio
from pathlib import Path

from serve_harness import MoxServe, run_mox

from mox.store.account import open_account
from mox.store.model import Flags

MBOX = (
    b"From a@example.org Sat Jan  1 00:00:00 2022\n"
    b"Subject: one\nMessage-ID: <one@example.org>\nStatus: RO\nX-Status: F\nX-Keywords: $Junk,custom\n\n"
    b"body\n>From quoted\n\n"
    b"From b@example.org Sat Jan  1 00:00:01 2022\n\n"
    b"From c@example.org Sat Jan  1 00:00:02 2022\n"
    b"Subject: Re: one\nIn-Reply-To: <one@example.org>\n\nreply\n\n"
)


def write_maildir(root: Path) -> Path:
    md = root / "maildir"
    for d in ("new", "cur", "tmp"):
        (md / d).mkdir(parents=True)
    (md / "cur" / "1700000000.a.host:2,RSa").write_bytes(b"Subject: md1\n\none\n")
    (md / "new" / "1700000001.b.host").write_bytes(b"Subject: md2\n\ntwo\n")
    (md / "dovecot-keywords").write_bytes(b"0 $Forwarded\n")
    return md


def account_state(data: Path, mailbox: str) -> list[tuple[bytes, Flags, list[str], float]]:
    async def run() -> list[tuple[bytes, Flags, list[str], float]]:
        acc = await open_account(data, "mox")
        try:
            return [
                (acc.read_message(m), m.flags, m.keywords, m.received) for m in await acc.messages(mailbox)
            ]
        finally:
            await acc.close()

    return asyncio.run(run())


def test_import_through_running_server(mox_serve: MoxServe, tmp_path: Path) -> None:
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(MBOX)
    r = mox_serve.mox("import", "mbox", "mox", "inbox", str(mbox))
    assert r.returncode == 0, r.stderr
    assert f"{mbox}: message 2 at byte offset 155 (line 11): empty message, skipped" in r.stderr
    assert "imported 2 messages" in r.stderr and "skipped 1" in r.stderr
    mox_serve.wait_log(
        'm="imported messages" pkg=import kind=mbox account=mox mailbox=Inbox imported=2 skipped=1'
    )

    md = write_maildir(tmp_path)
    r = mox_serve.mox("import", "maildir", "mox", "Imported/md", str(md))
    assert r.returncode == 0, r.stderr
    assert "imported 2 messages" in r.stderr

    # Failures are one clear line, before any data is imported.
    r = mox_serve.mox("import", "mbox", "nobody", "Inbox", str(mbox))
    assert r.returncode == 1 and r.stderr.strip().endswith("does not exist"), r.stderr
    r = mox_serve.mox("import", "mbox", "mox", "Inbox", str(md / "cur" / "1700000000.a.host:2,RSa"))
    assert r.returncode == 1 and "not an mbox file" in r.stderr, r.stderr
    r = mox_serve.mox("import", "maildir", "mox", "Inbox", str(tmp_path))
    assert r.returncode == 1 and "not a maildir" in r.stderr, r.stderr

    # Export reads the account while the server runs.
    dest = tmp_path / "export"
    r = mox_serve.mox("export", "mbox", str(dest), str(mox_serve.data / "accounts" / "mox"), "Inbox")
    assert r.returncode == 0, r.stderr
    assert (dest / "Inbox.mbox").read_bytes() == (
        b"From mox Sat Jan  1 00:00:00 2022\nStatus: R\nX-Status: F\nX-Keywords: $Junk,custom\n"
        b"Subject: one\nMessage-ID: <one@example.org>\n\nbody\n>From quoted\n\n"
        b"From mox Sat Jan  1 00:00:02 2022\nSubject: Re: one\nIn-Reply-To: <one@example.org>\n\nreply\n\n"
    )

    mox_serve.stop()
    inbox = account_state(mox_serve.data, "Inbox")
    assert [(d, f, k) for d, f, k, _ in inbox] == [
        (
            b"Subject: one\r\nMessage-ID: <one@example.org>\r\n\r\nbody\r\nFrom quoted\r\n",
            Flags.SEEN | Flags.FLAGGED | Flags.JUNK,
            ["custom"],
        ),
        (b"Subject: Re: one\r\nIn-Reply-To: <one@example.org>\r\n\r\nreply\r\n", Flags.NONE, []),
    ]
    imported = account_state(mox_serve.data, "Imported/md")
    assert [(d, f, k, t) for d, f, k, t in imported] == [
        (b"Subject: md1\r\n\r\none\r\n", Flags.SEEN | Flags.ANSWERED | Flags.FORWARDED, [], 1700000000.0),
        (b"Subject: md2\r\n\r\ntwo\r\n", Flags.NONE, [], 1700000001.0),
    ]


def test_import_and_export_without_server(local_config: Path, tmp_path: Path) -> None:
    data = local_config.parent.parent / "data"
    mbox = tmp_path / "in.mbox"
    mbox.write_bytes(MBOX)
    r = run_mox(local_config, "import", "mbox", "mox", "Inbox", str(mbox))
    assert r.returncode == 0, r.stderr
    assert "imported 2 messages" in r.stderr and "empty message, skipped" in r.stderr

    # mbox -> store -> maildir -> store -> mbox: the same file both times.
    r = run_mox(
        local_config, "export", "maildir", str(tmp_path / "md"), str(data / "accounts" / "mox"), "Inbox"
    )
    assert r.returncode == 0, r.stderr
    assert "exported 2 messages in 1 maildirs" in r.stdout
    r = run_mox(local_config, "import", "maildir", "mox", "Copy", str(tmp_path / "md" / "Inbox"))
    assert r.returncode == 0, r.stderr
    r = run_mox(local_config, "export", "mbox", str(tmp_path / "mb"), str(data / "accounts" / "mox"))
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "mb" / "Copy.mbox").read_bytes() == (tmp_path / "mb" / "Inbox.mbox").read_bytes()
    assert account_state(data, "Copy") == account_state(data, "Inbox")

    # Refusals: existing files are not overwritten, -single needs a mailbox to matter.
    r = run_mox(local_config, "export", "mbox", str(tmp_path / "mb"), str(data / "accounts" / "mox"), "Inbox")
    assert r.returncode == 1 and "already exists" in r.stderr
    r = run_mox(
        local_config, "export", "mbox", "-single", str(tmp_path / "mb2"), str(data / "accounts" / "mox")
    )
    assert r.returncode == 0 and "in 7 mbox files" in r.stdout, r.stdout


def test_help_shows_upstream_usage(local_config: Path) -> None:
    for words, usage in [
        ("import mbox", "usage: mox import mbox $accountname $mailboxname $mbox"),
        ("import maildir", "usage: mox import maildir $accountname $mailboxname $maildir"),
        ("export mbox", "usage: mox export mbox [-single] $dstdir $accountpath [$mailbox]"),
        ("export maildir", "usage: mox export maildir [-single] $dstdir $accountpath [$mailbox]"),
    ]:
        r = run_mox(local_config, "help", *words.split())
        assert r.returncode == 0 and usage in r.stdout, r.stdout
    r = run_mox(local_config, "import", "mbox", "mox")
    assert r.returncode == 2 and "usage: mox import mbox" in r.stderr


def test_failed_import_through_server_says_how_far_it_got(tmp_path: Path) -> None:
    server = MoxServe(tmp_path)
    domains = server.config.parent / "domains.conf"
    domains.write_text(domains.read_text().replace("\tmox:\n", "\tmox:\n\t\tQuotaMessageSize: 3000\n", 1))
    server.start()
    try:
        msg = b"Subject: filler\n\n" + b"x" * 500 + b"\n"
        mbox = tmp_path / "big.mbox"
        mbox.write_bytes(b"".join(b"From a Sat Jan  1 00:00:00 2022\n" + msg + b"\n" for _ in range(20)))
        r = server.mox("import", "mbox", "mox", "Inbox", str(mbox))
        assert r.returncode == 1, r.stderr
        assert "import stopped: 0 messages were imported, the batch of 20 starting at" in r.stderr
        assert "quota" in r.stderr
        # The server is fine afterwards.
        assert server.mox("import", "mbox", "mox", "Inbox", str(tmp_path / "missing")).returncode == 1
        assert server.mox("loglevels").returncode == 0
    finally:
        server.stop()
    assert account_state(server.data, "Inbox") == []
