"""The MTA-STS policy cache: hits, id changes, expiry, failed refreshes, backoff, removal of mode none."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from mox import mtasts
from mox.dns import Domain, MockResolver, Resolver
from mox.mtasts import FetchOptions, Mode, Policy, parse_policy
from mox.mtastsdb import BACKOFF_SECONDS, REFRESH_AFTER, UNUSED_EXPIRY, PolicyDB

DOMAIN = "example.org"
ENFORCE = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n"
TESTING = "version: STSv1\nmode: testing\nmx: *.example.org\nmax_age: 3600\n"
NONE = "version: STSv1\nmode: none\nmax_age: 86400\n"


@dataclass
class FakeFetch:
    """Serves a policy text per domain, or raises a configured error; counts fetches."""

    texts: dict[str, str] = field(default_factory=dict)
    errors: dict[str, mtasts.MTASTSError] = field(default_factory=dict)
    calls: list[str] = field(default_factory=list)

    async def __call__(self, resolver: Resolver, domain: Domain, opts: FetchOptions | None) -> tuple[Policy, str]:
        self.calls.append(domain.ascii)
        await asyncio.sleep(0)
        if domain.ascii in self.errors:
            raise self.errors[domain.ascii]
        text = self.texts[domain.ascii]
        return parse_policy(text), text


class Clock:
    def __init__(self) -> None:
        self.t = 1_800_000_000.0

    def __call__(self) -> float:
        return self.t


@pytest.fixture
def clock() -> Clock:
    return Clock()


@pytest.fixture
def fetch() -> FakeFetch:
    return FakeFetch(texts={DOMAIN: ENFORCE})


@pytest.fixture
async def db(tmp_path: Path, fetch: FakeFetch, clock: Clock) -> AsyncIterator[PolicyDB]:
    d = await PolicyDB.open(tmp_path / "data" / "mtasts.db", fetch=fetch, now=clock)
    yield d
    await d.close()


def _resolver(record: str | None = "v=STSv1; id=1") -> MockResolver:
    r = MockResolver()
    if record is not None:
        r.txt["_mta-sts." + DOMAIN] = [record]
    return r


async def test_fetch_then_cache_hit(db: PolicyDB, fetch: FakeFetch) -> None:
    r = _resolver()
    res = await db.get(r, DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.ENFORCE and res.fresh
    assert (res.policy_type, res.record_id, res.result_type) == ("sts", "1", "")
    assert res.policy_strings == ENFORCE.splitlines() and res.mx_hosts == ["mx.example.org"]
    res = await db.get(r, DOMAIN)
    assert res.policy is not None and res.fresh and fetch.calls == [DOMAIN]
    # The TXT record is checked on every use.
    assert r.queries.count(("TXT", "_mta-sts.example.org")) == 2
    [row] = await db.records()
    assert (row.domain, row.mode, row.record_id, row.backoff) == (DOMAIN, "enforce", "1", False)


async def test_no_record(db: PolicyDB, fetch: FakeFetch) -> None:
    res = await db.get(_resolver(None), DOMAIN)
    assert res.policy is None and res.policy_type == "no-policy-found" and res.result_type == ""
    assert fetch.calls == [] and await db.records() == []


async def test_id_change_refetches(db: PolicyDB, fetch: FakeFetch) -> None:
    await db.get(_resolver(), DOMAIN)
    fetch.texts[DOMAIN] = TESTING
    res = await db.get(_resolver("v=STSv1; id=2"), DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.TESTING and res.fresh and res.record_id == "2"
    assert len(fetch.calls) == 2
    [row] = await db.records()
    assert row.record_id == "2" and row.max_age == 3600


async def test_refetch_failure_keeps_cached(db: PolicyDB, fetch: FakeFetch) -> None:
    await db.get(_resolver(), DOMAIN)
    fetch.errors[DOMAIN] = mtasts.PolicySyntaxError("bad policy")
    res = await db.get(_resolver("v=STSv1; id=2"), DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.ENFORCE and not res.fresh
    assert res.result_type == "sts-policy-invalid"
    assert res.reason == "policy-syntax-error+fallback-to-cached-policy"
    # A failing TXT lookup also keeps the cached policy.
    r = _resolver()
    r.fail["_mta-sts." + DOMAIN] = "temporary"
    res = await db.get(r, DOMAIN)
    assert res.policy is not None and not res.fresh and res.result_type == "sts-policy-fetch-error"
    # As does a removed TXT record for a non-none policy (possible downgrade attack).
    res = await db.get(_resolver(None), DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.ENFORCE and not res.fresh


async def test_expiry(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    await db.get(_resolver(), DOMAIN)
    clock.t += 86400 + 1
    # Expired: fetched again even though the id is unchanged.
    fetch.errors[DOMAIN] = mtasts.PolicyFetchError("down")
    res = await db.get(_resolver(), DOMAIN)
    assert res.policy is None and res.result_type == "sts-policy-fetch-error" and len(fetch.calls) == 2


async def test_backoff_after_failed_fetch(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    fetch.errors[DOMAIN] = mtasts.WebPKIError("self-signed")
    res = await db.get(_resolver(), DOMAIN)
    assert res.policy is None and res.result_type == "sts-webpki-invalid"
    res = await db.get(_resolver(), DOMAIN)
    assert res.reason == "back-off-after-recent-fetch-error" and len(fetch.calls) == 1
    clock.t += BACKOFF_SECONDS + 1
    del fetch.errors[DOMAIN]
    res = await db.get(_resolver(), DOMAIN)
    assert res.policy is not None and len(fetch.calls) == 2


async def test_temporary_dns_error_without_cache(db: PolicyDB) -> None:
    r = _resolver()
    r.fail["_mta-sts." + DOMAIN] = "temporary"
    res = await db.get(r, DOMAIN)
    assert res.policy is None and res.temporary_error and res.result_type == "sts-policy-fetch-error"
    res = await db.get(_resolver("v=STSv1; id=1; id"), DOMAIN)
    assert res.policy is None and not res.temporary_error and res.reason == "record-syntax-error"


async def test_concurrent_gets_fetch_once(db: PolicyDB, fetch: FakeFetch) -> None:
    results = await asyncio.gather(*(db.get(_resolver(), DOMAIN) for _ in range(5)))
    assert all(r.policy is not None for r in results) and fetch.calls == [DOMAIN]


async def test_mode_none_removed_when_record_gone(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    fetch.texts[DOMAIN] = NONE
    res = await db.get(_resolver(), DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.NONE and res.policy_type == "no-policy-found"
    # The refresher removes it once the TXT record is gone (NXDOMAIN).
    clock.t += REFRESH_AFTER + 1
    assert await db.refresh_once(_resolver(None)) == 1
    assert await db.records() == []


async def test_mode_none_removed_on_use(db: PolicyDB, fetch: FakeFetch) -> None:
    fetch.texts[DOMAIN] = NONE
    await db.get(_resolver(), DOMAIN)
    res = await db.get(_resolver(None), DOMAIN)
    assert res.policy is None and res.policy_type == "no-policy-found" and await db.records() == []


async def test_refresh_keeps_enforce_until_expiry(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    await db.get(_resolver(), DOMAIN)
    clock.t += REFRESH_AFTER + 1
    fetch.errors[DOMAIN] = mtasts.PolicyFetchError("down")
    assert await db.refresh_once(_resolver(None)) == 1
    [row] = await db.records()
    assert row.mode == "enforce" and row.valid_end == clock.t - REFRESH_AFTER - 1 + 86400  # not extended
    res = await db.get(_resolver(None), DOMAIN)
    assert res.policy is not None and res.policy.mode == Mode.ENFORCE
    # Once expired, it is gone for delivery (the refetch fails too).
    clock.t = row.valid_end + 1
    res = await db.get(_resolver(), DOMAIN)
    assert res.policy is None and res.result_type == "sts-policy-fetch-error"


async def test_refresh_keeps_none_on_dns_failure(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    fetch.texts[DOMAIN] = NONE
    await db.get(_resolver(), DOMAIN)
    clock.t += REFRESH_AFTER + 1
    r = _resolver()
    r.fail["_mta-sts." + DOMAIN] = "temporary"
    assert await db.refresh_once(r) == 1
    [row] = await db.records()
    assert row.mode == "none" and len(fetch.calls) == 1


async def test_refresh_unchanged_extends_and_changed_refetches(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    await db.get(_resolver(), DOMAIN)
    start = clock.t
    clock.t += REFRESH_AFTER + 1
    assert await db.refresh_once(_resolver()) == 1
    [row] = await db.records()
    assert row.last_update == clock.t and row.valid_end == clock.t + 86400 and len(fetch.calls) == 1
    # Nothing to do right after.
    assert await db.refresh_once(_resolver()) == 0
    clock.t += REFRESH_AFTER + 1
    fetch.texts[DOMAIN] = TESTING
    assert await db.refresh_once(_resolver("v=STSv1; id=9")) == 1
    [row] = await db.records()
    assert (row.record_id, row.mode, row.max_age) == ("9", "testing", 3600) and row.inserted == start


async def test_refresh_removes_unused_and_is_bounded(db: PolicyDB, fetch: FakeFetch, clock: Clock) -> None:
    r = MockResolver()
    for i in range(5):
        name = f"d{i}.example"
        r.txt[f"_mta-sts.{name}"] = ["v=STSv1; id=1"]
        fetch.texts[name] = ENFORCE.replace("86400", str(UNUSED_EXPIRY * 2))
        await db.get(r, name)
        clock.t += 1
    clock.t += REFRESH_AFTER + 1
    assert await db.refresh_once(r, batch=2) == 2
    # The most recently used ones went first.
    rows = {row.domain: row for row in await db.records()}
    assert rows["d4.example"].last_update == clock.t and rows["d0.example"].last_update < clock.t
    clock.t += UNUSED_EXPIRY + 1
    await db.refresh_once(r)
    assert await db.records() == []


async def test_refresh_loop_stops(db: PolicyDB, clock: Clock) -> None:
    await db.get(_resolver(), DOMAIN)
    clock.t += REFRESH_AFTER + 1
    stop = asyncio.Event()
    task = asyncio.create_task(db.refresh_loop(_resolver(), interval=3600, stop=stop))
    for _ in range(100):
        await asyncio.sleep(0.01)
        [row] = await db.records()
        if row.last_update == clock.t:
            break
    assert row.last_update == clock.t
    stop.set()
    await asyncio.wait_for(task, 5)


async def test_reopen_keeps_policies(tmp_path: Path, fetch: FakeFetch, clock: Clock) -> None:
    path = tmp_path / "mtasts.db"
    db = await PolicyDB.open(path, fetch=fetch, now=clock)
    await db.get(_resolver(), DOMAIN)
    await db.close()
    db = await PolicyDB.open(path, fetch=fetch, now=clock)
    res = await db.get(_resolver(), DOMAIN)
    await db.close()
    assert res.policy is not None and fetch.calls == [DOMAIN]
