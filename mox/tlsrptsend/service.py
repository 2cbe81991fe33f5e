"""Running the report senders in ``mox serve``, and the ctl commands that send reports now.

- :func:`start_reporters` starts the hourly DMARC and daily TLS report loops
  (unless disabled in mox.conf); ``await reporters.close()`` at shutdown.
- ctl ``dmarc sendreports [end]`` and ``tlsrpt sendreports [day]`` run one
  round immediately for a given period (tests, operators), queueing through
  the server's queue, and answer with what was done per domain.
"""

from __future__ import annotations

import asyncio
import contextlib
import datetime
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from mox import mlog, tlsrptdb
from mox.ctl.server import CtlCommandError
from mox.dmarcdb import EvaluationDB
from mox.dmarcdb.send import DMARCReporter
from mox.serve.ctlregistry import ctl_command
from mox.tlsrptsend.send import TLSReporter, midnight_utc

if TYPE_CHECKING:
    from mox.config.load import Config
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server

log = mlog.new("tlsrptsend")


@dataclass
class Reporters:
    """The running report loops and their databases."""

    tasks: list[asyncio.Task[None]] = field(default_factory=list)
    evaldb: EvaluationDB | None = None

    async def close(self) -> None:
        for t in self.tasks:
            t.cancel()
        for t in self.tasks:
            with contextlib.suppress(asyncio.CancelledError):
                await t
        self.tasks.clear()
        if self.evaldb is not None:
            await self.evaldb.close()
            self.evaldb = None


async def start_reporters(config: Callable[[], Config], data_dir: Path) -> Reporters:
    """Start the DMARC (hourly) and TLS (daily) report loops, honouring
    NoOutgoingDMARCReports and NoOutgoingTLSReports (checked at each round)."""
    r = Reporters()
    r.evaldb = await EvaluationDB.open(data_dir / "dmarceval.db")
    dmarc_rep = DMARCReporter(config, r.evaldb)
    tls_rep = TLSReporter(config, await tlsrptdb.open_data_dir(data_dir))
    r.tasks.append(asyncio.create_task(dmarc_rep.run_forever(), name="dmarc reports"))
    r.tasks.append(asyncio.create_task(tls_rep.run_forever(), name="tls reports"))
    return r


def _parse_time(s: str, what: str) -> float:
    """A Unix time, or an RFC 3339 date-time / yyyy-mm-dd (UTC when without zone)."""
    try:
        return float(int(s))
    except ValueError:
        pass
    try:
        t = datetime.datetime.fromisoformat(s.replace("z", "Z"))
    except ValueError:
        raise CtlCommandError(f"invalid {what} {s!r}: expected unix time or RFC 3339 date-time") from None
    if t.tzinfo is None:
        t = t.replace(tzinfo=datetime.UTC)
    return t.timestamp()


async def dmarc_send_now(cfg: Config, end: float | None = None, *, evaldb: EvaluationDB | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Send the DMARC reports for the hour ending at ``end`` (default: the last whole hour)."""
    e = float(int(time.time()) // 3600 * 3600) if end is None else end
    db = evaldb or await EvaluationDB.open(cfg.data_dir / "dmarceval.db")
    try:
        rep = DMARCReporter(lambda: cfg, db, **kwargs)
        return [asdict(x) for x in await rep.send_reports(e)]
    finally:
        if evaldb is None:
            await db.close()


async def tlsrpt_send_now(cfg: Config, end: float | None = None, **kwargs: Any) -> list[dict[str, Any]]:
    """Send the TLS reports for the UTC day ending at ``end`` (default: yesterday)."""
    e = midnight_utc(time.time()) if end is None else midnight_utc(end)
    rep = TLSReporter(lambda: cfg, await tlsrptdb.open_data_dir(cfg.data_dir), **kwargs)
    out = []
    for x in await rep.send_reports(e):
        d = asdict(x)
        d["report"] = x.report.to_json() if x.report is not None else None
        out.append(d)
    return out


@ctl_command("dmarc sendreports")
async def ctl_dmarc_sendreports(server: Server, conn: CtlConn, args: list[str]) -> list[dict[str, Any]]:
    """args: [end]: end of the reporting hour (Unix time or RFC 3339), default the last whole hour."""
    if len(args) > 1:
        raise CtlCommandError("usage: dmarc sendreports [end]")
    end = _parse_time(args[0], "end") if args else None
    return await dmarc_send_now(server.cfg, end)


@ctl_command("tlsrpt sendreports")
async def ctl_tlsrpt_sendreports(server: Server, conn: CtlConn, args: list[str]) -> list[dict[str, Any]]:
    """args: [day]: the UTC day to report (yyyy-mm-dd), default yesterday."""
    if len(args) > 1:
        raise CtlCommandError("usage: tlsrpt sendreports [day]")
    end = None
    if args:
        try:
            day = datetime.datetime.strptime(args[0], "%Y-%m-%d").replace(tzinfo=datetime.UTC)
        except ValueError:
            raise CtlCommandError(f"invalid day {args[0]!r}: expected yyyy-mm-dd") from None
        end = day.timestamp() + 86400
    # The queue's deliverer buffers TLS results for a few seconds: write them first, so the
    # report covers every delivery made before the command.
    from mox.queue.remote import RemoteDeliverer

    deliverer = server.queue.deliverer if server.queue is not None else None
    if isinstance(deliverer, RemoteDeliverer):
        await deliverer.flush_results()
    return await tlsrpt_send_now(server.cfg, end)
