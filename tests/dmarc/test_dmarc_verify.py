from collections.abc import Iterator

import pytest

import mox.dmarc
from mox.dkim import Result as DKIMResult
from mox.dkim import Signature
from mox.dkim import Status as DKIMStatus
from mox.dmarc import Policy, Status, lookup, lookup_external_reports_accepted, verify
from mox.dns import Domain, MockResolver, parse_domain


def d(s: str) -> Domain:
    return parse_domain(s)


def dkim_pass(domain: str) -> DKIMResult:
    return DKIMResult(DKIMStatus.PASS, Signature(domain=d(domain), selector=d("sel")))


def dkim_status(domain: str, status: DKIMStatus) -> DKIMResult:
    return DKIMResult(status, Signature(domain=d(domain), selector=d("sel")))


def resolver() -> MockResolver:
    return MockResolver(
        txt={
            "_dmarc.example.org": ["v=DMARC1; p=reject; sp=quarantine; rua=mailto:dmarc@example.org"],
            "_dmarc.strict.example": ["v=DMARC1; p=reject; adkim=s; aspf=s"],
            "_dmarc.none.example": ["v=DMARC1; p=none"],
            "_dmarc.sub-none.example": ["v=DMARC1; p=reject; sp=none"],
            "_dmarc.quarantine.example": ["v=DMARC1; p=quarantine"],
            "_dmarc.pct0.example": ["v=DMARC1; p=reject; pct=0"],
            "_dmarc.pct50.example": ["v=DMARC1; p=reject; pct=50"],
            "_dmarc.multi.example": ["v=DMARC1; p=reject", "v=DMARC1; p=none"],
            "_dmarc.bad.example": ["v=DMARC1; p=bogus"],
            "_dmarc.other.example": ["v=spf1 -all", "v=DMARC1; p=reject"],
        },
        fail={"_dmarc.temp.example": "temporary"},
    )


@pytest.fixture(autouse=True)
def fixed_random() -> Iterator[None]:
    old = mox.dmarc.random_percent
    mox.dmarc.random_percent = lambda: 49
    yield
    mox.dmarc.random_percent = old


async def test_no_record_is_none() -> None:
    use, r = await verify(resolver(), d("nodmarc.example"), [], "pass", d("nodmarc.example"))
    assert (use, r.status, r.reject, r.record) == (False, Status.NONE, False, None)


async def test_aligned_spf_or_dkim_passes() -> None:
    res = resolver()
    use, r = await verify(res, d("example.org"), [], "pass", d("example.org"))
    assert (use, r.status, r.reject, r.aligned_spf_pass) == (True, Status.PASS, False, True)
    use, r = await verify(res, d("example.org"), [dkim_pass("example.org")], "fail", d("other.example"))
    assert (r.status, r.reject, r.aligned_dkim_pass, r.aligned_spf_pass) == (Status.PASS, False, True, False)


async def test_relaxed_alignment_uses_org_domain() -> None:
    res = resolver()
    _, r = await verify(res, d("example.org"), [], "pass", d("bounces.example.org"))
    assert r.status == Status.PASS
    _, r = await verify(res, d("example.org"), [dkim_pass("mail.example.org")], "none", None)
    assert r.status == Status.PASS
    # Different org domain: no alignment.
    _, r = await verify(res, d("example.org"), [dkim_pass("example.net")], "pass", d("example.net"))
    assert (r.status, r.reject) == (Status.FAIL, True)


async def test_strict_alignment_needs_exact_names() -> None:
    res = resolver()
    _, r = await verify(
        res, d("strict.example"), [dkim_pass("mail.strict.example")], "pass", d("x.strict.example")
    )
    assert (r.status, r.reject) == (Status.FAIL, True)
    _, r = await verify(res, d("strict.example"), [dkim_pass("strict.example")], "fail", None)
    assert r.status == Status.PASS


async def test_failed_dkim_or_spf_does_not_count() -> None:
    _, r = await verify(
        resolver(), d("example.org"), [dkim_status("example.org", DKIMStatus.FAIL)], "fail", None
    )
    assert (r.status, r.reject) == (Status.FAIL, True)
    assert [(a.domain, a.result) for a in r.dkim] == [(d("example.org"), "fail")]
    assert r.spf_result == "fail"


async def test_subdomain_policy_from_org_domain_record() -> None:
    res = resolver()
    _, r = await verify(res, d("sub.example.org"), [], "fail", None)
    assert (r.status, r.reject, r.domain, r.policy_applied) == (
        Status.FAIL,
        True,
        d("example.org"),
        Policy.QUARANTINE,
    )
    _, r = await verify(res, d("sub.sub-none.example"), [], "fail", None)
    assert (r.status, r.reject, r.policy_applied) == (Status.FAIL, False, Policy.NONE)
    # The record's own domain uses p=.
    _, r = await verify(res, d("sub-none.example"), [], "fail", None)
    assert (r.reject, r.policy_applied) == (True, Policy.REJECT)
    assert ("TXT", "_dmarc.sub.example.org") in res.queries


async def test_policies_none_quarantine_reject() -> None:
    res = resolver()
    _, r = await verify(res, d("none.example"), [], "fail", None)
    assert (r.status, r.reject) == (Status.FAIL, False)
    _, r = await verify(res, d("quarantine.example"), [], "fail", None)
    assert (r.status, r.reject, r.policy_applied) == (Status.FAIL, True, Policy.QUARANTINE)


async def test_pct_sampling() -> None:
    res = resolver()
    use, r = await verify(res, d("pct0.example"), [], "fail", None)
    assert (use, r.reject) == (False, True)
    use, r = await verify(res, d("pct0.example"), [], "fail", None, apply_random_percentage=False)
    assert use
    use, _ = await verify(res, d("pct50.example"), [], "fail", None)
    assert use  # 49 < 50
    mox.dmarc.random_percent = lambda: 50
    use, _ = await verify(res, d("pct50.example"), [], "fail", None)
    assert not use
    use, _ = await verify(res, d("example.org"), [], "fail", None)
    assert use  # pct=100


async def test_temperrors() -> None:
    res = resolver()
    _, r = await verify(res, d("temp.example"), [], "pass", d("temp.example"))
    assert (r.status, r.reject) == (Status.TEMPERROR, False)
    _, r = await verify(res, d("example.org"), [], "temperror", None)
    assert (r.status, r.reject) == (Status.TEMPERROR, False)
    _, r = await verify(
        res, d("example.org"), [dkim_status("example.org", DKIMStatus.TEMPERROR)], "fail", None
    )
    assert (r.status, r.reject) == (Status.TEMPERROR, False)
    # An aligned pass still wins.
    _, r = await verify(
        res,
        d("example.org"),
        [dkim_status("x.example", DKIMStatus.TEMPERROR), dkim_pass("example.org")],
        "fail",
        None,
    )
    assert r.status == Status.PASS


async def test_lookup_edge_cases() -> None:
    res = resolver()
    lk = await lookup(d("multi.example"), res)
    assert (lk.status, lk.record) == (Status.NONE, None)
    lk = await lookup(d("bad.example"), res)
    assert lk.status == Status.PERMERROR
    lk = await lookup(d("other.example"), res)
    assert lk.record is not None and lk.text == "v=DMARC1; p=reject"
    _, r = await verify(res, d("bad.example"), [], "pass", d("bad.example"))
    assert (r.status, r.reject) == (Status.PERMERROR, False)


async def test_authentic_needs_all_lookups_authentic() -> None:
    res = resolver()
    res.authentic = {"_dmarc.example.org"}
    assert (await lookup(d("example.org"), res)).authentic
    # The subdomain's denial was not authentic.
    assert not (await lookup(d("sub.example.org"), res)).authentic
    res.all_authentic = True
    assert (await lookup(d("sub.example.org"), res)).authentic


async def test_external_reports_destination() -> None:
    res = MockResolver(
        txt={
            "example.org._report._dmarc.reports.example": ["v=DMARC1"],
            "example.net._report._dmarc.reports.example": ["v=DMARC1; rua=mailto:x@reports.example"],
        },
        fail={"example.com._report._dmarc.reports.example": "temporary"},
    )
    x = await lookup_external_reports_accepted(d("example.org"), d("reports.example"), res)
    assert x.accepts and x.texts == ["v=DMARC1"]
    x = await lookup_external_reports_accepted(d("example.net"), d("reports.example"), res)
    assert x.accepts
    x = await lookup_external_reports_accepted(d("other.example"), d("reports.example"), res)
    assert (x.accepts, x.status) == (False, Status.NONE)
    x = await lookup_external_reports_accepted(d("example.com"), d("reports.example"), res)
    assert (x.accepts, x.status) == (False, Status.TEMPERROR)
