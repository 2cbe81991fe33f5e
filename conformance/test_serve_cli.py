"""A real ``mox serve`` process driven with the real ``mox`` command line, as a user would."""

from __future__ import annotations

import shutil
import signal
import socket
import ssl
import time
import urllib.error
import urllib.request
from pathlib import Path

from serve_harness import SHARED, MoxServe, run_mox

from mox.config.keys import make_dkim_ed25519_key, make_self_signed


def test_version_help_and_unknown_command(local_config: Path) -> None:
    r = run_mox(local_config, "version")
    assert r.returncode == 0
    assert r.stdout.startswith("moxmail ")

    r = run_mox(local_config, "help")
    assert r.returncode == 0
    for cmd in ("mox serve", "mox stop", "mox loglevels", "mox config test", "mox config domain add"):
        assert cmd in r.stdout

    r = run_mox(local_config, "help", "config", "domain", "add")
    assert r.returncode == 0
    assert "usage: mox config domain add [-disabled] $domain $account [$localpart]" in r.stdout
    assert "-disabled" in r.stdout

    r = run_mox(local_config, "help", "config", "account")
    assert "mox config account add" in r.stdout and "mox config account rm" in r.stdout

    r = run_mox(local_config, "nosuchcommand")
    assert r.returncode == 2
    assert "unknown command" in r.stderr and "usage: mox" in r.stderr

    r = run_mox(local_config, "config", "account", "add", "onlyone")
    assert r.returncode == 2
    assert "usage: mox config account add $account $address" in r.stderr


def test_config_test_passes_upstream_localserve_files(tmp_path: Path) -> None:
    up = SHARED / "upstream-config"
    shutil.copy(up / "localserve-mox.conf", tmp_path / "mox.conf")
    shutil.copy(up / "localserve-domains.conf", tmp_path / "domains.conf")
    cert, key = make_self_signed(["localhost"], ["127.0.0.1", "::1"])
    (tmp_path / "localhost.crt").write_bytes(cert)
    (tmp_path / "localhost.key").write_bytes(key)
    (tmp_path / "dkim.localserve.privatekey.pkcs8.pem").write_bytes(make_dkim_ed25519_key())
    (tmp_path / "adminpasswd").write_text("$2a$10$abcdefghijklmnopqrstuvABCDEFGHIJKLMNOPQRSTUVWXYZ01234\n")
    r = run_mox(tmp_path / "mox.conf", "config", "test")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "config OK"

    # A broken edit names file, line and field.
    text = (tmp_path / "domains.conf").read_text().replace("mox@localhost: nil", "mox@exmple.com: nil")
    (tmp_path / "domains.conf").write_text(text)
    line = next(i for i, s in enumerate(text.splitlines(), 1) if "mox@exmple.com" in s)
    r = run_mox(tmp_path / "mox.conf", "config", "test")
    assert r.returncode == 1
    assert f'domains.conf:{line}: Accounts.mox.Destinations: unknown domain "exmple.com"' in r.stderr


def test_describe_prints_loadable_structure(local_config: Path) -> None:
    r = run_mox(local_config, "config", "describe-static")
    assert r.returncode == 0
    for key in ("DataDir:", "Listeners:", "\tx:", "\t\tSMTP:", "Postmaster:", "QuotaMessageSize: 0"):
        assert key in r.stdout
    r = run_mox(local_config, "config", "describe-domains")
    assert r.returncode == 0
    for key in ("Domains:", "Accounts:", "\t\tDestinations:", "WebHandlers:", "MonitorDNSBLs:"):
        assert key in r.stdout


def test_ctl_commands_against_running_server(mox_serve: MoxServe) -> None:
    m = mox_serve
    domains = m.config.parent / "domains.conf"

    r = m.mox("loglevels")
    assert r.returncode == 0 and r.stdout.splitlines() == ["(default): debug"]
    r = m.mox("loglevels", "trace", "smtpserver")
    assert r.returncode == 0, r.stderr
    assert m.mox("loglevels").stdout.splitlines() == ["(default): debug", "smtpserver: trace"]
    assert m.mox("loglevels", "", "smtpserver").returncode == 0
    assert m.mox("loglevels", "info").returncode == 0
    assert m.mox("loglevels").stdout.splitlines() == ["(default): info"]
    r = m.mox("loglevels", "loud")
    assert r.returncode == 1 and "unknown log level" in r.stderr

    assert m.mox("config", "account", "list").stdout.splitlines() == ["mox"]

    r = m.mox("config", "domain", "add", "example.org", "jan", "jan")
    assert r.returncode == 0, r.stderr
    assert "domain added" in r.stdout
    text = domains.read_text()
    assert "\texample.org:" in text and "jan@example.org: nil" in text
    assert len(list((m.config.parent / "dkim").glob("*._domainkey.example.org.*.privatekey.pkcs8.pem"))) == 2
    assert "MTASTS" not in text  # no listener has MTASTSHTTPS
    assert m.mox("config", "account", "list").stdout.splitlines() == ["jan", "mox"]

    r = m.mox("config", "account", "add", "piet", "piet@example.org")
    assert r.returncode == 0, r.stderr
    assert 'mox setaccountpassword piet' in r.stdout
    r = m.mox("config", "address", "add", "info@example.org", "piet")
    assert r.returncode == 0 and r.stdout.strip() == "address added"
    r = m.mox("config", "address", "add", "@example.org", "jan")
    assert r.returncode == 0, r.stderr
    assert "@example.org: nil" in domains.read_text()

    # Refused changes: clear message, exit status 1, file unchanged.
    before = domains.read_bytes()
    for args, msg in [
        (("config", "address", "add", "INFO@example.org", "jan"), "already configured"),
        (("config", "address", "add", "x@unknown.example", "jan"), "does not exist"),
        (("config", "account", "add", "mox", "other@localhost"), "already exists"),
        (("config", "domain", "rm", "example.org"), "remove it first"),
        (("config", "account", "rm", "mox"), "postmaster"),
        (("config", "address", "rm", "nobody@example.org"), "does not exist"),
    ]:
        r = m.mox(*args)
        assert r.returncode == 1, (args, r.stdout, r.stderr)
        assert msg in r.stderr, (args, r.stderr)
    assert domains.read_bytes() == before

    assert m.mox("config", "address", "rm", "info@example.org").stdout.strip() == "address removed"
    assert m.mox("config", "address", "rm", "@example.org").returncode == 0
    (m.data / "accounts" / "piet").mkdir(parents=True)
    assert m.mox("config", "account", "rm", "piet").stdout.strip() == "account removed"
    assert not (m.data / "accounts" / "piet").exists()
    assert m.mox("config", "account", "rm", "jan").returncode == 1  # still the domain's report account
    # An existing account that is not the global postmaster gets the new domain's postmaster address.
    r = m.mox("config", "domain", "add", "example.net", "jan")
    assert r.returncode == 0, r.stderr
    assert "postmaster@example.net: nil" in domains.read_text()
    r = m.mox("config", "domain", "rm", "example.net")
    assert r.returncode == 0, r.stderr
    assert "example.net" not in domains.read_text()
    assert m.mox("config", "account", "list").stdout.splitlines() == ["jan", "mox"]
    assert run_mox(m.config, "config", "test").returncode == 0
    assert 'cmd="config domain rm"' in m.log()


def test_listeners_answer_until_protocols_exist(mox_serve: MoxServe) -> None:
    m = mox_serve
    with socket.create_connection(("127.0.0.1", m.ports.smtp), timeout=5) as s:
        assert s.recv(200).startswith(b"220 localhost ESMTP")
    with socket.create_connection(("127.0.0.1", m.ports.imap), timeout=5) as s:
        assert s.recv(200).startswith(b"* OK [CAPABILITY IMAP4rev")
    ctx = ssl.create_default_context(cafile=str(m.config.parent / "localhost.crt"))
    with socket.create_connection(("127.0.0.1", m.ports.imaps), timeout=5) as raw, ctx.wrap_socket(raw, server_hostname="localhost") as s:
        assert s.recv(200).startswith(b"* OK [CAPABILITY IMAP4rev")
    try:
        urllib.request.urlopen(f"http://127.0.0.1:{m.ports.http}/webmail/", timeout=5)
        raise AssertionError("expected HTTP error")
    except urllib.error.HTTPError as e:
        assert e.code == 503


def test_domains_conf_reload_and_broken_edit(mox_serve: MoxServe) -> None:
    m = mox_serve
    domains = m.config.parent / "domains.conf"
    good = domains.read_text()
    # An account added by editing the file appears within a few seconds.
    added = good.replace("Accounts:\n", "Accounts:\n\tedited:\n\t\tDomain: localhost\n\t\tDestinations:\n\t\t\tedited@localhost: nil\n", 1)
    domains.write_text(added)
    deadline = time.monotonic() + 10
    while m.mox("config", "account", "list").stdout.splitlines() != ["edited", "mox"]:
        assert time.monotonic() < deadline, m.log()
        time.sleep(0.2)
    m.wait_log('m="domains.conf reloaded"')

    # A broken edit is refused and logged; the previous config stays in force.
    domains.write_text(added.replace("edited@localhost: nil", "edited@nodomain.example: nil"))
    m.wait_log("domains.conf changed but is invalid, keeping previous config")
    assert 'unknown domain \\"nodomain.example\\"' in m.log()
    assert m.mox("config", "account", "list").stdout.splitlines() == ["edited", "mox"]

    domains.write_text(good)
    deadline = time.monotonic() + 10
    while m.mox("config", "account", "list").stdout.splitlines() != ["mox"]:
        assert time.monotonic() < deadline, m.log()
        time.sleep(0.2)


def test_stop_command_and_sigterm(tmp_path: Path) -> None:
    m = MoxServe(tmp_path)
    m.start()
    assert (m.data / "mox.pid").read_text().strip() == str(m.proc.pid if m.proc else "")
    r = m.mox("stop")
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == "mox stopped"
    assert m.proc is not None and m.proc.wait(10) == 0
    assert not (m.data / "mox.pid").exists() and not (m.data / "ctl").exists()
    r = m.mox("stop")
    assert r.returncode == 1 and "is mox serve running?" in r.stderr

    # Restart on the same ports, then stop with SIGTERM.
    m.start()
    assert m.proc is not None
    m.proc.send_signal(signal.SIGTERM)
    assert m.proc.wait(10) == 0
    assert 'm="mox stopped"' in m.log()


def test_config_edits_without_server_edit_files_directly(local_config: Path) -> None:
    r = run_mox(local_config, "config", "account", "add", "direct", "direct@localhost")
    assert r.returncode == 0, r.stderr
    assert "direct@localhost: nil" in (local_config.parent / "domains.conf").read_text()
    assert run_mox(local_config, "config", "account", "list").stdout.splitlines() == ["direct", "mox"]
    assert run_mox(local_config, "config", "account", "rm", "direct").returncode == 0
    assert run_mox(local_config, "config", "test").returncode == 0


def test_startup_failures_print_one_clear_line(tmp_path: Path) -> None:
    # Port in use.
    m = MoxServe(tmp_path / "a")
    with socket.socket() as blocker:
        blocker.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        blocker.bind(("127.0.0.1", m.ports.imap))
        blocker.listen(1)
        r = run_mox(m.config, "serve", timeout=30)
    assert r.returncode == 1
    err = [line for line in r.stderr.splitlines() if line.startswith("mox:")]
    assert len(err) == 1 and "address already in use" in err[0] and f"127.0.0.1:{m.ports.imap}" in err[0], r.stderr
    assert not (m.data / "ctl").exists()

    # Unreadable TLS key.
    m = MoxServe(tmp_path / "b")
    (m.config.parent / "localhost.key").write_text("not a key\n")
    r = run_mox(m.config, "serve", timeout=30)
    assert r.returncode == 1
    assert "mox: config error: mox.conf:" in r.stderr and "Listeners.local.TLS.KeyCerts[0]" in r.stderr

    # Bad config.
    m = MoxServe(tmp_path / "c")
    text = m.config.read_text().replace("LogLevel: debug", "LogLevel: loud")
    m.config.write_text(text)
    r = run_mox(m.config, "serve", timeout=30)
    assert r.returncode == 1
    line = next(i for i, s in enumerate(text.splitlines(), 1) if s == "LogLevel: loud")
    assert f"mox.conf:{line}: LogLevel: invalid log level 'loud'" in r.stderr

    # Second instance on the same data directory.
    m = MoxServe(tmp_path / "d")
    m.start()
    try:
        r = run_mox(m.config, "serve", timeout=30)
        assert r.returncode == 1
        assert "is another mox serve running?" in r.stderr
    finally:
        m.stop()
