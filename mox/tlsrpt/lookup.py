"""Looking up the TLSRPT record of a policy domain (RFC 8460 section 3)."""

from __future__ import annotations

from mox import mlog
from mox.dns import DNSError, Domain, NotFound, Resolver, default_resolver
from mox.tlsrpt.record import Record, RecordError, parse_record

log = mlog.new("tlsrpt")


class RecordLookupError(Exception):
    """Base class of lookup failures."""


class NoRecordError(RecordLookupError):
    """No TLSRPT record: the domain asks for no reports."""


class MultipleRecordsError(RecordLookupError):
    """More than one TLSRPT record: treated as no record (section 3)."""


class DNSLookupError(RecordLookupError):
    """A temporary DNS failure; try again later."""


class MalformedRecordError(RecordLookupError):
    """The record starts with v=TLSRPTv1 but does not parse."""


async def lookup(domain: Domain, resolver: Resolver | None = None) -> tuple[Record, str]:
    """The TLSRPT record at ``_smtp._tls.<domain>`` and its text.

    TXT records that do not start with ``v=TLSRPTv1;`` are ignored (section 3).
    Raises a :class:`RecordLookupError` subclass.
    """
    r = resolver or default_resolver()
    name = f"_smtp._tls.{domain.ascii}"
    try:
        res = await r.lookup_txt(name)
    except NotFound:
        raise NoRecordError(f"no tlsrpt record at {name}") from None
    except DNSError as e:
        raise DNSLookupError(f"looking up tlsrpt record at {name}: {e}") from None
    found: tuple[Record, str] | None = None
    for txt in res.records:
        try:
            rec, is_tlsrpt = parse_record(txt)
        except RecordError as e:
            raise MalformedRecordError(f"malformed tlsrpt record at {name}: {e}") from None
        if not is_tlsrpt or rec is None:
            continue
        if found is not None:
            raise MultipleRecordsError(f"multiple tlsrpt records at {name}")
        found = (rec, txt)
    if found is None:
        raise NoRecordError(f"no tlsrpt record at {name}")
    log.debug("tlsrpt lookup", domain=domain.ascii, record=found[1])
    return found
