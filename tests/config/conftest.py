"""Fixtures for the config tests: upstream's example files, keys, and small valid config directories."""

from __future__ import annotations

import shutil
from collections.abc import Callable
from pathlib import Path

import pytest

from mox.config import keys

REPO = Path(__file__).resolve().parents[2]
# Files written by upstream mox (localserve config, `mox config describe-*` output).
UPSTREAM_CONFIG = REPO.parent / "shared" / "upstream-config"


@pytest.fixture(scope="session")
def upstream_config() -> Path:
    return UPSTREAM_CONFIG


@pytest.fixture(scope="session")
def localhost_keycert() -> tuple[bytes, bytes]:
    """A self-signed certificate and key for localhost, made once (key generation is slow-ish)."""
    return keys.make_self_signed(["localhost"], ["127.0.0.1", "::1"])


@pytest.fixture(scope="session")
def ed25519_key() -> bytes:
    return keys.make_dkim_ed25519_key()


@pytest.fixture(scope="session")
def admin_password_hash() -> bytes:
    return keys.hash_admin_password("moxmoxmox")


@pytest.fixture
def localserve_dir(
    tmp_path: Path,
    upstream_config: Path,
    localhost_keycert: tuple[bytes, bytes],
    ed25519_key: bytes,
    admin_password_hash: bytes,
) -> Path:
    """A config directory with upstream's localserve mox.conf and domains.conf, unchanged, and the files they reference."""
    cdir = tmp_path / "config"
    cdir.mkdir()
    shutil.copy(upstream_config / "localserve-mox.conf", cdir / "mox.conf")
    shutil.copy(upstream_config / "localserve-domains.conf", cdir / "domains.conf")
    cert, key = localhost_keycert
    (cdir / "localhost.crt").write_bytes(cert)
    (cdir / "localhost.key").write_bytes(key)
    (cdir / "dkim.localserve.privatekey.pkcs8.pem").write_bytes(ed25519_key)
    (cdir / "adminpasswd").write_bytes(admin_password_hash)
    return cdir


# A small but complete pair of config files, in the shape `mox quickstart` writes,
# written literally so tests know the line numbers. User 0 is numeric, so no
# system user is needed. Tests replace lines to break one thing at a time.
BASE_MOX_CONF = """\
DataDir: ../data
LogLevel: info
User: 0
Hostname: mail.example.com
Listeners:
	public:
		IPs:
			- 127.0.0.1
		TLS:
			KeyCerts:
				-
					CertFile: certs/mail.crt
					KeyFile: certs/mail.key
		SMTP:
			Enabled: true
			Port: 1025
		Submissions:
			Enabled: true
			Port: 1465
		IMAPS:
			Enabled: true
			Port: 1993
		WebserverHTTP:
			Enabled: true
			Port: 1080
Postmaster:
	Account: mjl
	Mailbox: Postmaster
Transports:
	smarthost:
		Submissions:
			Host: smtp.example.net
			Port: 465
"""

BASE_DOMAINS_CONF = """\
Domains:
	example.com:
		LocalpartCatchallSeparator: +
		DKIM:
			Selectors:
				2024a:
					Expiration: 72h
					PrivateKeyFile: dkim/2024a.example.com.pem
			Sign:
				- 2024a
Accounts:
	mjl:
		Domain: example.com
		Destinations:
			mjl@example.com: nil
		RejectsMailbox: Rejects
"""


class ConfigDir:
    """A config directory holding mox.conf, domains.conf and the files they reference."""

    def __init__(self, path: Path) -> None:
        self.path = path

    @property
    def mox_conf(self) -> Path:
        return self.path / "mox.conf"

    @property
    def domains_conf(self) -> Path:
        return self.path / "domains.conf"

    def write(self, mox_conf: str | None = None, domains_conf: str | None = None) -> None:
        if mox_conf is not None:
            self.mox_conf.write_text(mox_conf)
        if domains_conf is not None:
            self.domains_conf.write_text(domains_conf)


@pytest.fixture
def make_config_dir(
    tmp_path: Path, localhost_keycert: tuple[bytes, bytes], ed25519_key: bytes
) -> Callable[..., ConfigDir]:
    """Make a config directory with BASE_MOX_CONF and BASE_DOMAINS_CONF (or given texts) and their key files."""
    counter = [0]

    def make(mox_conf: str = BASE_MOX_CONF, domains_conf: str = BASE_DOMAINS_CONF) -> ConfigDir:
        counter[0] += 1
        cdir = tmp_path / f"cfg{counter[0]}" / "config"
        (cdir / "certs").mkdir(parents=True)
        (cdir / "dkim").mkdir()
        cert, key = localhost_keycert
        (cdir / "certs" / "mail.crt").write_bytes(cert)
        (cdir / "certs" / "mail.key").write_bytes(key)
        (cdir / "dkim" / "2024a.example.com.pem").write_bytes(ed25519_key)
        cd = ConfigDir(cdir)
        cd.write(mox_conf, domains_conf)
        return cd

    return make


@pytest.fixture
def base_mox_conf() -> str:
    return BASE_MOX_CONF


@pytest.fixture
def base_domains_conf() -> str:
    return BASE_DOMAINS_CONF
