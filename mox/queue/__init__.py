"""The outgoing queue (upstream's queue package): messages waiting for delivery, with retries and DSNs.

Public API:

- :func:`open_queue` (data dir, config getter) gives a :class:`Queue`;
  ``queue.start(deliverer)`` starts the delivery loop; ``await queue.close()``.
  :func:`current` returns the queue ``mox serve`` opened.
- ``await queue.add(sender_account, sender, recipients, data, ...)`` -> ids,
  acknowledged only after commit.
- Admin: ``list``, ``hold_set``, ``next_attempt_add/set``, ``transport_set``,
  ``requiretls_set``, ``fail``, ``drop``, ``read_message``, hold rules,
  suppression list, retired messages.
- The deliverer is injected: :class:`Deliverer` (called with a batch of
  :class:`QueuedMsg` and a :class:`MessageSource`, returns one
  :class:`Outcome` per message).
"""

from mox.queue.model import (
    Deliverer,
    DSNOptions,
    Filter,
    HoldRule,
    MessageSource,
    MsgResult,
    NewRecipient,
    Outcome,
    OutcomeKind,
    QueuedMsg,
    QueueError,
    RetiredFilter,
    RetiredMsg,
    RetiredSort,
    Sort,
    Suppressed,
    Suppression,
)
from mox.queue.queue import Queue, current, open_queue, server_deliverer

__all__ = [
    "DSNOptions",
    "Deliverer",
    "Filter",
    "HoldRule",
    "MessageSource",
    "MsgResult",
    "NewRecipient",
    "Outcome",
    "OutcomeKind",
    "Queue",
    "QueueError",
    "QueuedMsg",
    "RetiredFilter",
    "RetiredMsg",
    "RetiredSort",
    "Sort",
    "Suppressed",
    "Suppression",
    "current",
    "open_queue",
    "server_deliverer",
]
