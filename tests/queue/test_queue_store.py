"""The queue's storage and admin API: add (atomic, files, hold rules, suppression), list/filter, hold,
schedule, transport, requiretls, fail, drop, retired, orphan cleanup."""

from __future__ import annotations

import asyncio
import os
import time
from collections.abc import AsyncIterator
from pathlib import Path

import pytest
from queuehelpers import addr, make_config, message

from mox.queue import DSNOptions, Filter, HoldRule, NewRecipient, QueueError, RetiredFilter, Sort, Suppressed
from mox.queue.db import base_address
from mox.queue.queue import Queue, open_queue


@pytest.fixture
async def q(tmp_path: Path) -> AsyncIterator[Queue]:
    cfg = make_config(tmp_path, keep_retired="24h")
    queue = await open_queue(cfg.data_dir, lambda: cfg)
    yield queue
    await queue.close()


async def test_add_shares_file_and_base_id(q: Queue) -> None:
    data = message(subject="hi there")
    ids = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example"), addr("b@remote.example")], data, msg_prefix=b"X-Prefix: 1\r\n")
    assert len(ids) == 2
    msgs = await q.list_messages(Filter(), Sort(asc=True))
    assert [m.id for m in msgs] == ids
    assert {m.base_id for m in msgs} == {ids[0]}
    m = msgs[0]
    assert (m.subject, m.message_id, m.size, m.has8bit, m.sender_account) == ("hi there", "<m1@localhost>", len(data) + 13, False, "mox")
    assert m.sender_address == "mox@localhost" and m.recipient_domain == "remote.example"
    assert m.attempts == 0 and m.last_attempt is None and not m.hold
    # One file for both rows; dump gives prefix + file.
    files = [p for p in (q.data_dir / "queue").rglob("*") if p.is_file()]
    assert len(files) == 1 and files[0].name == str(ids[0])
    assert await q.read_message(ids[1]) == b"X-Prefix: 1\r\n" + data
    assert (q.data_dir / "queue.db").exists()


async def test_add_params_stored(q: Queue) -> None:
    until = time.time() + 3600
    (mid,) = await q.add(
        "mox", addr("mox@localhost"),
        [NewRecipient(addr("x@remote.example"), notify=("SUCCESS", "FAILURE"), orcpt_type="rfc822", orcpt="orig@remote.example")],
        "Subject: é\r\n\r\nbody\r\n".encode(), smtputf8=True, requiretls=False, next_attempt=until,
        future_release_request="for;3600", dsn_options=DSNOptions(envid="env-1", ret="HDRS"), is_dmarc_report=True,
        max_attempts=3, transport="",
    )  # fmt: skip
    m = await q.get(mid)
    assert m is not None
    assert m.has8bit and m.smtputf8 and m.requiretls is False and m.is_dmarc_report and m.max_attempts == 3
    assert m.next_attempt == pytest.approx(until) and m.future_release_request == "for;3600"
    assert (m.dsn_envid, m.dsn_ret, m.dsn_notify, m.dsn_orcpt) == ("env-1", "HDRS", ("SUCCESS", "FAILURE"), "orig@remote.example")
    assert m.subject == "é"
    with pytest.raises(QueueError, match="60 days"):
        await q.add("mox", None, [addr("x@remote.example")], b"a\r\n", next_attempt=time.time() + 61 * 86400)
    with pytest.raises(QueueError, match="at least one"):
        await q.add("mox", None, [], b"a\r\n")


async def test_null_sender(q: Queue) -> None:
    (mid,) = await q.add("", None, [addr("x@remote.example")], b"Subject: dsn\r\n\r\n")
    m = await q.get(mid)
    assert m is not None and m.sender() is None and m.sender_address == ""
    assert not m.notify_allows("FAILURE")


async def test_suppression_refuses_whole_add(q: Queue) -> None:
    await q.suppression_add("mox", addr("Bad.Guy+tag@remote.example"))
    assert base_address("Bad.Guy+tag", "remote.example") == "badguy@remote.example"
    with pytest.raises(Suppressed, match="badguy"):
        await q.add("mox", addr("mox@localhost"), [addr("ok@remote.example"), addr("badguy@remote.example")], message())
    assert await q.count() == 0
    assert not [p for p in (q.data_dir / "queue").rglob("*") if p.is_file()]
    # Other accounts are not affected; the list shows it; removal works.
    assert await q.add("other", addr("o@localhost"), [addr("badguy@remote.example")], message())
    assert await q.is_suppressed("mox", addr("BADGUY@remote.example"))
    (s,) = await q.suppression_list("mox")
    assert (s.account, s.base_address, s.manual) == ("mox", "badguy@remote.example", True)
    assert await q.suppression_lookup("", addr("bad.guy@remote.example")) is not None
    with pytest.raises(QueueError, match="already"):
        await q.suppression_add("mox", addr("badguy@remote.example"))
    await q.suppression_remove("mox", addr("badguy@remote.example"))
    with pytest.raises(QueueError, match="not on suppression list"):
        await q.suppression_remove("mox", addr("badguy@remote.example"))


async def test_hold_rules(q: Queue) -> None:
    (a,) = await q.add("mox", addr("mox@localhost"), [addr("x@hold.example")], message())
    rule = await q.holdrule_add(HoldRule(recipient_domain="hold.example"))
    assert (await q.get(a)).hold  # type: ignore[union-attr]
    (b, c) = await q.add("mox", addr("mox@localhost"), [addr("y@hold.example"), addr("y@other.example")], message())
    assert [(await q.get(i)).hold for i in (b, c)] == [True, False]  # type: ignore[union-attr]
    assert await q.holdrules() == [rule]
    await q.holdrule_remove(rule.id)
    with pytest.raises(QueueError, match="no hold rule"):
        await q.holdrule_remove(rule.id)
    # Existing holds stay (as upstream); new messages are not held.
    assert (await q.get(b)).hold  # type: ignore[union-attr]
    (d,) = await q.add("mox", addr("mox@localhost"), [addr("z@hold.example")], message())
    assert not (await q.get(d)).hold  # type: ignore[union-attr]
    # An empty rule holds everything.
    await q.holdrule_add(HoldRule())
    assert all(m.hold for m in await q.list_messages())


async def test_filters_and_admin_changes(q: Queue) -> None:
    ids = []
    for i, dom in enumerate(["a.example", "b.example", "a.example"]):
        ids += await q.add("mox" if i < 2 else "jan", addr(f"s{i}@localhost"), [addr(f"r{i}@{dom}")], message())
    assert [m.id for m in await q.list_messages(Filter(to="@a.example"), Sort(asc=True))] == [ids[0], ids[2]]
    assert [m.id for m in await q.list_messages(Filter(account="jan"))] == [ids[2]]
    assert [m.id for m in await q.list_messages(Filter(from_="s1@"))] == [ids[1]]
    assert [m.id for m in await q.list_messages(Filter(ids=[ids[1]]))] == [ids[1]]
    assert len(await q.list_messages(Filter(max=2))) == 2
    assert len(await q.list_messages(Filter(submitted="<now"))) == 3
    assert len(await q.list_messages(Filter(submitted=">1h"))) == 0
    assert len(await q.list_messages(Filter(next_attempt="<1m"))) == 3
    with pytest.raises(QueueError, match="must start with"):
        await q.list_messages(Filter(submitted="1h"))
    with pytest.raises(QueueError, match="duration"):
        await q.list_messages(Filter(submitted="<xyz"))

    assert await q.hold_set(Filter(to="@a.example"), True) == 2
    assert [m.id for m in await q.list_messages(Filter(hold=True), Sort(asc=True))] == [ids[0], ids[2]]
    assert await q.hold_set(Filter(ids=[ids[0]]), False) == 1

    before = (await q.get(ids[1])).next_attempt  # type: ignore[union-attr]
    assert await q.next_attempt_add(Filter(ids=[ids[1]]), 3600) == 1
    assert (await q.get(ids[1])).next_attempt == pytest.approx(before + 3600)  # type: ignore[union-attr]
    t = time.time() + 60
    assert await q.next_attempt_set(Filter(), t) == 3
    assert all(m.next_attempt == pytest.approx(t) for m in await q.list_messages())

    assert await q.requiretls_set(Filter(ids=[ids[0]]), True) == 1
    assert (await q.get(ids[0])).requiretls is True  # type: ignore[union-attr]
    with pytest.raises(QueueError, match="unknown transport"):
        await q.transport_set(Filter(), "nosuch")
    assert await q.transport_set(Filter(ids=[ids[0]]), "") == 1
    assert len(await q.list_messages(Filter(transport=""))) == 3


async def test_drop_and_fail_retire(q: Queue) -> None:
    a, b = await q.add("mox", addr("mox@localhost"), [addr("a@remote.example"), addr("b@remote.example")], message())
    (c,) = await q.add("mox", None, [addr("c@remote.example")], message())
    assert await q.drop(Filter(ids=[a])) == 1
    # The shared file stays while b refers to it.
    assert q.db.message_path(a).exists()
    assert await q.drop(Filter(ids=[b])) == 1
    assert not q.db.message_path(a).exists()
    # Fail of a null-sender message: no DSN, just retired.
    assert await q.fail(Filter(ids=[c])) == 1
    assert await q.count() == 0
    retired = await q.retired_list()
    assert sorted(r.id for r in retired) == [a, b, c]
    assert all(not r.success and r.last_result() and r.last_result().error == "delivery canceled by admin" for r in retired)  # type: ignore[union-attr]
    assert [r.id for r in await q.retired_list(RetiredFilter(to="c@"))] == [c]
    assert await q.drop(Filter(ids=[999])) == 0


async def test_orphans_removed_at_open(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    q = await open_queue(cfg.data_dir, lambda: cfg)
    (mid,) = await q.add("mox", None, [addr("a@remote.example")], message())
    await q.close()
    orphan = q.db.message_path(mid).parent / "12345"
    orphan.write_bytes(b"x")
    tmpfile = q.db.tmp / "leftover"
    tmpfile.write_bytes(b"x")
    q2 = await open_queue(cfg.data_dir, lambda: cfg)
    try:
        assert not orphan.exists() and not tmpfile.exists()
        assert q2.db.message_path(mid).exists()
        assert await q2.count() == 1
    finally:
        await q2.close()
    assert os.listdir(q.db.tmp) == []


async def test_group_commit_isolates_failures(q: Queue) -> None:
    await q.suppression_add("mox", addr("blocked@remote.example"))
    results = await asyncio.gather(
        *[q.add("mox", addr("mox@localhost"), [addr(f"r{i}@remote.example")], message(msgid=f"<{i}@x>")) for i in range(5)],
        q.add("mox", addr("mox@localhost"), [addr("blocked@remote.example")], message()),
        *[q.add("mox", addr("mox@localhost"), [addr(f"s{i}@remote.example")], message()) for i in range(5)],
        return_exceptions=True,
    )
    assert isinstance(results[5], Suppressed)
    assert all(isinstance(r, list) and len(r) == 1 for i, r in enumerate(results) if i != 5)
    assert await q.count() == 10
    files = [p for p in (q.data_dir / "queue").rglob("*") if p.is_file()]
    assert sorted(int(p.name) for p in files) == sorted(r[0] for i, r in enumerate(results) if i != 5)  # type: ignore[index]
