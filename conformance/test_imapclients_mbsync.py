"""mbsync (isync) against a real ``mox serve``: a full two-way sync of a 200-message Inbox with a local
Maildir over IMAPS (the test certificate via CertificateFile), then flag changes, deletions and new
messages on both sides, a second sync, and a check that both sides agree, message by message, with
nothing lost or duplicated; a third sync changes nothing."""

from __future__ import annotations

import re
import subprocess
import time
from pathlib import Path

from imapclients_helpers import (
    PASSWORD,
    USER,
    MaildirMsg,
    ServerMsg,
    imap_flags_of,
    imap_login,
    maildir_messages,
    prepare_account,
    server_messages,
    set_maildir_flags,
    threaded_messages,
)
from serve_harness import MoxServe

N = 200


def write_mbsyncrc(m: MoxServe, tmp: Path, maildir: Path) -> Path:
    """An mbsync config with one channel, "mox": the server's Inbox (IMAPS on its test port; the
    self-signed certificate for "localhost" trusted through CertificateFile) against a Maildir,
    syncing everything both ways, creating and expunging on both sides."""
    rc = tmp / "mbsyncrc"
    rc.write_text(
        f"""IMAPAccount mox
Host localhost
Port {m.ports.imaps}
User {USER}
Pass {PASSWORD}
SSLType IMAPS
CertificateFile {m.config.parent / "localhost.crt"}
Timeout 60

IMAPStore mox-far
Account mox

MaildirStore mox-near
Path {maildir}/
Inbox {maildir}/INBOX
SubFolders Verbatim

Channel mox
Far :mox-far:
Near :mox-near:
Patterns INBOX
Sync All
Create Both
Expunge Both
SyncState *
"""
    )
    return rc


def mbsync(rc: Path) -> str:
    r = subprocess.run(["mbsync", "-c", str(rc), "-V", "mox"], capture_output=True, text=True, timeout=120)
    out = r.stdout + r.stderr
    assert r.returncode == 0, out
    assert "Error" not in out and "Warning" not in out, out
    return out


def sync_state(inbox: Path) -> dict[int, int]:
    """mbsync's pairs of near (Maildir, the ",U=" in file names) and far (server) UIDs, from the
    state file it keeps in the Maildir ("FAR NEAR FLAGS" lines after a header)."""
    pairs: dict[int, int] = {}
    header = True
    for line in (inbox / ".mbsyncstate").read_text().splitlines():
        if header:
            header = line != ""
            continue
        far, near = (int(x) for x in line.split()[:2])
        if far and near:
            pairs[near] = far
    return pairs


def without_tuid(data: bytes) -> bytes:
    """A message with LF line ends and without the X-TUID header mbsync adds to the messages it
    copies (to find them again after an upload)."""
    return re.sub(rb"(?m)^X-TUID: [^\n]*\n", b"", data.replace(b"\r\n", b"\n"))


def check_agree(server: list[ServerMsg], local: list[MaildirMsg], pairs: dict[int, int]) -> None:
    """Both sides hold the same messages (by Message-ID), once each, with the same flags and
    content, and mbsync paired each Maildir file with the server UID of its message."""
    ids = [s.message_id for s in server]
    assert len(ids) == len(set(ids)), "duplicate message on the server"
    lids = [x.message_id for x in local]
    assert len(lids) == len(set(lids)), "duplicate message in the Maildir"
    assert set(ids) == set(lids)
    by_id = {s.message_id: s for s in server}
    for x in local:
        s = by_id[x.message_id]
        assert x.uid is not None and pairs[x.uid] == s.uid, (x.path.name, s.uid)
        assert imap_flags_of(x.flags) == s.flags - {"\\Recent"}, (x.path.name, s.flags)
        assert without_tuid(x.path.read_bytes()) == without_tuid(s.data), x.path.name
    assert len(pairs) == len(server)


def test_mbsync_two_way_sync(mox_serve: MoxServe, tmp_path: Path) -> None:
    m = mox_serve
    msgs = threaded_messages(N)
    prepare_account(m, tmp_path, msgs)
    maildir = tmp_path / "maildir"
    maildir.mkdir()
    rc = write_mbsyncrc(m, tmp_path, maildir)
    inbox = maildir / "INBOX"

    # 1. The first sync pulls everything.
    out = mbsync(rc)
    assert f"far side: {N} messages" in out, out
    server = server_messages(m)
    local = maildir_messages(inbox)
    assert [s.message_id for s in server] == [x.message_id for x in msgs]
    assert len(local) == N
    check_agree(server, local, sync_state(inbox))

    # 2. Changes on the server: flags, an expunge, a new message.
    uid = {s.message_id: s.uid for s in server}
    im = imap_login(m)
    try:
        assert im.select("INBOX")[0] == "OK"
        assert im.uid("STORE", "1:10", "+FLAGS.SILENT", "(\\Flagged)")[0] == "OK"
        assert im.uid("STORE", "11:20", "+FLAGS.SILENT", "(\\Seen \\Answered)")[0] == "OK"
        assert im.uid("STORE", "21:25", "+FLAGS.SILENT", "(\\Deleted)")[0] == "OK"
        typ, data = im.expunge()
        assert typ == "OK" and len(data) == 5, data
        far_new = b"From: far@example.org\r\nSubject: added on the server\r\nMessage-ID: <far-new@example.org>\r\n\r\nfar\r\n"
        typ, data = im.append("INBOX", "(\\Seen)", None, far_new)
        assert typ == "OK" and b"APPENDUID" in data[0], data
    finally:
        im.logout()

    # ... and in the Maildir: flags (one message also changed on the server), deletions, a trashed
    # message, a new message.
    local_by_id = {x.message_id: x for x in local}
    set_maildir_flags(local_by_id[msgs[0].message_id], "S")  # Flagged on the server: both merge.
    for i in range(30, 35):
        set_maildir_flags(local_by_id[msgs[i].message_id], "F")
    for i in range(35, 40):
        set_maildir_flags(local_by_id[msgs[i].message_id], "SR")
    for i in range(40, 45):
        local_by_id[msgs[i].message_id].path.unlink()
    set_maildir_flags(local_by_id[msgs[45].message_id], "ST")
    near_new = (
        b"From: near@example.org\nSubject: added in the maildir\nMessage-ID: <near-new@example.org>\n\nnear\n"
    )
    (inbox / "new" / f"{int(time.time())}.P1Q1.testhost").write_bytes(near_new)

    # 3. The second sync propagates both ways.
    mbsync(rc)
    server = server_messages(m)
    local = maildir_messages(inbox)
    check_agree(server, local, sync_state(inbox))
    gone = {msgs[i].message_id for i in [*range(20, 25), *range(40, 46)]}
    want_ids = {x.message_id for x in msgs} - gone | {"<far-new@example.org>", "<near-new@example.org>"}
    assert {s.message_id for s in server} == want_ids
    assert len(server) == N - 11 + 2

    want_flags: dict[str, set[str]] = {x.message_id: set() for x in msgs}
    want_flags[msgs[0].message_id] = {"\\Flagged", "\\Seen"}
    for i in range(1, 10):
        want_flags[msgs[i].message_id] = {"\\Flagged"}
    for i in range(10, 20):
        want_flags[msgs[i].message_id] = {"\\Seen", "\\Answered"}
    for i in range(30, 35):
        want_flags[msgs[i].message_id] = {"\\Flagged"}
    for i in range(35, 40):
        want_flags[msgs[i].message_id] = {"\\Seen", "\\Answered"}
    want_flags["<far-new@example.org>"] = {"\\Seen"}
    want_flags["<near-new@example.org>"] = set()
    for s in server:
        assert s.flags - {"\\Recent"} == want_flags[s.message_id], (s.message_id, s.flags)
    # Untouched messages kept their UIDs; the uploaded one got a new UID and arrived intact.
    for s in server:
        if s.message_id in uid:
            assert s.uid == uid[s.message_id]
    uploaded = next(s for s in server if s.message_id == "<near-new@example.org>")
    assert uploaded.uid > N + 1 and without_tuid(uploaded.data) == near_new

    # 4. A third sync has nothing to do.
    mbsync(rc)
    assert server_messages(m) == server
    assert maildir_messages(inbox) == local
