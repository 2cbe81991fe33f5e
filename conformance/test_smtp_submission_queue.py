"""Submission to other domains: the outgoing queue gets the message with its DSN, REQUIRETLS and FUTURERELEASE parameters."""

from __future__ import annotations

import asyncio
import smtplib
import time

from serve_harness import MoxServe
from test_smtp_delivery import set_password

from mox.queue import open_queue

MSG = b"From: mox@localhost\r\nTo: x@remote.example\r\nSubject: queued\r\nTLS-Required: No\r\n\r\nbody\r\n"


def test_submission_queues_with_parameters(mox_serve: MoxServe) -> None:
    m = mox_serve
    set_password(m, "moxmoxmox")
    with smtplib.SMTP("127.0.0.1", m.ports.submission, timeout=20) as s:
        s.ehlo("client")
        ext = s.esmtp_features
        assert "futurerelease" in ext and "dsn" in ext
        s.login("mox@localhost", "moxmoxmox")
        refused = s.sendmail(
            "mox@localhost",
            ["x@remote.example", "y@remote.example", "mox@localhost"],
            MSG,
            mail_options=["HOLDFOR=600", "ENVID=env+2Bid", "RET=HDRS"],
            rcpt_options=["NOTIFY=SUCCESS,FAILURE", "ORCPT=rfc822;orig@remote.example"],
        )
        assert refused == {}
    m.stop()

    async def check() -> None:
        q = await open_queue(m.data)
        try:
            msgs = sorted(await q.list_messages(), key=lambda x: x.recipient_address)
        finally:
            await q.close()
        assert [x.recipient_address for x in msgs] == ["x@remote.example", "y@remote.example"]
        x = msgs[0]
        assert x.sender_account == "mox" and x.sender_address == "mox@localhost"
        assert x.base_id == msgs[1].base_id  # one message file for the submission
        assert x.dsn_envid == "env+id" and x.dsn_ret == "HDRS"
        assert x.dsn_notify == ("SUCCESS", "FAILURE")
        assert (x.dsn_orcpt_type, x.dsn_orcpt) == ("rfc822", "orig@remote.example")
        assert x.requiretls is False  # TLS-Required: No
        assert x.future_release_request == "for;600" and x.next_attempt > time.time() + 500
        assert b"Received:" in x.msg_prefix

    asyncio.run(check())
    # The local recipient got its copy directly.
    assert "message delivered" in m.log()
