"""The directory localserve writes: upstream's layout and settings, a working account password."""

from __future__ import annotations

from pathlib import Path

from mox.config import model, sconf
from mox.config.example import LocalPorts
from mox.localserve import ADMIN_PASSWORD, banner, default_dir, write_config

UPSTREAM = Path(__file__).resolve().parents[3] / "shared" / "upstream-config"


def _set_fields(obj: object, prefix: str = "") -> set[str]:
    """Dotted names of the fields the sconf writer emits (non-default), for comparing shapes."""
    text = sconf.write(obj)
    out: set[str] = set()
    stack: list[str] = []
    for line in text.splitlines():
        if not line.strip() or line.lstrip().startswith("#") or line.lstrip().startswith("-"):
            continue
        depth = len(line) - len(line.lstrip("\t"))
        key = line.strip().split(":", 1)[0]
        del stack[depth:]
        stack.append(key)
        out.add(".".join(stack))
    return out


async def test_write_config_matches_upstream_layout(tmp_path: Path) -> None:
    root = tmp_path / "ls"
    cfg = await write_config(root, ports=LocalPorts())
    for name in (
        "mox.conf",
        "domains.conf",
        "localhost.crt",
        "localhost.key",
        "adminpasswd",
        "dkim.localserve.privatekey.pkcs8.pem",
    ):
        assert (root / name).is_file(), name
    assert cfg.data_dir.resolve() == root.resolve()
    up_static, _ = sconf.parse(model.Static, (UPSTREAM / "localserve-mox.conf").read_text(), "mox.conf")
    up_dyn, _ = sconf.parse(model.Dynamic, (UPSTREAM / "localserve-domains.conf").read_text(), "domains.conf")
    assert _set_fields(cfg.static) == _set_fields(up_static)
    assert _set_fields(cfg.dynamic) == _set_fields(up_dyn)
    lst = cfg.static.Listeners["local"]
    assert (lst.SMTP.Port, lst.Submission.Port, lst.Submissions.Port, lst.IMAP.Port, lst.IMAPS.Port) == (
        1025,
        1587,
        1465,
        1143,
        1993,
    )
    assert (lst.AccountHTTP.Port, lst.AccountHTTPS.Port, lst.MetricsHTTP.Port) == (1080, 1443, 1081)
    assert lst.IPs == ["127.0.0.1", "::1"]

    from mox.config.keys import check_admin_password
    from mox.store import close_all_accounts
    from mox.store.auth import password_secrets

    assert check_admin_password((root / "adminpasswd").read_bytes(), ADMIN_PASSWORD)
    secrets = await password_secrets(cfg, "mox")
    await close_all_accounts()
    assert secrets is not None

    text = banner(cfg, root, existing=False)
    assert "imap://mox%40localhost:moxmoxmox@localhost:1143" in text
    assert "smtp://localhost:1025" in text
    assert "serving from new directory" in text


async def test_ip_flag(tmp_path: Path) -> None:
    cfg = await write_config(tmp_path / "ls", ip="127.0.0.2")
    assert cfg.static.Listeners["local"].IPs == ["127.0.0.2"]
    assert "smtp://127.0.0.2:1025" in banner(cfg, tmp_path / "ls", existing=True)


def test_default_dir() -> None:
    assert default_dir({"XDG_CONFIG_HOME": "/x", "HOME": "/h"}) == Path("/x/mox-localserve")
    assert default_dir({"HOME": "/h"}) == Path("/h/.config/mox-localserve")
    assert default_dir({}) == Path("mox-localserve")
