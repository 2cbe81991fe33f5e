"""The outgoing queue's deliverer under ``mox localserve``: nothing leaves the machine.

Every queued message is delivered to the local account's address
``mox@localhost`` (its Inbox, or where its rulesets say), whatever the
recipient, so a developer sees what the software under test sent. Recipients
whose local part asks for a simulated failure (:mod:`mox.localserve.failures`)
get that failure instead: 4xx codes and "timeout" a temporary one (retried
later, as a real delivery would be), 5xx a permanent one (a DSN to the sender).

Plug-in: ``queue.start(make_deliverer(lambda: server.cfg))`` instead of
``server_deliverer(...)`` when ``Server.localserve`` is set.
"""

from __future__ import annotations

from collections.abc import Callable

from mox import mlog
from mox.config.load import Config
from mox.dns import parse_domain
from mox.dsn import NameIP
from mox.localserve.failures import simulated_failure
from mox.queue.model import Deliverer, MessageSource, Outcome, QueuedMsg
from mox.smtp.address import Address
from mox.store import StoreError
from mox.store.model import SMTPContext

log = mlog.new("localserve")

LOCAL_ADDRESS = Address("mox", parse_domain("localhost"))
LOCALHOST = NameIP("localhost", "127.0.0.1")


def _failure(localpart: str) -> Outcome | None:
    f = simulated_failure(localpart)
    if f is None:
        return None
    if f.timeout:
        return Outcome.temporary("timeout (simulated by localserve for this recipient)", remote=LOCALHOST)
    text = f"failure simulated by localserve for recipient localpart {localpart!r}"
    secode = f"{f.code // 100}.0.0"
    if f.permanent:
        return Outcome.permanent(text, code=f.code, secode=secode, remote=LOCALHOST, lines=[f"{f.code} {secode} {text}"])
    return Outcome.temporary(text, code=f.code, secode=secode, remote=LOCALHOST, lines=[f"{f.code} {secode} {text}"])


def make_deliverer(config: Callable[[], Config], address: Address = LOCAL_ADDRESS) -> Deliverer:
    """A queue deliverer that delivers every message locally to address (see the module doc)."""
    from mox.store.deliver import deliver

    async def deliver_batch(msgs: list[QueuedMsg], message: MessageSource, /) -> list[Outcome]:
        cfg = config()
        data: bytes | None = None
        out: list[Outcome] = []
        for m in msgs:
            failed = _failure(m.recipient_localpart)
            if failed is not None:
                log.info("localserve: simulated delivery failure", recipient=m.recipient_address, code=failed.code)
                out.append(failed)
                continue
            if data is None:
                data = await message.read()
            smtp = SMTPContext(remote_ip="127.0.0.1", ehlo="localhost", mail_from=m.sender_address, rcpt_to=m.recipient_address)
            try:
                await deliver(cfg, address, data, smtp)
            except StoreError as e:
                log.errorx("localserve: local delivery of outgoing message failed", e, recipient=m.recipient_address)
                out.append(Outcome.temporary(f"local delivery to {address} failed: {e}", remote=LOCALHOST))
                continue
            log.info("localserve: outgoing message delivered to local account", recipient=m.recipient_address, to=str(address))
            out.append(Outcome.delivered(LOCALHOST, 250, f"delivered to {address} (localserve)"))
        return out

    return deliver_batch
