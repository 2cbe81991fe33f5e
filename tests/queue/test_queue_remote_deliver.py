"""The remote deliverer against scripted SMTP servers on 127.0.0.1, with a mock resolver."""

from __future__ import annotations

import hashlib
import sys
from collections.abc import AsyncIterator
from pathlib import Path
from typing import Any

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parent.parent / "smtpclient"))
from smtpclienthelpers import FakeServer, make_cert, serve, server_context

from mox.config import model
from mox.config.example import write_local_config
from mox.config.load import Config, load_config
from mox.dns.mock import MockResolver
from mox.dns.resolver import MX, TLSA
from mox.mtasts import Policy, parse_policy
from mox.mtastsdb import PolicyDB
from mox.queue import MessageSource, NewRecipient, OutcomeKind, Queue, QueuedMsg, open_queue
from mox.queue.remote import RemoteDeliverer
from mox.smtp.path import parse_mailbox
from mox.tlsrptdb import TLSRPTDB

MSG = b"From: mox@localhost\r\nTo: a@example.org\r\nSubject: hi\r\n\r\nbody\r\n"


@pytest.fixture
async def env(tmp_path: Path) -> AsyncIterator[tuple[Config, Queue, TLSRPTDB]]:
    cfg = load_config(write_local_config(tmp_path))
    q = await open_queue(tmp_path / "qdata")
    db = await TLSRPTDB.open(tmp_path / "tlsrpt.db")
    try:
        yield cfg, q, db
    finally:
        await q.close()
        await db.close()


async def _queued(q: Queue, *rcpts: str, **kw: Any) -> tuple[list[QueuedMsg], MessageSource]:
    ids = await q.add("mox", parse_mailbox("mox@localhost", True), [NewRecipient(parse_mailbox(r, True)) for r in rcpts], MSG, **kw)
    msgs = sorted((m for m in await q.list_messages() if m.id in ids), key=lambda m: m.id)
    m0 = msgs[0]
    return msgs, MessageSource(m0.msg_prefix, q.db.message_path(m0.base_id), m0.size)


def _deliverer(cfg: Config, resolver: MockResolver, port: int, db: TLSRPTDB, **kw: Any) -> RemoteDeliverer:
    return RemoteDeliverer(lambda: cfg, resolver=resolver, port=port, tlsrpt_db=db, **kw)


def _resolver(**kw: Any) -> MockResolver:
    return MockResolver(
        mx={"example.org": [MX(10, "mx.example.org")]}, a={"mx.example.org": ["127.0.0.1"]}, **kw
    )


async def test_delivers_batch_and_reuses_connection(env: tuple[Config, Queue, TLSRPTDB]) -> None:
    cfg, q, db = env
    async with serve(FakeServer(rcpt_replies={"bad@example.org": b"550 5.1.1 no such user\r\n"})) as (fake, port):
        d = _deliverer(cfg, _resolver(), port, db)
        try:
            msgs, src = await _queued(q, "a@example.org", "bad@example.org")
            out = await d(msgs, src)
            assert [o.kind for o in out] == [OutcomeKind.DELIVERED, OutcomeKind.PERMANENT]
            assert out[1].code == 550 and out[1].secode == "5.1.1" and out[1].remote.name == "mx.example.org"
            assert fake.received[0].rcpts == ["a@example.org"]
            assert fake.received[0].data.startswith(msgs[0].msg_prefix)
            # A second batch to the same host goes over the same connection.
            msgs2, src2 = await _queued(q, "b@example.org")
            assert [o.kind for o in await d(msgs2, src2)] == [OutcomeKind.DELIVERED]
            assert fake.connections == 1 and len(fake.received) == 2
        finally:
            await d.close()
    # TLS results: plaintext (no STARTTLS offered) is a starttls-not-supported failure, once per
    # session (not per message), for the recipient domain and, separately, for the MX host.
    dom = await db.results_policy_domain("example.org")
    host = await db.results_policy_domain("mx.example.org")
    assert len(dom) == 1 and not dom[0].is_host and len(host) == 1 and host[0].is_host
    for r in (dom[0], host[0]):
        (res,) = r.results
        assert res.summary.total_failure_session_count == 1 and res.summary.total_successful_session_count == 0
        assert [str(fd.result_type) for fd in res.failure_details] == ["starttls-not-supported"]


async def test_temporary_and_permanent_transaction_failures(env: tuple[Config, Queue, TLSRPTDB]) -> None:
    cfg, q, db = env
    async with serve(FakeServer(replies={"MAIL": b"451 4.3.0 try later\r\n"})) as (_fake, port):
        d = _deliverer(cfg, _resolver(), port, db)
        msgs, src = await _queued(q, "a@example.org")
        out = await d(msgs, src)
        await d.close()
        assert out[0].kind == OutcomeKind.TEMPORARY and out[0].code == 451
    async with serve(FakeServer(replies={"DATAEND": b"554 5.7.1 spam\r\n"})) as (_fake, port):
        d = _deliverer(cfg, _resolver(), port, db)
        out = await d(msgs, src)
        await d.close()
        assert out[0].kind == OutcomeKind.PERMANENT and out[0].code == 554 and "spam" in out[0].text


async def test_routing_failures(env: tuple[Config, Queue, TLSRPTDB]) -> None:
    cfg, q, db = env
    d = _deliverer(cfg, MockResolver(mx={"nomail.example": [MX(0, ".")]}), 1, db)
    msgs, src = await _queued(q, "a@nomail.example")
    out = await d(msgs, src)
    assert out[0].kind == OutcomeKind.PERMANENT and "null mx" in out[0].text
    msgs, src = await _queued(q, "a@nonexistent.example")
    assert (await d(msgs, src))[0].kind == OutcomeKind.PERMANENT
    r = MockResolver(mx={"example.org": [MX(10, "mx.example.org")]})
    r.fail["example.org"] = "temporary"
    d = _deliverer(cfg, r, 1, db)
    msgs, src = await _queued(q, "a@example.org")
    assert (await d(msgs, src))[0].kind == OutcomeKind.TEMPORARY
    # Nothing listens: temporary.
    d = _deliverer(cfg, _resolver(), 1, db)
    out = await d(msgs, src)
    assert out[0].kind == OutcomeKind.TEMPORARY and "mx.example.org" in out[0].text
    await d.close()


async def test_requiretls_without_policy_fails_permanently(env: tuple[Config, Queue, TLSRPTDB]) -> None:
    cfg, q, db = env
    async with serve(FakeServer()) as (fake, port):
        d = _deliverer(cfg, _resolver(), port, db)
        msgs, src = await _queued(q, "a@example.org", requiretls=True)
        out = await d(msgs, src)
        await d.close()
    assert out[0].kind == OutcomeKind.PERMANENT and out[0].secode == "5.7.30"
    assert fake.connections == 0


async def test_transport_fail_and_routes(env: tuple[Config, Queue, TLSRPTDB]) -> None:
    cfg, q, db = env
    cfg.static.Transports = {"nope": model.Transport(Fail=model.TransportFail(SMTPCode=550, SMTPMessage="not from here"))}
    cfg.dynamic.Routes = [model.Route(ToDomain=[".org"], Transport="nope")]
    d = _deliverer(cfg, _resolver(), 1, db)
    msgs, src = await _queued(q, "a@example.org")
    out = await d(msgs, src)
    assert out[0].kind == OutcomeKind.PERMANENT and out[0].code == 550 and out[0].text == "not from here"
    # A route for other domains does not apply.
    msgs, src = await _queued(q, "a@example.net")
    out = await d(msgs, src)
    assert out[0].kind != OutcomeKind.PERMANENT or "not from here" not in out[0].text


def _policy(text: str) -> Policy:
    return parse_policy(text)


async def test_mtasts_enforce_mx_mismatch(env: tuple[Config, Queue, TLSRPTDB], tmp_path: Path) -> None:
    cfg, q, db = env
    text = "version: STSv1\r\nmode: enforce\r\nmx: other.example.org\r\nmax_age: 86400\r\n"

    async def fetch(resolver: Any, domain: Any, options: Any) -> tuple[Policy, str]:
        return _policy(text), text

    sts = await PolicyDB.open(tmp_path / "mtasts.db", fetch=fetch)
    r = _resolver(txt={"_mta-sts.example.org": ["v=STSv1; id=1"]})
    async with serve(FakeServer()) as (fake, port):
        d = _deliverer(cfg, r, port, db, mtasts=sts)
        msgs, src = await _queued(q, "a@example.org")
        out = await d(msgs, src)
        await d.close()
    await sts.close()
    assert out[0].kind == OutcomeKind.TEMPORARY and "does not match" in out[0].text
    assert fake.connections == 0


async def test_dane_verified_and_mismatch(env: tuple[Config, Queue, TLSRPTDB], tmp_path: Path) -> None:
    cfg, q, db = env
    cert = make_cert(tmp_path, ["mx.example.org"])
    from cryptography import x509
    from cryptography.hazmat.primitives import serialization

    spki = x509.load_der_x509_certificate(cert.der).public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    good = TLSA(3, 1, 1, hashlib.sha256(spki).digest())
    bad = TLSA(3, 1, 1, hashlib.sha256(b"other").digest())
    fake = FakeServer(tls=server_context(cert))
    async with serve(fake) as (fake, port):
        r = _resolver(tlsa={"_25._tcp.mx.example.org": [good]}, all_authentic=True)
        d = _deliverer(cfg, r, port, db)
        msgs, src = await _queued(q, "a@example.org")
        out = await d(msgs, src)
        await d.close()
        assert out[0].kind == OutcomeKind.DELIVERED
        (hr,) = (await db.results_policy_domain("mx.example.org"))[0].results
        assert str(hr.policy.type) == "tlsa" and hr.summary.total_successful_session_count == 1
        r2 = _resolver(tlsa={"_25._tcp.mx.example.org": [bad]}, all_authentic=True)
        d = _deliverer(cfg, r2, port, db)
        out = await d(msgs, src)
        await d.close()
        # DANE failure: no fallback to plain text, temporary.
        assert out[0].kind == OutcomeKind.TEMPORARY and "tls" in out[0].text
        assert len(fake.received) == 1
        # Another TLSA record set is another policy in the report.
        results = (await db.results_policy_domain("mx.example.org"))[0].results
        assert len(results) == 2
        hr = next(x for x in results if x.summary.total_failure_session_count)
        assert hr.summary.total_failure_session_count == 1
        assert [str(fd.result_type) for fd in hr.failure_details] == ["validation-failure"]


async def test_smarthost_transport_with_auth(env: tuple[Config, Queue, TLSRPTDB], tmp_path: Path) -> None:
    """A Submission transport: STARTTLS verified against the smarthost's name, then AUTH (SCRAM)."""
    import functools

    from smtpclienthelpers import make_ca

    from mox.sasl import AccountSecrets
    from mox.store.password import make_secrets

    cfg, q, db = env
    ca = make_ca()
    cert = make_cert(tmp_path, ["smarthost.example"], ca=ca)
    secrets = functools.cache(lambda: make_secrets("relaypassword", bcrypt_cost=4, scram_iterations=4096))

    async def lookup(username: str) -> AccountSecrets | None:
        return AccountSecrets("relay", secrets()) if username == "relay@example.org" else None

    fake = FakeServer(tls=server_context(cert), auth=["SCRAM-SHA-256", "PLAIN"], auth_lookup=lookup)
    async with serve(fake) as (fake, port):
        cfg.static.Transports = {
            "relay": model.Transport(
                Submission=model.TransportSMTP(
                    Host="smarthost.example", Port=port, Auth=model.SMTPAuth(Username="relay@example.org", Password="relaypassword")
                )
            )
        }
        cfg.dynamic.Routes = [model.Route(Transport="relay")]
        r = MockResolver(a={"smarthost.example": ["127.0.0.1"]})
        d = _deliverer(cfg, r, 1, db, tls_cadata=ca.pem)
        msgs, src = await _queued(q, "a@example.net")
        out = await d(msgs, src)
        await d.close()
    assert out[0].kind == OutcomeKind.DELIVERED, out[0]
    assert fake.authenticated and fake.received[0].rcpts == ["a@example.net"]
    assert fake.connections == 1
