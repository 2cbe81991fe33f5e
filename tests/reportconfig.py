"""A local config with DMARC and TLSRPT reporting addresses, for the report tests (dmarcdb, tlsrptsend)."""

from __future__ import annotations

import atexit
import shutil
import tempfile
from pathlib import Path

from mox.config import model, sconf
from mox.config.example import LocalPorts, local_dynamic, local_static, write_local_config
from mox.config.load import Config, load_config, write_file_atomic

_template: Path | None = None


def report_config(root: Path, *, hostname: str = "localhost") -> Config:
    """mox@localhost with dmarc-reports@localhost (DMARC), tls-reports@localhost (TLSRPT)
    and host-tlsrpt@<hostname> (HostTLSRPT); domain localhost signs with DKIM, and so does the
    parent domain of another host name (a configured domain too, with the same reporting addresses)."""
    # Keys and certificates are made once per process (that takes most of a second), then copied.
    global _template
    if _template is None:
        _template = Path(tempfile.mkdtemp(prefix="moxreportcfg")) / "config"
        atexit.register(shutil.rmtree, _template.parent, True)
        write_local_config(_template.parent, ips=["127.0.0.1"])
    shutil.copytree(_template, root / "config")
    (root / "data").mkdir(exist_ok=True)
    path = root / "config" / "mox.conf"
    static = local_static(LocalPorts(), ["127.0.0.1"])
    static.Hostname = hostname
    static.HostTLSRPT = model.HostTLSRPT(Account="mox", Mailbox="TLSRPT", Localpart="host-tlsrpt")
    dyn = local_dynamic()
    dom = dyn.Domains["localhost"]
    dom.DMARC = model.DMARC(Localpart="dmarc-reports", Account="mox", Mailbox="DMARC")
    dom.TLSRPT = model.TLSRPT(Localpart="tls-reports", Account="mox", Mailbox="TLSRPT")
    if hostname != "localhost":
        # The host name's parent domain, signing with the same key (reports are DKIM-signed by it).
        dyn.Domains[hostname.split(".", 1)[1]] = model.Domain(
            DKIM=model.DKIM(
                Selectors={"localserve": model.Selector(PrivateKeyFile="dkim.localserve.privatekey.pkcs8.pem")}, Sign=["localserve"]
            ),
            DMARC=model.DMARC(Localpart="dmarc-reports", Account="mox", Mailbox="DMARC"),
            TLSRPT=model.TLSRPT(Localpart="tls-reports", Account="mox", Mailbox="TLSRPT"),
        )
    write_file_atomic(path, sconf.write(static, header=model.STATIC_HEADER).encode(), 0o660)
    write_file_atomic(path.parent / "domains.conf", sconf.write(dyn, header=model.DYNAMIC_HEADER).encode(), 0o660)
    return load_config(path)
