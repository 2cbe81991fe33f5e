"""swaks (a real SMTP client) delivering and submitting to a real `mox serve`."""

from __future__ import annotations

import subprocess

from serve_harness import MoxServe
from test_smtp_delivery import set_password, stored


def swaks(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["swaks", "--timeout", "20", *args], capture_output=True, text=True, timeout=60)


def test_swaks_delivery_submission_and_tls(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    r = swaks("--server", f"127.0.0.1:{m.ports.smtp}", "--helo", "client.example.net",
              "--from", "sender@example.net", "--to", "mox@localhost", "--header", "Subject: via swaks")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "<-  250 2.0.0" in r.stdout or "<-  250 " in r.stdout
    r = swaks("--server", f"127.0.0.1:{m.ports.smtp}", "--from", "sender@example.net", "--to", "x@remote.example")
    assert r.returncode != 0 and "550 5.7.1" in r.stdout
    r = swaks("--server", f"127.0.0.1:{m.ports.submission}", "--auth", "PLAIN", "--auth-user", "mox@localhost",
              "--auth-password", "moxmoxmox", "--from", "mox@localhost", "--to", "mox@localhost",
              "--header", "Subject: submitted with swaks")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    r = swaks("--server", f"127.0.0.1:{m.ports.smtp}", "--tls", "--from", "sender@example.net", "--to", "mox@localhost",
              "--header", "Subject: over starttls")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    assert "TLS started" in r.stdout
    r = swaks("--server", f"127.0.0.1:{m.ports.submissions}", "--tlsc", "--auth", "CRAM-MD5", "--auth-user", "mox@localhost",
              "--auth-password", "moxmoxmox", "--from", "mox@localhost", "--to", "mox@localhost")  # fmt: skip
    assert r.returncode == 0, r.stdout + r.stderr
    m.stop()
    subjects = [next((line for line in x.decode().splitlines() if line.startswith("Subject:")), "") for x in stored(m)]
    assert subjects[:3] == ["Subject: via swaks", "Subject: submitted with swaks", "Subject: over starttls"]
    assert len(subjects) == 4
