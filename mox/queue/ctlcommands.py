"""ctl commands of the queue (``mox queue ...``), served by ``mox serve``, with upstream's output.

Each command is an async function ``(queue, config, args) -> result``; the
same functions run directly on the data directory when no server runs (see
mox.cli.queue_commands). Filters and sorts travel as JSON in the string
arguments, with upstream's field names. ``queue dump`` answers with a data
stream of the message instead of a result.
"""

from __future__ import annotations

import datetime as _dt
import json
import time
from collections.abc import Awaitable, Callable
from typing import TYPE_CHECKING, Any

from mox.config.sconf import format_duration, parse_duration
from mox.ctl.server import CtlCommandError
from mox.dns.domain import DomainError, parse_domain
from mox.queue.model import (
    Filter,
    HoldRule,
    QueueError,
    RetiredFilter,
    RetiredMsg,
    RetiredSort,
    Sort,
)
from mox.queue.queue import Queue, current
from mox.serve.ctlregistry import ctl_command
from mox.smtp.address import AddressError, parse_address
from mox.smtp.path import Path

if TYPE_CHECKING:
    from mox.config.load import Config
    from mox.ctl.server import CtlConn
    from mox.serve.server import Server

Command = Callable[[Queue, "Config", list[str]], Awaitable[Any]]
COMMANDS: dict[str, Command] = {}


def _command(name: str) -> Callable[[Command], Command]:
    def register(fn: Command) -> Command:
        COMMANDS[name] = fn
        return fn

    return register


def _args(args: list[str], n: int) -> list[str]:
    if len(args) != n:
        raise QueueError(f"expected {n} arguments, got {len(args)}")
    return args


def _json(s: str, what: str) -> Any:
    try:
        return json.loads(s) if s else {}
    except ValueError as e:
        raise QueueError(f"parsing {what} as json: {e}") from None


def _go_time(t: float) -> str:
    """Go's time.Format(time.RFC3339) in local time."""
    s = _dt.datetime.fromtimestamp(round(t)).astimezone().isoformat(timespec="seconds")
    return s[:-6] + "Z" if s.endswith("+00:00") else s


def _go_time_nano(t: float | None) -> str | None:
    if t is None:
        return None
    s = _dt.datetime.fromtimestamp(t, _dt.UTC).isoformat(timespec="microseconds")
    return s.replace("+00:00", "Z")


def _go_duration(seconds: float) -> str:
    return format_duration(round(seconds) * 1_000_000_000)


def _q(s: str) -> str:
    """Go's %q for the strings we print (printable Unicode kept)."""
    return json.dumps(s, ensure_ascii=False)


def _address(s: str) -> Path:
    try:
        a = parse_address(s)
    except AddressError as e:
        raise QueueError(f"parsing address: {e}") from None
    return Path(a.localpart, a.domain)


def _domain(s: str, what: str) -> str:
    if not s:
        return ""
    try:
        return parse_domain(s).name
    except DomainError as e:
        raise QueueError(f"parsing {what}: {e}") from None


def _account(cfg: Config, account: str) -> None:
    if account not in cfg.dynamic.Accounts:
        raise QueueError("looking up account: unknown account")


@_command("queue holdrules list")
async def holdrules_list(q: Queue, cfg: Config, args: list[str]) -> str:
    _args(args, 0)
    out = ["hold rules:"]
    rules = await q.holdrules()
    for hr in rules:
        elems = []
        if hr.account:
            elems.append(f"account {_q(hr.account)}")
        if hr.sender_domain:
            elems.append(f"sender domain {_q(hr.sender_domain)}")
        if hr.recipient_domain:
            elems.append(f"recipient domain {_q(hr.recipient_domain)}")
        out.append(f"id {hr.id}: {', '.join(elems) if elems else 'all messages'}")
    if not rules:
        out.append("(none)")
    return "\n".join(out) + "\n"


@_command("queue holdrules add")
async def holdrules_add(q: Queue, cfg: Config, args: list[str]) -> None:
    account, senderdom, rcptdom = _args(args, 3)
    hr = HoldRule(0, account, _domain(senderdom, "sender domain"), _domain(rcptdom, "recipient domain"))
    await q.holdrule_add(hr)


@_command("queue holdrules remove")
async def holdrules_remove(q: Queue, cfg: Config, args: list[str]) -> None:
    (idstr,) = _args(args, 1)
    try:
        rid = int(idstr)
    except ValueError:
        raise QueueError(f"parsing id {idstr!r}: not a number") from None
    await q.holdrule_remove(rid)


@_command("queue list")
async def queue_list(q: Queue, cfg: Config, args: list[str]) -> str:
    fstr, sstr = _args(args, 2)
    f = Filter.from_json(_json(fstr, "filter"))
    s = Sort.from_json(_json(sstr, "sort"))
    msgs = await q.list_messages(f, s)
    now = time.time()
    out = ["messages:"]
    for m in msgs:
        last = _go_duration(now - m.last_attempt) if m.last_attempt is not None else ""
        lr = m.last_result()
        out.append(
            f"{m.id:5d} {_go_time(m.queued)} from:{m.sender_address or '<>'} to:{m.recipient_address} "
            f"next {_go_duration(m.next_attempt - now)} last {last} error {_q(lr.error if lr else '')}"
        )
    if not msgs:
        out.append("(none)")
    return "\n".join(out) + "\n"


@_command("queue holdset")
async def queue_holdset(q: Queue, cfg: Config, args: list[str]) -> int:
    fstr, hold = _args(args, 2)
    return await q.hold_set(Filter.from_json(_json(fstr, "filter")), hold == "true")


@_command("queue schedule")
async def queue_schedule(q: Queue, cfg: Config, args: list[str]) -> int:
    fstr, fromnow, dstr = _args(args, 3)
    f = Filter.from_json(_json(fstr, "filter"))
    try:
        d = parse_duration(dstr).seconds
    except ValueError as e:
        raise QueueError(f"parsing duration for next delivery attempt: {e}") from None
    if fromnow:
        return await q.next_attempt_set(f, time.time() + d)
    return await q.next_attempt_add(f, d)


@_command("queue transport")
async def queue_transport(q: Queue, cfg: Config, args: list[str]) -> int:
    fstr, transport = _args(args, 2)
    return await q.transport_set(Filter.from_json(_json(fstr, "filter")), transport)


@_command("queue requiretls")
async def queue_requiretls(q: Queue, cfg: Config, args: list[str]) -> int:
    fstr, req = _args(args, 2)
    values: dict[str, bool | None] = {"": None, "true": True, "false": False}
    if req not in values:
        raise QueueError(f"unknown value {req!r}")
    return await q.requiretls_set(Filter.from_json(_json(fstr, "filter")), values[req])


@_command("queue fail")
async def queue_fail(q: Queue, cfg: Config, args: list[str]) -> int:
    (fstr,) = _args(args, 1)
    return await q.fail(Filter.from_json(_json(fstr, "filter")))


@_command("queue drop")
async def queue_drop(q: Queue, cfg: Config, args: list[str]) -> int:
    (fstr,) = _args(args, 1)
    return await q.drop(Filter.from_json(_json(fstr, "filter")))


@_command("queue dump")
async def queue_dump(q: Queue, cfg: Config, args: list[str]) -> bytes:
    (idstr,) = _args(args, 1)
    try:
        mid = int(idstr)
    except ValueError:
        raise QueueError(f"parsing id {idstr!r}: not a number") from None
    return await q.read_message(mid)


def _retired_json(m: RetiredMsg) -> dict[str, Any]:
    return {
        "ID": m.id, "BaseID": m.base_id, "Queued": _go_time_nano(m.queued), "SenderAccount": m.sender_account,
        "SenderLocalpart": m.sender_localpart, "SenderDomainStr": m.sender_domain,
        "RecipientLocalpart": m.recipient_localpart, "RecipientDomainStr": m.recipient_domain,
        "Attempts": m.attempts, "MaxAttempts": m.max_attempts, "LastAttempt": _go_time_nano(m.last_attempt),
        "Results": [
            {"Start": _go_time_nano(r.start), "Duration": round(r.duration * 1e9), "Success": r.success,
             "Code": r.code, "Secode": r.secode, "Error": r.error}
            for r in m.results
        ],
        "Has8bit": m.has8bit, "SMTPUTF8": m.smtputf8, "IsDMARCReport": m.is_dmarc_report,
        "IsTLSReport": m.is_tls_report, "Size": m.size, "MessageID": m.message_id, "Subject": m.subject,
        "Transport": m.transport, "RequireTLS": m.requiretls, "FutureReleaseRequest": m.future_release_request,
        "LastActivity": _go_time_nano(m.last_activity), "RecipientAddress": m.recipient_address,
        "Success": m.success, "KeepUntil": _go_time_nano(m.keep_until),
    }  # fmt: skip


@_command("queue retired list")
async def retired_list(q: Queue, cfg: Config, args: list[str]) -> str:
    fstr, sstr = _args(args, 2)
    f = RetiredFilter.from_json(_json(fstr, "filter"))
    s = RetiredSort.from_json(_json(sstr, "sort"))
    msgs = await q.retired_list(f, s)
    now = time.time()
    out = ["retired messages:"]
    for m in msgs:
        last = _go_duration(now - m.last_attempt) if m.last_attempt is not None else ""
        lr = m.last_result()
        result = "success" if m.success else "failure"
        out.append(
            f"{m.id:5d} {_go_time(m.queued)} {result} from:{m.sender_address or '<>'} to:{m.recipient_address} "
            f"last {last} error {_q(lr.error if lr else '')}"
        )
    if not msgs:
        out.append("(none)")
    return "\n".join(out) + "\n"


@_command("queue retired print")
async def retired_print(q: Queue, cfg: Config, args: list[str]) -> str:
    (idstr,) = _args(args, 1)
    try:
        mid = int(idstr)
    except ValueError:
        raise QueueError(f"parsing id {idstr!r}: not a number") from None
    msgs = await q.retired_list(RetiredFilter(ids=[mid]), RetiredSort())
    if not msgs:
        raise QueueError("getting retired message: not found")
    return json.dumps(_retired_json(msgs[0]), indent="\t", ensure_ascii=False) + "\n"


@_command("queue suppress list")
async def suppress_list(q: Queue, cfg: Config, args: list[str]) -> str:
    (account,) = _args(args, 1)
    sups = await q.suppression_list(account)
    out = ["suppressions (account, address, manual, time added, base adddress, reason):"]
    for s in sups:
        created = _dt.datetime.fromtimestamp(round(s.created)).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
        out.append("\t".join([_q(s.account), _q(s.original_address), "Yes" if s.manual else "No", created,
                              _q(s.base_address), _q(s.reason)]))  # fmt: skip
    if not sups:
        out.append("(none)")
    return "\n".join(out) + "\n"


@_command("queue suppress add")
async def suppress_add(q: Queue, cfg: Config, args: list[str]) -> None:
    account, address = _args(args, 2)
    _account(cfg, account)
    await q.suppression_add(account, _address(address))


@_command("queue suppress remove")
async def suppress_remove(q: Queue, cfg: Config, args: list[str]) -> None:
    account, address = _args(args, 2)
    await q.suppression_remove(account, _address(address))


@_command("queue suppress lookup")
async def suppress_lookup(q: Queue, cfg: Config, args: list[str]) -> str:
    account, address = _args(args, 2)
    if account:
        _account(cfg, account)
    s = await q.suppression_lookup(account, _address(address))
    if s is None:
        return "not present\n"
    created = _dt.datetime.fromtimestamp(round(s.created)).astimezone().strftime("%Y-%m-%d %H:%M:%S %z")
    return f"present\nadded: {created}\nmanual: {'yes' if s.manual else 'no'}\nbase address: {s.base_address}\nreason: {_q(s.reason)}\n"


def _register(name: str, fn: Command) -> None:
    async def handler(server: Server, conn: CtlConn, args: list[str]) -> Any:
        try:
            result = await fn(current(), server.cfg, args)
        except QueueError as e:
            raise CtlCommandError(str(e)) from None
        if isinstance(result, bytes):
            await conn.send_stream([result])
            return None
        return result

    ctl_command(name)(handler)


for _name, _fn in COMMANDS.items():
    _register(_name, _fn)
