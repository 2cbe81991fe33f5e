"""mbsync (isync) full two-way sync of a 10,000-message mailbox with a real ``mox serve``.

Makes (or takes, --mbox) the 10,000-message, 98 MB mbox of ../shared/bench/mailbench.py
(``mailbench.py mbox --n 10000 --out FILE``), starts ``mox serve`` on a local config with free
loopback ports (DNS answered by an empty loopback test server), imports the mbox with
``mox import mbox``, then times mbsync against an empty local Maildir (one channel, the Inbox,
``Sync All``, ``Expunge Both``):

- ``full_pull_s``: the first sync, every message downloaded;
- ``resync_nochange_s``: a second sync with nothing changed;
- ``resync_flags_s``: a sync after flag changes on --changes messages, half of them on the server
  (UID STORE +FLAGS (\\Flagged) over IMAP) and half in the Maildir (files renamed to ",S", as a
  mail reader marks a message read), so flags travel both ways.

After each sync it checks that the Maildir holds every message once and, after the last, that the
flags agree on both sides. Prints one JSON line with the wall times, mbsync's CPU seconds and the
server's CPU seconds of each sync, and the server's peak RSS. Plaintext IMAP by default (as
mailbench's fetch), or IMAPS with --tls. mbsync fsyncs every Maildir file it writes (its default);
--no-fsync turns that off, to see the share of the disk in the first pull.

mbsync's Maildir driver waits for the clock to pass the second in which it last changed the Maildir
(so that a file added in the same second is not missed), so a sync right after another takes at
least about one second whatever the server does.

    .venv/bin/python bench/imap_mbsync.py [--n 10000] [--mbox FILE] [--changes 1000] [--tls] [--no-fsync]

Bounded: every command has a timeout (--timeout, default 600 s); the server is stopped and the
temporary directory removed at the end.
"""

from __future__ import annotations

import argparse
import imaplib
import os
import re
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

sys.path.insert(0, str(Path(__file__).resolve().parent))
from benchlib import DEFAULT_PASSWORD, MoxServe, Report

from mox.dns.testserver import isolated_default_dns

REPO = Path(__file__).resolve().parent.parent
MAILBENCH = REPO.parent / "shared" / "bench" / "mailbench.py"
USER = "mox@localhost"
PASSWORD = DEFAULT_PASSWORD


def proc_status(pid: int, field: str) -> int:
    """A kB value from /proc/PID/status (VmRSS, VmHWM)."""
    with open(f"/proc/{pid}/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1])
    return 0


def cpu_seconds(pid: int) -> float:
    """User plus system CPU seconds of a process."""
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def children_cpu() -> float:
    r = resource.getrusage(resource.RUSAGE_CHILDREN)
    return r.ru_utime + r.ru_stime


def write_mbsyncrc(server: MoxServe, root: Path, maildir: Path, tls: bool, fsync: bool) -> Path:
    if tls:
        conn = (
            f"Host localhost\nPort {server.ports.imaps}\nSSLType IMAPS\n"
            f"CertificateFile {server.config.parent / 'localhost.crt'}\n"
        )
    else:
        conn = f"Host 127.0.0.1\nPort {server.ports.imap}\nSSLType None\n"
    rc = root / "mbsyncrc"
    rc.write_text(
        ("" if fsync else "FSync no\n\n")
        + f"IMAPAccount mox\n{conn}User {USER}\nPass {PASSWORD}\nTimeout 120\n\n"
        "IMAPStore far\nAccount mox\n\n"
        f"MaildirStore near\nPath {maildir}/\nInbox {maildir}/INBOX\nSubFolders Verbatim\n\n"
        "Channel mox\nFar :far:\nNear :near:\nPatterns INBOX\nSync All\nCreate Both\nExpunge Both\nSyncState *\n"
    )
    return rc


def maildir_files(inbox: Path) -> list[Path]:
    return [p for sub in ("new", "cur") for p in (inbox / sub).iterdir()]


def sync_state(inbox: Path) -> dict[int, int]:
    """mbsync's pairs of far (server) and near (Maildir) UIDs: the "FAR NEAR FLAGS" lines of the
    state file it keeps in the Maildir, after a header ended by an empty line."""
    text = (inbox / ".mbsyncstate").read_text()
    pairs = {}
    for line in text.split("\n\n", 1)[1].splitlines():
        far, near = (int(x) for x in line.split()[:2])
        if far and near:
            pairs[far] = near
    return pairs


def timed_sync(rc: Path, server: MoxServe, timeout: float) -> dict[str, float]:
    cpu0, child0, t0 = cpu_seconds(server.pid), children_cpu(), time.perf_counter()
    r = subprocess.run(["mbsync", "-c", str(rc), "mox"], capture_output=True, text=True, timeout=timeout)
    wall = time.perf_counter() - t0
    if r.returncode != 0:
        raise SystemExit(f"mbsync failed ({r.returncode}):\n{r.stdout}{r.stderr}")
    return {
        "wall_s": round(wall, 2),
        "mbsync_cpu_s": round(children_cpu() - child0, 2),
        "server_cpu_s": round(cpu_seconds(server.pid) - cpu0, 2),
    }


def server_flag_counts(server: MoxServe) -> tuple[int, int, int]:
    """Messages, \\Flagged and \\Seen counts in the server's Inbox."""
    im = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=120)
    try:
        im.login(USER, PASSWORD)
        _, data = im.select("INBOX", readonly=True)
        total = int(data[0] or b"0")
        counts = []
        for key in ("FLAGGED", "SEEN"):
            _, data = im.search(None, key)
            counts.append(len((data[0] or b"").split()))
        return total, counts[0], counts[1]
    finally:
        im.logout()


def run(mbox: Path, n: int, changes: int, tls: bool, fsync: bool, timeout: float) -> dict[str, Any]:
    with tempfile.TemporaryDirectory(prefix="bench-mbsync-") as tmp:
        root = Path(tmp)
        server = MoxServe(log_level="info").start()
        try:
            t0 = time.perf_counter()
            r = subprocess.run(
                [
                    sys.executable,
                    "-m",
                    "mox",
                    "-config",
                    str(server.config),
                    "import",
                    "mbox",
                    "mox",
                    "Inbox",
                    str(mbox),
                ],
                capture_output=True,
                text=True,
                timeout=timeout,
            )
            import_s = time.perf_counter() - t0
            if r.returncode != 0 or f"imported {n} messages" not in r.stderr:
                raise SystemExit(f"import failed ({r.returncode}):\n{r.stderr}")

            maildir = root / "maildir"
            maildir.mkdir()
            rc = write_mbsyncrc(server, root, maildir, tls, fsync)
            inbox = maildir / "INBOX"

            full = timed_sync(rc, server, timeout)
            files = maildir_files(inbox)
            if len(files) != n:
                raise SystemExit(f"first sync: {len(files)} files in the Maildir, expected {n}")
            nochange = timed_sync(rc, server, timeout)
            if len(maildir_files(inbox)) != n:
                raise SystemExit("no-change sync changed the Maildir")

            # Half the changes on the server (every 20th UID flagged), half in the Maildir (marked
            # read: moved to cur/ with ",S"), on different messages.
            half = changes // 2
            far = list(range(1, n + 1, max(1, n // half)))[:half]
            im = imaplib.IMAP4("127.0.0.1", server.ports.imap, timeout=120)
            try:
                im.login(USER, PASSWORD)
                im.select("INBOX")
                typ, data = im.uid("STORE", ",".join(map(str, far)), "+FLAGS.SILENT", "(\\Flagged)")
                if typ != "OK":
                    raise SystemExit(f"UID STORE: {typ} {data!r}")
            finally:
                im.logout()
            # Maildir files are named by mbsync's near-side UIDs; its state file pairs them with ours.
            near_uid = sync_state(inbox)
            by_uid = {int(m.group(1)): p for p in files if (m := re.search(r",U=(\d+)", p.name))}
            near = [u + 1 for u in far][: changes - half]  # Neighbours of the flagged ones.
            for u in near:
                p = by_uid[near_uid[u]]
                p.rename(inbox / "cur" / (p.name.partition(":2,")[0] + ":2,S"))
            flags = timed_sync(rc, server, timeout)

            total, flagged, seen = server_flag_counts(server)
            files = maildir_files(inbox)
            md_flagged = sum(1 for p in files if "F" in p.name.partition(":2,")[2])
            md_seen = sum(1 for p in files if "S" in p.name.partition(":2,")[2])
            if (total, flagged, seen) != (n, len(far), len(near)) or (len(files), md_flagged, md_seen) != (
                n,
                len(far),
                len(near),
            ):
                raise SystemExit(
                    f"after the flag sync: server {total} msgs, {flagged} flagged, {seen} seen; "
                    f"maildir {len(files)} files, {md_flagged} F, {md_seen} S; want {n}, {len(far)}, {len(near)}"
                )
            peak = proc_status(server.pid, "VmHWM")
        finally:
            server.close()
    version = subprocess.run(["mbsync", "--version"], capture_output=True, text=True).stdout.strip()
    return {
        "bench": "imap_mbsync",
        "mbsync": version,
        "transport": "imaps" if tls else "plaintext",
        "fsync": fsync,
        "messages": n,
        "mbox_mb": round(mbox.stat().st_size / 1e6, 1),
        "import_s": round(import_s, 2),
        "full_pull_s": full["wall_s"],
        "resync_nochange_s": nochange["wall_s"],
        "flag_changes": len(far) + len(near),
        "resync_flags_s": flags["wall_s"],
        "mbsync_cpu_s": [full["mbsync_cpu_s"], nochange["mbsync_cpu_s"], flags["mbsync_cpu_s"]],
        "server_cpu_s": [full["server_cpu_s"], nochange["server_cpu_s"], flags["server_cpu_s"]],
        "server_peak_rss_mb": round(peak / 1024, 1),
        "cpus": os.cpu_count(),
    }


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--n", type=int, default=10000, help="messages in the generated mbox")
    ap.add_argument("--mbox", type=Path, help="use this mbox instead of generating one (give --n to match)")
    ap.add_argument("--changes", type=int, default=1000, help="flag changes before the last sync")
    ap.add_argument("--tls", action="store_true", help="IMAPS with the test certificate instead of plaintext")
    ap.add_argument("--no-fsync", action="store_true", help='mbsync\'s "FSync no": no fsync per Maildir file')
    ap.add_argument("--timeout", type=float, default=600.0)
    a = ap.parse_args()
    report = Report("mbsync two-way sync of a large mailbox")
    if a.changes < 2 or a.changes > a.n:
        ap.error("--changes must be between 2 and --n")
    with tempfile.TemporaryDirectory(prefix="bench-mbox-") as tmp, isolated_default_dns():
        mbox = a.mbox
        if mbox is None:
            mbox = Path(tmp) / "bench.mbox"
            subprocess.run(
                [sys.executable, str(MAILBENCH), "mbox", "--n", str(a.n), "--out", str(mbox)],
                check=True,
                stdout=subprocess.DEVNULL,
                timeout=a.timeout,
            )
        report.add(run(mbox, a.n, a.changes, a.tls, not a.no_fsync, a.timeout))
    report.table()


if __name__ == "__main__":
    main()
