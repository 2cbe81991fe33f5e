"""The ``mox`` command line: global flags, subcommand dispatch and help, as upstream mox.

Usage: ``mox [-config config/mox.conf] [-pedantic] [-loglevel level] command [flags] [args]``.
Flags are Go-style (``-name``, ``-name=value``, ``-name value``; ``--name`` works too).
Commands are one or more words (``config account add``); the longest match wins.
Usage errors print the command's usage and exit with status 2; failures print
one line ``mox: ...`` on stderr and exit with status 1.
"""

from __future__ import annotations

import itertools
import os
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

DEFAULT_CONFIG = "config/mox.conf"


class UsageError(Exception):
    """Wrong arguments for a command; its usage is printed, exit status 2."""


class CommandError(Exception):
    """A command failed; the message is printed as ``mox: message``, exit status 1."""


@dataclass
class Flag:
    name: str
    default: str | bool
    help: str

    @property
    def is_bool(self) -> bool:
        return isinstance(self.default, bool)


@dataclass
class GlobalOptions:
    config: str = DEFAULT_CONFIG
    pedantic: bool = False
    loglevel: str = ""


@dataclass
class Invocation:
    """What a command function receives."""

    opts: GlobalOptions
    args: list[str]
    flags: dict[str, str | bool]
    command: Command


@dataclass
class Command:
    words: tuple[str, ...]
    fn: Callable[[Invocation], int | None]
    params: str = ""
    help: str = ""
    flags: list[Flag] = field(default_factory=list)
    nargs: tuple[int, int | None] = (0, 0)  # min, max (None: unbounded)
    listed: bool = True
    # The command gets its arguments unparsed: sendmail must accept any flag.
    raw_args: bool = False
    order: int = 0  # registration order, for listing

    @property
    def name(self) -> str:
        return " ".join(self.words)

    def usage(self) -> str:
        lines = []
        for i, p in enumerate((self.params.strip() or "").split("\n")):
            prefix = "usage:" if i == 0 else ""
            lines.append(f"{prefix:>6} mox {self.name}{(' ' + p) if p else ''}")
        for f in self.flags:
            kind = "" if f.is_bool else " string"
            lines.append(f"  -{f.name}{kind}")
            default = f" (default {f.default!r})" if not f.is_bool and f.default else ""
            lines.append(f"    \t{f.help}{default}")
        return "\n".join(lines) + "\n"

    def full_help(self) -> str:
        out = self.usage()
        if self.help:
            out += "\n" + self.help.strip() + "\n"
        return out


COMMANDS: list[Command] = []
_registered = itertools.count()


def command(
    words: str,
    *,
    params: str = "",
    help: str = "",
    flags: Sequence[Flag] = (),
    nargs: tuple[int, int | None] = (0, 0),
    listed: bool = True,
    raw_args: bool = False,
) -> Callable[[Callable[[Invocation], int | None]], Callable[[Invocation], int | None]]:
    """Register a subcommand."""

    def register(fn: Callable[[Invocation], int | None]) -> Callable[[Invocation], int | None]:
        c = Command(tuple(words.split()), fn, params, help, list(flags), nargs, listed, raw_args)
        c.order = next(_registered)
        COMMANDS.append(c)
        return fn

    return register


def parse_flags(args: list[str], flags: Sequence[Flag]) -> tuple[dict[str, str | bool], list[str]]:
    """Go flag package semantics: flags until the first non-flag or ``--``."""
    values: dict[str, str | bool] = {f.name: f.default for f in flags}
    byname = {f.name: f for f in flags}
    i = 0
    while i < len(args):
        a = args[i]
        if a == "--":
            i += 1
            break
        if not a.startswith("-") or a == "-":
            break
        name = a.lstrip("-")
        value: str | None = None
        if "=" in name:
            name, value = name.split("=", 1)
        f = byname.get(name)
        if f is None:
            raise UsageError(f"flag provided but not defined: -{name}")
        if f.is_bool:
            if value is None:
                values[name] = True
            elif value in ("true", "1", "t", "T", "TRUE", "True"):
                values[name] = True
            elif value in ("false", "0", "f", "F", "FALSE", "False"):
                values[name] = False
            else:
                raise UsageError(f"invalid boolean value {value!r} for -{name}")
        else:
            if value is None:
                i += 1
                if i >= len(args):
                    raise UsageError(f"flag needs an argument: -{name}")
                value = args[i]
            values[name] = value
        i += 1
    return values, args[i:]


GLOBAL_FLAGS = [
    Flag("config", DEFAULT_CONFIG, "configuration file, other config files are looked up in the same directory"),
    Flag("pedantic", False, "protocol violations result in errors instead of accepting/working around them"),
    Flag("loglevel", "", "if set, overrides the log level from the configuration"),
]


def global_usage(listed_only: bool = True) -> str:
    lines = ["usage: mox [-config config/mox.conf] [-pedantic] [-loglevel level] command ..."]
    for c in COMMANDS:
        if c.listed or not listed_only:
            lines.append(f"       mox {c.name}{(' ' + c.params.split(chr(10))[0]) if c.params else ''}")
    return "\n".join(lines) + "\n"


def find_command(words: list[str]) -> tuple[Command | None, int]:
    """The command matching the most leading words, and how many words matched."""
    best: Command | None = None
    n = 0
    for c in COMMANDS:
        k = len(c.words)
        if k > n and tuple(words[:k]) == c.words:
            best, n = c, k
    return best, n


# Modules whose import registers their commands, in the order commands are listed.
COMMAND_MODULES = (
    "admin_commands",
    "auth_commands",
    "commands",
    "delivery_commands",
    "deploy_commands",
    "dns_commands",
    "dnsbl_commands",
    "importexport_commands",
    "outbound_policy_commands",
    "queue_commands",
    "report_commands",
    "sendmail",
    "smtpclient_commands",
    "store_commands",
)

# The modules defining commands that start with a word, so running one command imports only
# what it needs (start-up time: "mox localserve" should not import the queue CLI).
# tests/cli checks this table against the sources.
COMMAND_WORDS: dict[str, tuple[str, ...]] = {
    "backup": ("store_commands",),
    "bumpuidvalidity": ("store_commands",),
    "clientconfig": ("commands",),
    "config": ("admin_commands", "commands", "deploy_commands", "sendmail"),
    "dane": ("delivery_commands", "outbound_policy_commands"),
    "dkim": ("auth_commands",),
    "dmarc": ("auth_commands", "report_commands"),
    "dns": ("dns_commands",),
    "dnsbl": ("dnsbl_commands",),
    "export": ("importexport_commands",),
    "help": COMMAND_MODULES,
    "import": ("importexport_commands",),
    "localserve": ("deploy_commands",),
    "loglevels": ("commands",),
    "mtasts": ("outbound_policy_commands",),
    "queue": ("queue_commands",),
    "quickstart": ("deploy_commands",),
    "reassignthreads": ("store_commands",),
    "reassignuids": ("store_commands",),
    "recalculatemailboxcounts": ("store_commands",),
    "sendmail": ("sendmail",),
    "serve": ("commands",),
    "setaccountpassword": ("admin_commands",),
    "smtp": ("smtpclient_commands",),
    "spf": ("auth_commands",),
    "stop": ("commands",),
    "tlsrpt": ("report_commands",),
    "verifydata": ("store_commands",),
    "version": ("commands",),
}


def load_commands(first_word: str | None = None) -> None:
    """Register the commands starting with first_word, or all of them."""
    import importlib

    names = COMMAND_WORDS.get(first_word, COMMAND_MODULES) if first_word is not None else COMMAND_MODULES
    # Listing order stays the same whatever was imported first.
    for name in COMMAND_MODULES:
        if name in names:
            importlib.import_module(f"mox.cli.{name}")
    COMMANDS.sort(key=lambda c: (COMMAND_MODULES.index(c.fn.__module__.rsplit(".", 1)[-1]) if c.fn.__module__.startswith("mox.cli.") else 0, c.order))


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``mox`` console script."""
    args = list(sys.argv[1:] if argv is None else argv)
    if argv is None and os.path.basename(sys.argv[0]) == "sendmail":
        # Installed as /usr/sbin/sendmail (a symlink to mox), behave as "mox sendmail", as upstream.
        args = ["sendmail", *args]
    try:
        gflags, rest = parse_flags(args, GLOBAL_FLAGS)
    except UsageError as e:
        sys.stderr.write(f"mox: {e}\n{global_usage()}")
        return 2
    opts = GlobalOptions(
        config=str(gflags["config"]) if gflags["config"] != DEFAULT_CONFIG else os.environ.get("MOXCONF", DEFAULT_CONFIG),
        pedantic=bool(gflags["pedantic"]),
        loglevel=str(gflags["loglevel"]),
    )
    if not rest:
        load_commands()
        sys.stderr.write(global_usage())
        return 2
    load_commands(rest[0])
    cmd, n = find_command(rest)
    if cmd is None:
        load_commands()
        sys.stderr.write(f"mox: unknown command {' '.join(rest)!r}\n{global_usage()}")
        return 2
    try:
        cflags, cargs = ({}, rest[n:]) if cmd.raw_args else parse_flags(rest[n:], cmd.flags)
        lo, hi = cmd.nargs
        if len(cargs) < lo or (hi is not None and len(cargs) > hi):
            raise UsageError("")
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"mox: {e}\n")
        sys.stderr.write(cmd.full_help())
        return 2
    try:
        rc = cmd.fn(Invocation(opts, cargs, cflags, cmd))
    except UsageError as e:
        if str(e):
            sys.stderr.write(f"mox: {e}\n")
        sys.stderr.write(cmd.full_help())
        return 2
    except CommandError as e:
        sys.stderr.write(f"mox: {e}\n")
        return 1
    except KeyboardInterrupt:
        return 130
    except BrokenPipeError:
        # Output piped into e.g. head: not an error of ours.
        sys.stderr.close()
        return 0
    return rc or 0


if __name__ == "__main__":
    sys.exit(main())
