"""The delivery loop with fake deliverers: batching, success, 4xx then success, 5xx, partial failure,
giving up, delay DSN, NOTIFY/RET/ENVID/ORCPT in DSNs, no DSN loops, report DSNs to the postmaster."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from queuehelpers import FakeDeliverer, addr, make_config, message, wait_for

from mox import dsn
from mox.config.load import Config
from mox.queue import DSNOptions, Filter, MessageSource, NewRecipient, Outcome, QueuedMsg
from mox.queue.queue import Queue, open_queue
from mox.store import Flags
from mox.store.deliver import open_config_account
from mox.store.model import MailboxNotFound


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def cfg(tmp_path: Path) -> Config:
    return make_config(tmp_path, keep_retired="24h")


@pytest.fixture
async def q(cfg: Config) -> AsyncIterator[Queue]:
    queue = await open_queue(cfg.data_dir, lambda: cfg, jitter=lambda: 0.0)
    yield queue
    await queue.close()


async def mailbox_messages(cfg: Config, mailbox: str, account: str = "mox") -> list[tuple[bytes, Flags]]:
    acc = await open_config_account(cfg, account)
    try:
        try:
            msgs = await acc.messages(mailbox)
        except MailboxNotFound:
            return []
        return [(acc.read_message(m), m.flags) for m in msgs]
    finally:
        await acc.close()


async def dsns(cfg: Config, mailbox: str = "Inbox", account: str = "mox") -> list[dsn.Message]:
    return [dsn.parse(data) for data, _ in await mailbox_messages(cfg, mailbox, account)]


async def test_success_one_transaction(q: Queue, cfg: Config) -> None:
    d = FakeDeliverer()
    q.start(d)
    data = message()
    ids = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example"), addr("b@REMOTE.example"), addr("c@other.example")], data, msg_prefix=b"DKIM-Signature: x\r\n")
    await wait_for(lambda: len(d.batches) == 2)
    await wait_for(lambda: not q._batches)
    assert sorted(map(sorted, d.batches)) == [ids[:2], ids[2:]]
    assert d.data[0] == b"DKIM-Signature: x\r\n" + data
    assert await q.count() == 0
    retired = await q.retired_list()
    assert sorted(r.id for r in retired) == ids and all(r.success and r.attempts == 1 for r in retired)
    assert retired[0].results[-1].success and retired[0].results[-1].error == ""
    assert not q.db.message_path(ids[0]).exists()
    # No NOTIFY: no success DSN.
    assert await dsns(cfg) == []


async def test_success_dsn_with_envid_orcpt(q: Queue, cfg: Config) -> None:
    q.start(FakeDeliverer(lambda m: Outcome.delivered(dsn.NameIP("mx.remote.example", "192.0.2.1"))))
    rcpt = NewRecipient(addr("a@remote.example"), notify=("SUCCESS",), orcpt_type="rfc822", orcpt="Alias@remote.example")
    await q.add("mox", addr("mox@localhost"), [rcpt], message(), dsn_options=DSNOptions(envid="ENV123", ret="HDRS"))
    await wait_until_dsns(q)
    (m,) = await dsns(cfg)
    assert m.original_envelope_id == "ENV123"
    (r,) = m.recipients
    assert (r.action, r.status, r.final_recipient, r.original_recipient) == (dsn.Action.DELIVERED, "2.0.0", "a@remote.example", "Alias@remote.example")
    assert r.remote_mta == dsn.NameIP("mx.remote.example", "192.0.2.1")
    assert m.to_addr == "mox@localhost" and m.from_addr == "postmaster@localhost" and m.references == "<m1@localhost>"
    assert m.original is not None and not m.original_full and b"hello" not in m.original and b"Subject: test" in m.original


async def wait_until_dsns(q: Queue, n: int = 0) -> None:
    """Wait until the queue holds n messages and is idle: DSNs are delivered before an outcome commits.

    (Polling the account meanwhile would open and close it while the queue delivers a DSN into it.)
    """
    await wait_until_count(q, n)


async def wait_until_count(q: Queue, n: int) -> None:
    async with asyncio.timeout(10):
        while await q.count() != n or q._batches:
            await asyncio.sleep(0.01)


async def test_temporary_then_success(cfg: Config) -> None:
    clock = Clock()
    q = await open_queue(cfg.data_dir, lambda: cfg, now=clock, jitter=lambda: 0.0)
    try:
        outcomes = [Outcome.temporary("try later", 451, "4.3.0", lines=["451 4.3.0 try later"]), Outcome.delivered()]
        d = FakeDeliverer(lambda m: outcomes[m.attempts - 1])
        q.start(d)
        (mid,) = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example")], message())
        await wait_for(lambda: len(d.batches) == 1)
        await wait_for(lambda: not q._batches)
        m = await q.get(mid)
        assert m is not None and m.attempts == 1 and m.last_attempt == clock.t
        assert m.next_attempt == clock.t + 450
        assert (m.results[-1].code, m.results[-1].secode, m.results[-1].error) == (451, "3.0", "try later")
        # Not due yet: nothing happens when kicked.
        q.kick()
        await asyncio.sleep(0.05)
        assert len(d.batches) == 1
        clock.t += 450
        q.kick()
        await wait_for(lambda: len(d.batches) == 2)
        await wait_for(lambda: not q._batches)
        assert await q.count() == 0
        (r,) = await q.retired_list()
        assert r.success and r.attempts == 2 and [x.success for x in r.results] == [False, True]
    finally:
        await q.close()


async def test_permanent_failure_dsn_and_suppression(q: Queue, cfg: Config) -> None:
    d = FakeDeliverer(lambda m: Outcome.permanent("no such user", 550, "5.1.1", dsn.NameIP("mx.remote.example"), ["550 5.1.1 no such user"]))
    q.start(d)
    data = message(body="secret body\r\n")
    await q.add("mox", addr("mox@localhost"), [addr("gone@remote.example")], data, dsn_options=DSNOptions(ret="FULL"))
    await wait_until_dsns(q)
    ((raw, flags),) = await mailbox_messages(cfg, "Inbox")
    assert raw.startswith(b"Return-Path: <>\r\n") and not flags & Flags.SEEN
    m = dsn.parse(raw)
    assert m.subject == "mail delivery failed"
    (r,) = m.recipients
    assert (r.action, r.status, r.diagnostic_code, r.remote_mta.name) == (dsn.Action.FAILED, "5.1.1", "550 5.1.1 no such user", "mx.remote.example")
    # RET=FULL: the whole message comes back.
    assert m.original_full and m.original is not None and b"secret body" in m.original
    assert "gone@remote.example" in m.text_body
    await wait_for(lambda: not q._batches)
    (ret,) = await q.retired_list()
    assert not ret.success and ret.results[-1].code == 550
    # Upstream: a 550 puts the address on the account's suppression list.
    assert await q.is_suppressed("mox", addr("gone@remote.example"))


async def test_partial_failure(q: Queue, cfg: Config) -> None:
    def outcome(m: QueuedMsg) -> Outcome:
        if m.recipient_localpart == "bad":
            return Outcome.permanent("rejected", 554, "5.7.1", lines=["554 5.7.1 rejected"])
        return Outcome.delivered()

    d = FakeDeliverer(outcome)
    q.start(d)
    ids = await q.add("mox", addr("mox@localhost"), [addr("good@remote.example"), addr("bad@remote.example")], message())
    await wait_until_dsns(q)
    await wait_for(lambda: not q._batches)
    assert d.batches == [ids]
    (m,) = await dsns(cfg)
    assert [r.final_recipient for r in m.recipients] == ["bad@remote.example"]
    retired = {r.id: r.success for r in await q.retired_list()}
    assert retired == {ids[0]: True, ids[1]: False}


async def test_give_up_after_max_attempts_and_delay_dsn(cfg: Config) -> None:
    clock = Clock()
    q = await open_queue(cfg.data_dir, lambda: cfg, now=clock, jitter=lambda: 0.0)
    try:
        d = FakeDeliverer(lambda m: Outcome.temporary("connection refused"))
        q.start(d)
        (mid,) = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example")], message())
        for n in range(1, 9):
            await wait_for(lambda n=n: len(d.batches) == n)  # type: ignore[misc]
            await wait_for(lambda: not q._batches)
            m = await q.get(mid)
            if n < 8:
                assert m is not None and m.attempts == n
                # 7.5 minutes, doubling.
                assert m.next_attempt - clock.t == 450 * 2 ** (n - 1)
                clock.t = m.next_attempt
                q.kick()
        assert await q.count() == 0
        got = await dsns(cfg)
        assert [x.subject for x in got] == ["mail delivery delayed", "mail delivery failed"]
        delay = got[0].recipients[0]
        assert delay.action == dsn.Action.DELAYED and delay.status == "4.0.0" and delay.will_retry_until is not None
        assert got[1].recipients[0].status == "5.0.0" and got[1].recipients[0].status_comment == "connection refused"
    finally:
        await q.close()


async def test_max_attempts_and_notify_never(q: Queue, cfg: Config) -> None:
    d = FakeDeliverer(lambda m: Outcome.temporary("later"))
    q.start(d)
    await q.add("mox", addr("mox@localhost"), [NewRecipient(addr("a@remote.example"), notify=("NEVER",))], message(), max_attempts=1)
    await wait_for(lambda: len(d.batches) == 1)
    await wait_for(lambda: not q._batches)
    assert await q.count() == 0
    (r,) = await q.retired_list()
    assert not r.success
    assert await dsns(cfg) == []


async def test_no_dsn_loops(q: Queue, cfg: Config) -> None:
    d = FakeDeliverer(lambda m: Outcome.permanent("no", 550, "5.0.0"))
    q.start(d)
    # A message from a non-local sender (no account): its DSN is queued with a null reverse-path.
    await q.add("", addr("someone@remote.example"), [addr("x@other.example")], message())
    await wait_for(lambda: len(d.batches) == 2)
    await wait_for(lambda: not q._batches)
    # The DSN itself failed too: nothing more is queued, no DSN about the DSN.
    await asyncio.sleep(0.05)
    assert len(d.batches) == 2
    assert await q.count() == 0
    assert await dsns(cfg) == []


async def test_dsn_queued_for_remote_sender_smtputf8(q: Queue, cfg: Config) -> None:
    seen: list[bytes] = []
    calls: list[QueuedMsg] = []

    async def deliver(msgs: list[QueuedMsg], source: MessageSource) -> list[Outcome]:
        calls.extend(msgs)
        seen.append(await source.read())
        if msgs[0].sender() is None:
            return [Outcome.delivered()]
        return [Outcome.permanent("bad", 550, "5.1.1")]

    q.start(deliver)
    await q.add("", addr("sender@remote.example"), [addr("ü@other.example")], "Subject: ä\r\n\r\nx\r\n".encode(), smtputf8=True)
    await wait_for(lambda: len(calls) == 2)
    await wait_for(lambda: not q._batches)
    dsnmsg = calls[1]
    assert dsnmsg.sender() is None and dsnmsg.recipient_address == "sender@remote.example" and dsnmsg.smtputf8
    parsed = dsn.parse(seen[1])
    assert parsed.is_global and parsed.recipients[0].final_recipient == "ü@other.example"
    assert b"message/global-delivery-status" in seen[1]


@pytest.mark.parametrize("kind,mailbox", [("dmarc", "Inbox/dmarc"), ("tls", "Inbox/tlsrpt")])
async def test_report_dsn_to_postmaster_submailbox(q: Queue, cfg: Config, kind: str, mailbox: str) -> None:
    q.start(FakeDeliverer(lambda m: Outcome.permanent("no", 550, "5.1.1")))
    await q.add("mox", addr("postmaster@localhost"), [addr("reports@remote.example")], message(),
                is_dmarc_report=kind == "dmarc", is_tls_report=kind == "tls")  # fmt: skip
    await wait_until_dsns(q)
    await wait_for(lambda: not q._batches)
    ((raw, flags),) = await mailbox_messages(cfg, mailbox)
    assert flags & Flags.SEEN
    assert dsn.parse(raw).recipients[0].action == dsn.Action.FAILED
    # Quietly: nothing in the Inbox itself, no suppression entry for a report address... only the submailbox.
    assert await mailbox_messages(cfg, "Inbox") == []


async def test_suppressed_at_delivery(q: Queue, cfg: Config) -> None:
    d = FakeDeliverer()
    (mid,) = await q.add("mox", addr("mox@localhost"), [addr("later@remote.example")], message())
    await q.suppression_add("mox", addr("later@remote.example"))
    q.start(d)
    await wait_until_dsns(q)
    await wait_for(lambda: not q._batches)
    assert d.batches == []
    (r,) = await q.retired_list()
    assert r.id == mid and "suppression list" in r.results[-1].error


async def test_deliverer_error_is_temporary(q: Queue) -> None:
    async def broken(msgs: list[QueuedMsg], source: MessageSource) -> list[Outcome]:
        raise RuntimeError("boom")

    q.start(broken)
    (mid,) = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example")], message())
    async with asyncio.timeout(10):
        while True:
            m = await q.get(mid)
            assert m is not None
            if m.attempts == 1 and m.results[-1].error != "delivering...":
                break
            await asyncio.sleep(0.01)
    assert "boom" in m.results[-1].error and m.next_attempt > m.last_attempt  # type: ignore[operator]


async def test_hold_and_concurrency_limits(cfg: Config) -> None:
    q = await open_queue(cfg.data_dir, lambda: cfg, jitter=lambda: 0.0, max_concurrent=3, max_per_domain=1)
    try:
        active: dict[str, int] = {}
        peak: dict[str, int] = {}
        total_peak = [0]
        gate = asyncio.Event()

        async def slow(msgs: list[QueuedMsg], source: MessageSource) -> list[Outcome]:
            dom = msgs[0].recipient_domain
            active[dom] = active.get(dom, 0) + 1
            peak[dom] = max(peak.get(dom, 0), active[dom])
            total_peak[0] = max(total_peak[0], sum(active.values()))
            await gate.wait()
            active[dom] -= 1
            return [Outcome.delivered() for _ in msgs]

        held = await q.add("mox", addr("mox@localhost"), [addr("h@held.example")], message())
        await q.hold_set(Filter(ids=held), True)
        for i in range(4):
            for dom in ("a.example", "b.example", "c.example", "d.example"):
                await q.add("mox", addr("mox@localhost"), [addr(f"r{i}@{dom}")], message(msgid=f"<{i}{dom}>"))
        q.start(slow)
        await wait_for(lambda: sum(active.values()) == 3)
        gate.set()
        await wait_until_count(q, 1)
        assert max(peak.values()) == 1 and total_peak[0] == 3
        # The held message was never attempted.
        m = await q.get(held[0])
        assert m is not None and m.attempts == 0
        # Unhold: delivered at once.
        await q.hold_set(Filter(ids=held), False)
        await wait_until_count(q, 0)
    finally:
        await q.close()



async def test_local_permanent_failure_not_suppressed(q: Queue, cfg: Config) -> None:
    # A failure without a remote answer (e.g. the domain does not exist) fails the message but does not
    # put the address on the suppression list.
    q.start(FakeDeliverer(lambda m: Outcome.permanent("recipient domain does not exist", 550, "5.1.2")))
    await q.add("mox", addr("mox@localhost"), [addr("x@nxdomain.example")], message())
    await wait_until_dsns(q)
    await wait_until_count(q, 0)
    assert not await q.is_suppressed("mox", addr("x@nxdomain.example"))


async def test_disabled_sender_domain_is_temporary(q: Queue, cfg: Config) -> None:
    cfg.dynamic.Domains["localhost"].Disabled = True
    d = FakeDeliverer()
    q.start(d)
    (mid,) = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example")], message())
    async with asyncio.timeout(10):
        while (m := await q.get(mid)) is not None and (m.attempts == 0 or m.results[-1].error == "delivering..."):
            await asyncio.sleep(0.01)
    assert m is not None and m.results[-1].error == "domain of sender temporarily disabled"
    assert d.batches == []
