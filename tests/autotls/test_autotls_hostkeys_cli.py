"""mox config ensureacmehostprivatekeys: host keys for listeners with ACME."""

from __future__ import annotations

from pathlib import Path

import pytest

from mox.autotls import certs
from mox.cli.main import main
from mox.config import model, sconf
from mox.config.example import write_local_config
from mox.config.load import parse_static


def _acme_conf(tmp_path: Path) -> Path:
    conf = write_local_config(tmp_path)
    static, _ = parse_static(conf)
    static.ACME = {"le": model.ACME(DirectoryURL="https://acme.example/dir", ContactEmail="admin@localhost")}
    static.Listeners["local"].TLS = model.ListenerTLS(ACME="le")
    conf.write_text(sconf.write(static, header=model.STATIC_HEADER))
    return conf


def test_creates_keys_and_reuses_cached(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    conf = _acme_conf(tmp_path)
    # A certificate key already in the ACME cache is kept, so its TLSA record stays valid.
    cached = certs.generate_key("ecdsa")
    cache = tmp_path / "data" / "acme" / "keycerts" / "le"
    cache.mkdir(parents=True)
    (cache / "localhost").write_bytes(certs.key_pem(cached))
    assert main(["-config", str(conf), "config", "ensureacmehostprivatekeys"]) == 0
    out = capsys.readouterr().out
    files = sorted((tmp_path / "config" / "hostkeys").iterdir())
    assert len(files) == 2
    kinds = {certs.key_type(certs.load_key(f.read_bytes())): f for f in files}
    assert set(kinds) == {"rsa", "ecdsa"}
    assert certs.key_pem(certs.load_key(kinds["ecdsa"].read_bytes())) == certs.key_pem(cached)
    assert "HostPrivateKeyFiles:" in out and "hostkeys/localhost." in out

    # With the keys configured, nothing more is created.
    static, _ = parse_static(conf)
    tls = static.Listeners["local"].TLS
    assert tls is not None
    tls.HostPrivateKeyFiles = [f"hostkeys/{f.name}" for f in files]
    conf.write_text(sconf.write(static, header=model.STATIC_HEADER))
    assert main(["-config", str(conf), "config", "ensureacmehostprivatekeys"]) == 0
    assert capsys.readouterr().out == ""
    assert len(list((tmp_path / "config" / "hostkeys").iterdir())) == 2
