"""Which configured features are not built yet, to log once at start (DESIGN.md section 3).

Keep in step with the README's table of what works.
"""

from __future__ import annotations

from mox.config.load import Config
from mox.serve.listeners import WEB_SERVICES


def not_implemented_features(cfg: Config) -> list[str]:
    """Names of configured features whose implementation comes in a later version."""
    s, d = cfg.static, cfg.dynamic
    out: list[str] = []
    for name, lst in sorted(s.Listeners.items()):
        web = [
            svc
            for svc in (*WEB_SERVICES, "MetricsHTTP", "PprofHTTP")
            if getattr(lst, svc).Enabled
        ]
        if web:
            out.append(f"Listeners.{name}: {', '.join(web)} (ports are opened and answer 503)")
        if lst.SMTP.DNSBLs:
            out.append(f"Listeners.{name}.SMTP.DNSBLs")
    checks = [
        (s.CheckUpdates, "CheckUpdates"),
        (any(t.Socks is not None for t in s.Transports.values()), "Transports.*.Socks"),
        (any(wh.WebInternal is not None for wh in d.WebHandlers), "WebHandlers with WebInternal (matched requests answer 503)"),
        (bool(d.MonitorDNSBLs), "MonitorDNSBLs"),
        (any(a.JunkFilter for a in d.Accounts.values()), "Accounts.*.JunkFilter"),
        (any(a.OutgoingWebhook or a.IncomingWebhook for a in d.Accounts.values()), "Accounts.*.Webhooks"),
    ]
    out += [name for cond, name in checks if cond]
    return out
