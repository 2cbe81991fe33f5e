"""The message store: accounts, mailboxes, messages, counts, change events, delivery (DESIGN.md section 4).

Public API (no SQL leaks out, so another backend can be added later):

- :func:`open_account` / :func:`mox.store.deliver.open_config_account` give an
  :class:`Account` (reference counted; ``await acc.close()``).
- ``Account``: ``mailboxes``, ``mailbox``, ``mailbox_create``, ``mailbox_rename``,
  ``mailbox_delete``, ``subscribe``, ``subscriptions``, ``set_special_use``,
  ``add_message`` (durable, group-committed), ``messages``, ``message_by_id``,
  ``read_message``, ``set_flags``, ``expunge``, ``check_consistency``,
  ``recalculate_counts``, password secrets; ``acc.bus.subscribe()`` for change events.
- :func:`mox.store.deliver.deliver` resolves a local recipient (addresses,
  aliases, catchalls, rulesets) and delivers.
"""

from mox.store.account import Account, MessageInfo, NewMessage, close_all_accounts, open_account
from mox.store.model import (
    Flags,
    Mailbox,
    MailboxCounts,
    MailboxExists,
    MailboxNotFound,
    Message,
    QuotaExceeded,
    SMTPContext,
    SpecialUse,
    StoreError,
)

__all__ = [
    "Account",
    "Flags",
    "Mailbox",
    "MailboxCounts",
    "MailboxExists",
    "MailboxNotFound",
    "Message",
    "MessageInfo",
    "NewMessage",
    "QuotaExceeded",
    "SMTPContext",
    "SpecialUse",
    "StoreError",
    "close_all_accounts",
    "open_account",
]
