"""Sending reports now (the ctl commands) into the real queue, and the serve loops' start/stop."""

from __future__ import annotations

import asyncio
import datetime
from dataclasses import dataclass
from pathlib import Path

import pytest
from reportconfig import report_config

from mox import dkim, tlsrpt, tlsrptdb
from mox.config.load import Config
from mox.ctl.server import CtlCommandError
from mox.dmarcdb import Evaluation, EvaluationDB
from mox.dns import MockResolver
from mox.queue import Queue, open_queue
from mox.tlsrptsend import service

END = datetime.datetime(2026, 3, 3, tzinfo=datetime.UTC).timestamp()


@dataclass
class _Server:
    cfg: Config
    queue: Queue | None = None


def _resolver(cfg: Config) -> MockResolver:
    sel = cfg.dynamic.Domains["localhost"].DKIM.Selectors["localserve"]
    return MockResolver(
        txt={
            "_dmarc.example.org": ["v=DMARC1; p=reject; rua=mailto:dmarc@example.org"],
            "_smtp._tls.example.com": ["v=TLSRPTv1; rua=mailto:tls@example.com"],
            "localserve._domainkey.moxtest.example": [dkim.txt_record(sel.Key)],
        }
    )


async def test_tlsrptsend_send_now_into_queue(tmp_path: Path) -> None:
    cfg = report_config(tmp_path, hostname="mail.moxtest.example")
    q = await open_queue(cfg.data_dir, lambda: cfg)
    try:
        evdb = await EvaluationDB.open(cfg.data_dir / "dmarceval.db")
        await evdb.add(Evaluation("example.org", evaluated=END - 100, source_ip="192.0.2.1", header_from="example.org", policy_published={"domain": "example.org", "p": "reject"}))
        await evdb.close()
        res = await service.dmarc_send_now(cfg, END, resolver=_resolver(cfg))
        assert [(r["domain"], r["queued"]) for r in res] == [("example.org", ["dmarc@example.org"])]

        db = await tlsrptdb.open_data_dir(cfg.data_dir)
        r = tlsrpt.Result(tlsrpt.ResultPolicy.no_policy("example.com"))
        r.add(0, 1, tlsrpt.FailureDetails(tlsrpt.ResultType.STARTTLS_NOT_SUPPORTED, 1, receiving_mx_hostname="mx.example.com"))
        await db.add_results([tlsrptdb.new_result("example.com", "example.com", is_host=False, results=[r], now=END - 3600)])
        res = await service.tlsrpt_send_now(cfg, END, resolver=_resolver(cfg))
        assert [(x["policy_domain"], x["queued"]) for x in res] == [("example.com", ["tls@example.com"])]
        assert res[0]["report"]["policies"][0]["summary"]["total-failure-session-count"] == 1

        msgs = sorted(await q.list_messages(), key=lambda m: m.id)
        assert [(m.recipient_localpart, m.recipient_domain, m.is_dmarc_report, m.is_tls_report, m.requiretls, m.max_attempts, m.sender_account) for m in msgs] == [
            ("dmarc", "example.org", True, False, None, 5, "mox"),
            ("tls", "example.com", False, True, False, 5, "mox"),
        ]
        assert all((m.sender_localpart, m.sender_domain) == ("postmaster", "mail.moxtest.example") for m in msgs)
        data = await q.read_message(msgs[1].id)
        assert b"TLS-Report-Domain: example.com" in data and data.startswith(b"DKIM-Signature:")
    finally:
        await q.close()
        await tlsrptdb.close_all()


async def test_tlsrptsend_ctl_commands(tmp_path: Path) -> None:
    cfg = report_config(tmp_path)
    server = _Server(cfg)
    try:
        # No evaluations/results: nothing to do (and the empty test DNS answers nothing).
        assert await service.ctl_dmarc_sendreports(server, None, ["2026-03-02T13:00:00Z"]) == []  # type: ignore[arg-type]
        assert await service.ctl_tlsrpt_sendreports(server, None, ["2026-03-02"]) == []  # type: ignore[arg-type]
        with pytest.raises(CtlCommandError, match="invalid end"):
            await service.ctl_dmarc_sendreports(server, None, ["yesterday"])  # type: ignore[arg-type]
        with pytest.raises(CtlCommandError, match="invalid day"):
            await service.ctl_tlsrpt_sendreports(server, None, ["20260302"])  # type: ignore[arg-type]
        with pytest.raises(CtlCommandError, match="usage"):
            await service.ctl_tlsrpt_sendreports(server, None, ["a", "b"])  # type: ignore[arg-type]
    finally:
        await tlsrptdb.close_all()


async def test_tlsrptsend_start_and_stop_reporters(tmp_path: Path) -> None:
    cfg = report_config(tmp_path)
    cfg.static.NoOutgoingTLSReports = True
    rep = await service.start_reporters(lambda: cfg, cfg.data_dir)
    try:
        await asyncio.sleep(0.05)
        assert len(rep.tasks) == 2 and not any(t.done() for t in rep.tasks)
    finally:
        await rep.close()
        await tlsrptdb.close_all()
    assert rep.tasks == [] and rep.evaldb is None
