"""``mox queue ...``: the outgoing queue, hold rules, suppression list and retired messages, as upstream.

Through the running server's ctl socket; without a running server, directly on
the queue database in the data directory (no delivery happens then).
"""

from __future__ import annotations

import asyncio
import json
import sys
from typing import TYPE_CHECKING, Any

from mox.cli.commands import _ctl_path, _load, _server_running
from mox.cli.main import CommandError, Flag, Invocation, UsageError, command
from mox.ctl.client import CtlClient, CtlConnectError, CtlError

if TYPE_CHECKING:
    from mox.config.load import Config

FILTER_FLAGS = [
    Flag("ids", "", "comma-separated list of message IDs"),
    Flag("n", "", "number of messages to return"),
    Flag("account", "", "account that queued the message"),
    Flag("from", "", 'from address of message, use "@example.com" to match all messages for a domain'),
    Flag("to", "", 'recipient address of message, use "@example.com" to match all messages for a domain'),
    Flag("submitted", "", 'filter by time of submission relative to now, value must start with "<" (before now) or ">" (after now)'),
    Flag("nextattempt", "", 'filter by time of next delivery attempt relative to now, value must start with "<" (before now) or ">" (after now)'),
    Flag("transport", "", "transport to use for messages"),
    Flag("hold", "", "true or false, whether to match only messages that are (not) on hold"),
]
SORT_FLAGS = [
    Flag("sort", "", 'field to sort by, "nextattempt" (default) or "queued"'),
    Flag("asc", False, "sort ascending instead of descending (default)"),
]
RETIRED_FILTER_FLAGS = [
    Flag("ids", "", "comma-separated list of retired message IDs"),
    Flag("n", "", "number of messages to return"),
    Flag("account", "", "account that queued the message"),
    Flag("from", "", 'from address of message, use "@example.com" to match all messages for a domain'),
    Flag("to", "", 'recipient address of message, use "@example.com" to match all messages for a domain'),
    Flag("submitted", "", 'filter by time of submission relative to now, value must start with "<" (before now) or ">" (after now)'),
    Flag("lastactivity", "", 'filter by time of last activity relative to now, value must start with "<" (before now) or ">" (after now)'),
    Flag("transport", "", "transport used for messages"),
    Flag("result", "", '"success" or "failure" as result of delivery'),
]
RETIRED_SORT_FLAGS = [
    Flag("sort", "", 'field to sort by, "lastactivity" (default) or "queued"'),
    Flag("asc", False, "sort ascending instead of descending (default)"),
]


def _ids(v: str) -> list[int]:
    try:
        return [int(x) for x in v.split(",")] if v else []
    except ValueError:
        raise UsageError(f"invalid value {v!r} for flag -ids: expected comma-separated numbers") from None


def _max(v: str) -> int:
    try:
        return int(v) if v else 0
    except ValueError:
        raise UsageError(f"invalid value {v!r} for flag -n") from None


def _filter(inv: Invocation) -> dict[str, Any]:
    fl = inv.flags
    hold: bool | None = None
    if fl["hold"] == "true":
        hold = True
    elif fl["hold"] == "false":
        hold = False
    elif fl["hold"] != "":
        raise UsageError(f"invalid value {fl['hold']!r} for flag -hold: bad value")
    return {
        "Max": _max(str(fl["n"])), "IDs": _ids(str(fl["ids"])), "Account": fl["account"], "From": fl["from"],
        "To": fl["to"], "Hold": hold, "Submitted": fl["submitted"], "NextAttempt": fl["nextattempt"],
        "Transport": fl["transport"] or None,
    }  # fmt: skip


def _sort(inv: Invocation, fields: dict[str, str]) -> dict[str, Any]:
    v = str(inv.flags["sort"])
    if v and v not in fields:
        raise UsageError(f"invalid value {v!r} for flag -sort: unknown value")
    return {"Field": fields.get(v, ""), "Asc": bool(inv.flags["asc"])}


def _retired_filter(inv: Invocation) -> dict[str, Any]:
    fl = inv.flags
    success = {"": None, "success": True, "failure": False}
    if fl["result"] not in success:
        raise UsageError(f"invalid value {fl['result']!r} for flag -result: bad argument, need success or failure")
    return {
        "Max": _max(str(fl["n"])), "IDs": _ids(str(fl["ids"])), "Account": fl["account"], "From": fl["from"],
        "To": fl["to"], "Submitted": fl["submitted"], "LastActivity": fl["lastactivity"],
        "Transport": fl["transport"] or None, "Success": success[str(fl["result"])],
    }  # fmt: skip


def _direct(cfg: Config, name: str, args: list[str]) -> Any:
    from mox.queue import ctlcommands
    from mox.queue.model import QueueError
    from mox.queue.queue import open_queue

    async def run() -> Any:
        q = await open_queue(cfg.data_dir, lambda: cfg)
        try:
            return await ctlcommands.COMMANDS[name](q, cfg, args)
        except QueueError as e:
            raise CommandError(str(e)) from None
        finally:
            await q.close()
            from mox.store import close_all_accounts

            await close_all_accounts()

    return asyncio.run(run())


def run_queue(inv: Invocation, name: str, args: list[str], *, stream: bool = False) -> Any:
    """Run a queue command through the server, or directly when none runs."""
    try:
        client = CtlClient.connect(_ctl_path(inv))
    except CtlConnectError as e:
        if _server_running(e):
            raise CommandError(str(e)) from None
        result = _direct(_load(inv), name, args)
        if stream:
            sys.stdout.buffer.write(result)
            sys.stdout.buffer.flush()
            return None
        return result
    try:
        if stream:
            sys.stdout.flush()
            return client.call(name, args, recv_stream_to=sys.stdout.buffer)
        return client.call(name, args)
    except CtlError as e:
        raise CommandError(str(e)) from None


@command(
    "queue holdrules list",
    help="""List hold rules for the delivery queue.

Messages submitted to the queue that match a hold rule will be marked as on hold
and not scheduled for delivery.""",
)
def cmd_holdrules_list(inv: Invocation) -> None:
    sys.stdout.write(run_queue(inv, "queue holdrules list", []))


@command(
    "queue holdrules add",
    params="[ruleflags]",
    flags=[
        Flag("account", "", "account submitting the message"),
        Flag("senderdom", "", "sender domain"),
        Flag("recipientdom", "", "recipient domain"),
    ],
    help="""Add hold rule for the delivery queue.

Add a hold rule to mark matching newly submitted messages as on hold. Set the
matching rules with the flags. Don't specify any flags to match all submitted
messages.""",
)
def cmd_holdrules_add(inv: Invocation) -> None:
    fl = inv.flags
    run_queue(inv, "queue holdrules add", [str(fl["account"]), str(fl["senderdom"]), str(fl["recipientdom"])])


@command(
    "queue holdrules remove",
    params="$ruleid",
    nargs=(1, 1),
    help="""Remove hold rule for the delivery queue.

Remove a hold rule by its id.""",
)
def cmd_holdrules_remove(inv: Invocation) -> None:
    try:
        int(inv.args[0])
    except ValueError:
        raise CommandError(f"parsing id: invalid syntax: {inv.args[0]!r}") from None
    run_queue(inv, "queue holdrules remove", inv.args)


@command(
    "queue list",
    params="[filtersortflags]",
    flags=FILTER_FLAGS + SORT_FLAGS,
    help="""List matching messages in the delivery queue.

Prints the message with its ID, last and next delivery attempts, last error.""",
)
def cmd_queue_list(inv: Invocation) -> None:
    f = _filter(inv)
    s = _sort(inv, {"nextattempt": "NextAttempt", "queued": "Queued"})
    sys.stdout.write(run_queue(inv, "queue list", [json.dumps(f), json.dumps(s)]))


def _holdset(inv: Invocation, hold: bool) -> None:
    n = run_queue(inv, "queue holdset", [json.dumps(_filter(inv)), "true" if hold else "false"])
    print(f"{n} messages changed")


@command(
    "queue hold",
    params="[filterflags]",
    flags=FILTER_FLAGS,
    help="""Mark matching messages on hold.

Messages that are on hold are not delivered until marked as off hold again, or
otherwise handled by the admin.""",
)
def cmd_queue_hold(inv: Invocation) -> None:
    _holdset(inv, True)


@command(
    "queue unhold",
    params="[filterflags]",
    flags=FILTER_FLAGS,
    help="""Mark matching messages off hold.

Once off hold, messages can be delivered according to their current next
delivery attempt. See the "queue schedule" command.""",
)
def cmd_queue_unhold(inv: Invocation) -> None:
    _holdset(inv, False)


@command(
    "queue schedule",
    params="[filterflags] [-now] $duration",
    flags=[Flag("now", False, "schedule for duration relative to current time instead of relative to current next delivery attempt for messages"), *FILTER_FLAGS],
    nargs=(1, 1),
    help="""Change next delivery attempt for matching messages.

The next delivery attempt is adjusted by the duration parameter. If the -now
flag is set, the new delivery attempt is set to the duration added to the
current time, instead of added to the current scheduled time.

Schedule immediate delivery with "mox queue schedule -now 0".""",
)
def cmd_queue_schedule(inv: Invocation) -> None:
    from mox.config.sconf import parse_duration

    try:
        parse_duration(inv.args[0])
    except ValueError as e:
        raise CommandError(f"parsing duration {inv.args[0]!r}: {e}") from None
    n = run_queue(inv, "queue schedule", [json.dumps(_filter(inv)), "yes" if inv.flags["now"] else "", inv.args[0]])
    print(f"{n} message(s) rescheduled")


@command(
    "queue transport",
    params="[filterflags] $transport",
    flags=FILTER_FLAGS,
    nargs=(1, 1),
    help="""Set transport for matching messages.

By default, the routing rules determine how a message is delivered. The default
and common case is direct delivery with SMTP. Messages can get a previously
configured transport assigned to use for delivery, e.g. using submission to
another mail server or with connections over a SOCKS proxy.""",
)
def cmd_queue_transport(inv: Invocation) -> None:
    n = run_queue(inv, "queue transport", [json.dumps(_filter(inv)), inv.args[0]])
    print(f"{n} message(s) changed")


@command(
    "queue requiretls",
    params="[filterflags] {yes | no | default}",
    flags=FILTER_FLAGS,
    nargs=(1, 1),
    help="""Set TLS requirements for delivery of matching messages.

Value "yes" is handled as if the RequireTLS extension was specified during
submission.

Value "no" is handled as if the message has a header "TLS-Required: No". This
header is not added by the queue. If messages without this header are relayed
through other mail servers they will apply their own default TLS policy.

Value "default" is the default behaviour, currently for unverified opportunistic
TLS.""",
)
def cmd_queue_requiretls(inv: Invocation) -> None:
    values = {"yes": "true", "no": "false", "default": ""}
    if inv.args[0] not in values:
        raise UsageError("")
    n = run_queue(inv, "queue requiretls", [json.dumps(_filter(inv)), values[inv.args[0]]])
    print(f"{n} message(s) changed")


@command(
    "queue fail",
    params="[filterflags]",
    flags=FILTER_FLAGS,
    help="""Fail delivery of matching messages, delivering DSNs.

Failing a message is handled similar to how delivery is given up after all
delivery attempts failed. The DSN (delivery status notification) message
contains a line saying the message was canceled by the admin.""",
)
def cmd_queue_fail(inv: Invocation) -> None:
    n = run_queue(inv, "queue fail", [json.dumps(_filter(inv))])
    print(f"{n} message(s) marked as failed")


@command(
    "queue drop",
    params="[filterflags]",
    flags=FILTER_FLAGS,
    help="""Remove matching messages from the queue.

Dangerous operation, this completely removes the message. If you want to store
the message, use "queue dump" before removing.""",
)
def cmd_queue_drop(inv: Invocation) -> None:
    n = run_queue(inv, "queue drop", [json.dumps(_filter(inv))])
    print(f"{n} message(s) dropped")


@command(
    "queue dump",
    params="$id",
    nargs=(1, 1),
    help="""Dump a message from the queue.

The message is printed to stdout and is in standard internet mail format.""",
)
def cmd_queue_dump(inv: Invocation) -> None:
    run_queue(inv, "queue dump", inv.args, stream=True)


@command(
    "queue retired list",
    params="[filtersortflags]",
    flags=RETIRED_FILTER_FLAGS + RETIRED_SORT_FLAGS,
    help="""List matching messages in the retired queue.

Prints messages with their ID and results.""",
)
def cmd_retired_list(inv: Invocation) -> None:
    f = _retired_filter(inv)
    s = _sort(inv, {"lastactivity": "LastActivity", "queued": "Queued"})
    sys.stdout.write(run_queue(inv, "queue retired list", [json.dumps(f), json.dumps(s)]))


@command(
    "queue retired print",
    params="$id",
    nargs=(1, 1),
    help="""Print a message from the retired queue.

Prints a JSON representation of the information from the retired queue.""",
)
def cmd_retired_print(inv: Invocation) -> None:
    sys.stdout.write(run_queue(inv, "queue retired print", inv.args))


@command(
    "queue suppress list",
    params="[-account account]",
    flags=[Flag("account", "", "only show suppression list for this account")],
    help="Print addresses in suppression list.",
)
def cmd_suppress_list(inv: Invocation) -> None:
    sys.stdout.write(run_queue(inv, "queue suppress list", [str(inv.flags["account"])]))


@command("queue suppress add", params="$account $address", nargs=(2, 2), help="Add address to suppression list for account.")
def cmd_suppress_add(inv: Invocation) -> None:
    run_queue(inv, "queue suppress add", inv.args)


@command("queue suppress remove", params="$account $address", nargs=(2, 2), help="Remove address from suppression list for account.")
def cmd_suppress_remove(inv: Invocation) -> None:
    run_queue(inv, "queue suppress remove", inv.args)


@command(
    "queue suppress lookup",
    params="[-account account] $address",
    flags=[Flag("account", "", "only check address in specified account")],
    nargs=(1, 1),
    help="Check if address is present in suppression list, for any or specific account.",
)
def cmd_suppress_lookup(inv: Invocation) -> None:
    sys.stdout.write(run_queue(inv, "queue suppress lookup", [str(inv.flags["account"]), inv.args[0]]))
