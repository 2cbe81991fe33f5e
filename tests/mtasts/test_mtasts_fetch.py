"""MTA-STS policy fetch over HTTPS from a local server with a test CA (RFC 8461 section 3.3)."""

from __future__ import annotations

import asyncio

import pytest
from aiohttp import web
from mtastshelpers import https_server, make_ca

from mox import mtasts
from mox.dns import MockResolver
from mox.mtasts import FetchOptions, Mode, fetch
from mox.mtasts.fetch import fetch_policy, lookup, lookup_record

DOMAIN = "example.org"
POLICY = "version: STSv1\nmode: enforce\nmx: mx.example.org\nmax_age: 86400\n"
CA = make_ca()
SERVER_CTX = CA.server_context("mta-sts.example.org")


def _resolver(**kw: object) -> MockResolver:
    r = MockResolver(
        a={"mta-sts.example.org": ["127.0.0.1"]},
        txt={"_mta-sts.example.org": ["v=STSv1; id=20240101", "some other record"]},
    )
    for k, v in kw.items():
        setattr(r, k, v)
    return r


def _text(body: str | bytes, content_type: str = "text/plain", status: int = 200) -> web.Response:
    if isinstance(body, str):
        body = body.encode()
    return web.Response(body=body, status=status, headers={"Content-Type": content_type})


async def _fetch(handler: object, ctx: object = None, resolver: MockResolver | None = None) -> tuple[object, str]:
    async with https_server(ctx or SERVER_CTX, handler) as port:  # type: ignore[arg-type]
        opts = FetchOptions(ssl_context=CA.client_context(), port=port)
        return await fetch_policy(resolver or _resolver(), DOMAIN, opts)


async def test_fetch_ok() -> None:
    seen: list[str] = []

    async def handler(req: web.Request) -> web.Response:
        seen.append(req.path)
        return _text(POLICY, "text/plain; charset=utf-8")

    policy, text = await _fetch(handler)
    assert seen == ["/.well-known/mta-sts.txt"]
    assert isinstance(policy, mtasts.Policy) and policy.mode == Mode.ENFORCE and text == POLICY


async def test_lookup_combined() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text(POLICY)

    async with https_server(SERVER_CTX, handler) as port:
        res = await lookup(_resolver(), DOMAIN, FetchOptions(ssl_context=CA.client_context(), port=port))
    assert res.error is None and res.record_id == "20240101" and res.policy is not None
    assert res.result_type == ""


async def test_timeout(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(fetch, "FETCH_TIMEOUT", 0.2)
    release = asyncio.Event()

    async def handler(req: web.Request) -> web.Response:
        await release.wait()
        return _text(POLICY)

    async with https_server(SERVER_CTX, handler) as port:
        opts = FetchOptions(ssl_context=CA.client_context(), port=port)
        with pytest.raises(mtasts.PolicyFetchError, match=r"no policy within 0\.2s") as ei:
            try:
                await fetch_policy(_resolver(), DOMAIN, opts)
            finally:
                release.set()
    assert ei.value.result_type == "sts-policy-fetch-error"


async def test_oversized_body() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text(POLICY + "x: " + "y" * mtasts.MAX_POLICY_SIZE + "\n")

    with pytest.raises(mtasts.PolicySyntaxError, match="larger than 65536") as ei:
        await _fetch(handler)
    assert ei.value.result_type == "sts-policy-invalid"


async def test_redirect_refused() -> None:
    async def handler(req: web.Request) -> web.Response:
        if req.path == "/elsewhere":
            return _text(POLICY)
        raise web.HTTPFound("/elsewhere")

    with pytest.raises(mtasts.PolicyFetchError, match="redirect") as ei:
        await _fetch(handler)
    assert ei.value.result_type == "sts-policy-fetch-error"


async def test_status_codes() -> None:
    async def notfound(req: web.Request) -> web.Response:
        return _text("no", status=404)

    async def error(req: web.Request) -> web.Response:
        return _text("no", status=500)

    with pytest.raises(mtasts.NoPolicyError):
        await _fetch(notfound)
    with pytest.raises(mtasts.PolicyFetchError, match="status 500"):
        await _fetch(error)


async def test_wrong_content_type() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text(POLICY, "text/html")

    with pytest.raises(mtasts.PolicySyntaxError, match="content-type") as ei:
        await _fetch(handler)
    assert ei.value.result_type == "sts-policy-invalid"


async def test_malformed_policy() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text("version: STSv1\nmode: enforce\nmax_age: 10\n")

    with pytest.raises(mtasts.PolicySyntaxError, match="missing field mx") as ei:
        await _fetch(handler)
    assert ei.value.result_type == "sts-policy-invalid"

    async def binary(req: web.Request) -> web.Response:
        return _text(b"\xff\xfe")

    with pytest.raises(mtasts.PolicySyntaxError, match="utf-8"):
        await _fetch(binary)


async def test_self_signed_certificate() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text(POLICY)

    ctx = CA.server_context("mta-sts.example.org", self_signed=True)
    with pytest.raises(mtasts.WebPKIError) as ei:
        await _fetch(handler, ctx)
    assert ei.value.result_type == "sts-webpki-invalid"


async def test_wrong_host_certificate() -> None:
    async def handler(req: web.Request) -> web.Response:
        return _text(POLICY)

    ctx = CA.server_context("mta-sts.other.example")
    with pytest.raises(mtasts.WebPKIError, match="certificate verification"):
        await _fetch(handler, ctx)


async def test_policy_host_missing_and_connection_refused() -> None:
    r = _resolver(a={})
    with pytest.raises(mtasts.NoPolicyError, match="no policy host"):
        await fetch_policy(r, DOMAIN, FetchOptions(ssl_context=CA.client_context(), port=1))
    # Nothing listens on port 1 of 127.0.0.1.
    with pytest.raises(mtasts.PolicyFetchError):
        await fetch_policy(_resolver(), DOMAIN, FetchOptions(ssl_context=CA.client_context(), port=1))


async def test_lookup_record_cases() -> None:
    rec, txt = await lookup_record(_resolver(), DOMAIN)
    assert rec.id == "20240101" and txt == "v=STSv1; id=20240101"
    with pytest.raises(mtasts.NoRecordError) as ni:
        await lookup_record(_resolver(txt={}), DOMAIN)
    assert ni.value.result_type == ""
    with pytest.raises(mtasts.NoRecordError):
        await lookup_record(_resolver(txt={"_mta-sts.example.org": ["v=spf1 -all"]}), DOMAIN)
    with pytest.raises(mtasts.MultipleRecordsError):
        await lookup_record(_resolver(txt={"_mta-sts.example.org": ["v=STSv1; id=1", "v=STSv1; id=2"]}), DOMAIN)
    with pytest.raises(mtasts.RecordSyntaxError):
        await lookup_record(_resolver(txt={"_mta-sts.example.org": ["v=STSv1; id=1 2"]}), DOMAIN)
    r = _resolver()
    r.fail["_mta-sts.example.org"] = "temporary"
    with pytest.raises(mtasts.DNSLookupError) as ei:
        await lookup_record(r, DOMAIN)
    assert ei.value.temporary and ei.value.result_type == "sts-policy-fetch-error"
    # CNAMEs are followed (RFC 8461 section 3.1).
    r = _resolver(txt={"_mta-sts.other.example": ["v=STSv1; id=x"]}, cname={"_mta-sts.example.org": "_mta-sts.other.example"})
    assert (await lookup_record(r, DOMAIN))[0].id == "x"


async def test_lookup_errors_in_result() -> None:
    res = await lookup(_resolver(txt={}), DOMAIN)
    assert res.record is None and isinstance(res.error, mtasts.NoRecordError) and res.result_type == ""
    res = await lookup(_resolver(a={}), DOMAIN)
    assert res.record_id == "20240101" and res.policy is None
    assert res.result_type == "sts-policy-fetch-error"
