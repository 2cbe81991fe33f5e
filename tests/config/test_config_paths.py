"""Relative paths in config files are relative to the file's directory, never to the process's working directory.

mox.conf: DataDir, TLS key/cert files, CA files, AdminPasswordFile are relative to
the directory of mox.conf; domains.conf: DKIM PrivateKeyFile relative to the
directory of domains.conf (always beside mox.conf).
"""

from __future__ import annotations

from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from mox.config import load


@pytest.fixture
def elsewhere(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """Run the test in a working directory unrelated to the config."""
    d = tmp_path / "elsewhere"
    d.mkdir()
    monkeypatch.chdir(d)
    return d


def test_relative_paths_resolve_against_the_config_directory(
    make_config_dir: Callable[..., Any], elsewhere: Path
) -> None:
    cd = make_config_dir()
    # Decoys at the same relative paths in the working directory must not be used.
    (elsewhere / "dkim").mkdir()
    (elsewhere / "dkim" / "2024a.example.com.pem").write_text("not a key\n")
    (elsewhere / "certs").mkdir()
    (elsewhere / "certs" / "mail.crt").write_text("not a cert\n")

    cfg = load.load_config(cd.mox_conf)
    sel = cfg.dynamic.Domains["example.com"].DKIM.Selectors["2024a"]
    assert sel.PrivateKeyFile == "dkim/2024a.example.com.pem"  # kept as written
    assert sel.Key is not None and sel.Algorithm == "ed25519"
    assert cfg.data_dir.resolve() == (cd.path.parent / "data").resolve()
    assert cfg.data_dir.is_absolute()
    assert cfg.config_dir == cd.path


def test_relative_path_to_mox_conf_is_made_absolute(
    make_config_dir: Callable[..., Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    cd = make_config_dir()
    monkeypatch.chdir(cd.path.parent)
    cfg = load.load_config("config/mox.conf")
    assert cfg.static_path.is_absolute() and cfg.dynamic_path.is_absolute()
    assert cfg.dynamic_path == cd.domains_conf
    # Moving away afterwards changes nothing: a reload still finds the DKIM key.
    monkeypatch.chdir(tmp_path)
    new = load.reload_dynamic(cfg)
    assert new.dynamic.Domains["example.com"].DKIM.Selectors["2024a"].Key is not None
    assert new.data_dir == cfg.data_dir


def test_paths_are_not_relative_to_the_working_directory(
    make_config_dir: Callable[..., Any], base_domains_conf: str, elsewhere: Path, ed25519_key: bytes
) -> None:
    # A key that exists only relative to the working directory is not found.
    (elsewhere / "cwdonly.pem").write_bytes(ed25519_key)
    cd = make_config_dir(domains_conf=base_domains_conf.replace("dkim/2024a.example.com.pem", "cwdonly.pem"))
    with pytest.raises(load.ConfigErrors) as exc:
        load.load_config(cd.mox_conf)
    (e,) = exc.value.errors
    assert e.path == "Domains.example.com.DKIM.Selectors.2024a.PrivateKeyFile"
    assert str(cd.path / "cwdonly.pem") in e.message


def test_absolute_paths_are_used_as_they_are(
    make_config_dir: Callable[..., Any],
    base_mox_conf: str,
    base_domains_conf: str,
    tmp_path: Path,
    elsewhere: Path,
    ed25519_key: bytes,
    localhost_keycert: tuple[bytes, bytes],
) -> None:
    keys_dir = tmp_path / "keys"
    keys_dir.mkdir()
    (keys_dir / "dkim.pem").write_bytes(ed25519_key)
    (keys_dir / "tls.crt").write_bytes(localhost_keycert[0])
    (keys_dir / "tls.key").write_bytes(localhost_keycert[1])
    cd = make_config_dir(
        base_mox_conf.replace("certs/mail.crt", str(keys_dir / "tls.crt")).replace(
            "certs/mail.key", str(keys_dir / "tls.key")
        ),
        base_domains_conf.replace("dkim/2024a.example.com.pem", str(keys_dir / "dkim.pem")),
    )
    (cd.path / "certs" / "mail.crt").unlink()
    cfg = load.load_config(cd.mox_conf)
    assert cfg.dynamic.Domains["example.com"].DKIM.Selectors["2024a"].Key is not None


def test_ca_and_dkim_files_of_upstream_localserve_resolve_from_elsewhere(
    localserve_dir: Path, elsewhere: Path
) -> None:
    # localhost.crt (TLS.CA.CertFiles and KeyCerts) and the DKIM key are bare file names.
    cfg = load.load_config(localserve_dir / "mox.conf")
    assert cfg.dynamic.Domains["localhost"].DKIM.Selectors["localserve"].Key is not None
    assert cfg.data_dir.resolve() == localserve_dir.resolve()
    assert (
        load.config_dir_path(cfg.static_path, cfg.static.AdminPasswordFile) == localserve_dir / "adminpasswd"
    )


def test_data_dir_forms(tmp_path: Path) -> None:
    conf = tmp_path / "config" / "mox.conf"
    assert load.config_dir_path(conf, ".") == tmp_path / "config" / "."
    assert load.config_dir_path(conf, "../data") == tmp_path / "config" / "../data"
    assert load.config_dir_path(conf, "/var/lib/mox") == Path("/var/lib/mox")
