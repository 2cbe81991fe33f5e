"""Shared helpers of the queue tests: a loaded local config, a fake deliverer, test messages."""

from __future__ import annotations

import asyncio
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.config.sconf import Duration
from mox.dns.domain import parse_domain
from mox.queue import MessageSource, Outcome, QueuedMsg
from mox.smtp.path import Path as SMTPPath

_TEMPLATE: list[Path] = []


def make_config(root: Path, keep_retired: str = "") -> Config:
    """A loaded local config under root (keys made once per test session and copied)."""
    if not _TEMPLATE:
        t = Path(tempfile.mkdtemp(prefix="queuecfg-"))
        write_local_config(t, ips=["127.0.0.1"])
        _TEMPLATE.append(t)
    (root / "config").mkdir(parents=True, exist_ok=True)
    for f in (_TEMPLATE[0] / "config").iterdir():
        if f.suffix != ".conf":
            shutil.copy2(f, root / "config" / f.name)
    cfg = load_config(write_local_config(root, ips=["127.0.0.1"]))
    if keep_retired:
        from mox.config.sconf import parse_duration

        cfg.dynamic.Accounts["mox"].KeepRetiredMessagePeriod = Duration(parse_duration(keep_retired))
    return cfg


def addr(s: str) -> SMTPPath:
    lp, dom = s.rsplit("@", 1)
    return SMTPPath(lp, parse_domain(dom))


def message(subject: str = "test", body: str = "hello\r\n", msgid: str = "<m1@localhost>") -> bytes:
    return (
        f"From: <mox@localhost>\r\nTo: <rcpt@remote.example>\r\nSubject: {subject}\r\nMessage-ID: {msgid}\r\n\r\n{body}"
    ).encode()


class FakeDeliverer:
    """Records batches; outcome(msg, attempt_of_msg) decides each result (default: delivered)."""

    def __init__(self, outcome: Callable[[QueuedMsg], Outcome] | None = None) -> None:
        self.outcome = outcome or (lambda m: Outcome.delivered())
        self.batches: list[list[int]] = []
        self.data: list[bytes] = []
        self.event = asyncio.Event()

    async def __call__(self, msgs: list[QueuedMsg], message: MessageSource) -> list[Outcome]:
        self.batches.append([m.id for m in msgs])
        self.data.append(await message.read())
        self.event.set()
        return [self.outcome(m) for m in msgs]


async def wait_for(cond: Callable[[], object], timeout: float = 10.0) -> None:
    """Poll cond (cheap, in-process) until true."""
    async with asyncio.timeout(timeout):
        while not cond():
            await asyncio.sleep(0.005)
