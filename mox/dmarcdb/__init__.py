"""DMARC evaluations kept for outgoing aggregate reports (RFC 7489 section 7.2), and reporting-address suppressions.

The SMTP server stores one :class:`Evaluation` per incoming message whose From
domain publishes a DMARC record with ``rua`` addresses; the hourly reporter
(the reporting issue) groups them per policy domain and period into reports.
Stored in ``<DataDir>/dmarceval.db`` (SQLite, WAL), accessed on one thread.
"""

from mox.dmarcdb.evaluations import Evaluation, EvaluationDB, SuppressAddress, interval_hours

__all__ = ["Evaluation", "EvaluationDB", "SuppressAddress", "interval_hours"]
